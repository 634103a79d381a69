"""Two librdkafka releases in one process, driven by the same compiled kernel.

The second release comes from busbench's release cache, as a scenario asking for
``target.kafka.version: 2.0.2`` gets it (``resolve_library``: the installed
confluent-kafka is 2.16.1, so the cache). Fill it with ``busbench releases fetch
kafka 2.0.2``; without it (CI runs offline) the test is skipped, saying so: two
loads of one .so path are one library, not two releases.
"""
from __future__ import annotations

import pytest

from busbench.load import kernels as LK
from busbench.targets import release_cache as RC
from busbench.targets.kafka import abi
from tests.kafka.kafka_helpers import produce, target

OTHER = "2.0.2"


def test_two_releases_side_by_side_in_one_process(threads_back):
    why = RC.unavailable("kafka", OTHER)
    if why is not None:
        pytest.skip(why)
    new = target()
    old = target(version=OTHER)          # resolved through the release cache
    try:
        assert new.lib.path != old.lib.path
        assert old.lib.path == RC.cached("kafka", OTHER).library.resolve()
        assert (new.lib.librdkafka, old.lib.librdkafka) == ("2.16.0", OTHER)
        assert (new.lib.version, old.lib.version) == (abi.REQUIRED_VERSION, OTHER)
        assert new.lib.addresses["rd_kafka_produce"] != old.lib.addresses["rd_kafka_produce"]
        for t in (new, old):
            produce(t, 2000)
            assert t.flush(5.0).reached
            d = t.delivery()
            assert sum(map(sum, d.received_by_shard)) == 2000 and d.order_violations == 0
            assert t.delivery_reports()["delivered"] == [[500]] * 4
        assert len(LK.produce.signatures) == 1          # one compiled kernel drove both
    finally:
        old.close()
        new.close()
    assert abi.installed_version() == abi.REQUIRED_VERSION
