"""Two librdkafka releases in one process, driven by the same compiled kernel.

The second release comes from busbench's release cache (``busbench releases fetch
kafka 2.0.2``, when the cache exists) or from a confluent-kafka 2.0.2 wheel in the
folder ``$BUSBENCH_KAFKA_WHEELS``; without either the test is skipped, saying so (two
loads of one .so path are one library, not two releases).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from busbench.targets.kafka import abi
from busbench.targets.kafka import kernels as KK
from tests.kafka.kafka_helpers import produce, target

OTHER = "2.0.2"


def _other_library(tmp_path: Path) -> Path | None:
    try:
        from busbench.targets import release_cache as RC
        hit = RC.cached("kafka", OTHER)
        if hit is not None:
            return Path(hit.library)
    except ImportError:
        pass
    folder = os.environ.get("BUSBENCH_KAFKA_WHEELS")
    for wheel in sorted(Path(folder).glob(f"confluent_kafka-{OTHER}-*.whl")) if folder else ():
        with zipfile.ZipFile(wheel) as z:
            members = [n for n in z.namelist() if n.startswith("confluent_kafka.libs/")]
            z.extractall(tmp_path, members=members)
        found = sorted((tmp_path / "confluent_kafka.libs").glob("librdkafka*.so*"))
        if found:
            return found[0]
    return None


def test_two_releases_side_by_side_in_one_process(tmp_path, threads_back):
    library = _other_library(tmp_path)
    if library is None:
        pytest.skip(f"no confluent-kafka {OTHER} at hand: busbench releases fetch kafka {OTHER}, or "
                    f"a wheel in $BUSBENCH_KAFKA_WHEELS")
    new = target()
    old = target(library=str(library), version=OTHER)
    try:
        assert new.lib.path != old.lib.path
        assert (new.lib.librdkafka, old.lib.librdkafka) == ("2.16.0", OTHER)
        assert new.lib.addresses["rd_kafka_produce"] != old.lib.addresses["rd_kafka_produce"]
        for t in (new, old):
            produce(t, 2000)
            assert t.flush(5.0).reached
            d = t.delivery()
            assert sum(map(sum, d.received_by_shard)) == 2000 and d.order_violations == 0
            assert t.delivery_reports()["delivered"] == [[500]] * 4
        assert len(KK.produce.signatures) == 1          # one compiled kernel drove both
    finally:
        old.close()
        new.close()
    assert abi.installed_version() == "2.16.1"
