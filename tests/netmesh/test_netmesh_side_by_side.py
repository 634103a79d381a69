"""Two net-mesh releases in one process (issue 14): the kernel calls each release's
ingest functions through addresses handed at run time, so handles and counters of
one release never reach the other; ``compare`` and ``matrix`` drive releases by
``target.net-mesh.version``.

The releases come from the package index with pip into a temporary
BUSBENCH_CACHE_DIR (one session fixture); the tests are skipped, saying why,
when the index cannot be reached.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from busbench.load import kernels as K
from busbench.targets.netmesh import NetMeshTarget
from busbench.targets.netmesh import releases as R
from tests.cli_helpers import cli, flat

OLDER, NEWER = "0.44.1", "0.45.1"


@pytest.fixture(scope="session")
def release_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("busbench-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BUSBENCH_CACHE_DIR", str(root))
    try:
        for v in (OLDER, NEWER):
            R.release(v)
    except R.ReleaseError as e:
        mp.undo()
        pytest.skip(f"the package index is unreachable, cannot fetch net-mesh releases: {e}")
    yield root
    mp.undo()


@pytest.fixture
def cache_env(release_cache, monkeypatch):
    monkeypatch.setenv("BUSBENCH_CACHE_DIR", str(release_cache))
    return release_cache


def _params(events, batch=32):
    prm = np.zeros(K.P_LEN, np.int64)
    prm[K.P_BATCH] = batch
    prm[K.P_MAX_EVENTS] = events
    return prm


def _noop(version, call):
    return NetMeshTarget({"num_shards": 2, "ring_buffer_capacity": 1 << 16, "adapter": "noop",
                          "version": version, "call": call}, producers=1)


@pytest.mark.parametrize("call", ["single", "batch"])
def test_two_releases_in_one_process_keep_their_own_handles_and_counters(cache_env, call):
    old, new = _noop(OLDER, call), _noop(NEWER, call)
    try:
        for t in (old, new):
            t.prepare()
            t.start()
        # two libraries, two sets of functions: the kernel is handed each one's own
        assert old.lib.path != new.lib.path
        assert old.lib.addresses["net_ingest_raw"] != new.lib.addresses["net_ingest_raw"]
        assert (old.lib.version, new.lib.version) == (OLDER, NEWER)
        assert old.release is not None and old.release.version == OLDER
        landed = {}
        for t, n in ((old, 1000), (new, 2000), (old, 500)):   # interleaved, as compare runs them
            ps = np.zeros(K.S_LEN, np.int64)
            t.produce(0, _params(n), ps, None, np.zeros(16, np.int64))
            assert ps[K.S_LANDED] == n and ps[K.S_REFUSED] == 0
            landed[id(t)] = landed.get(id(t), 0) + n
        # each bus counted only what was pushed into it (a shared symbol would mix them)
        assert old.counters()["events_ingested"] == 1500
        assert new.counters()["events_ingested"] == 2000
        assert old.native_library()["release_cache"]["version"] == OLDER
        assert new.native_library()["version"] == NEWER
    finally:
        old.close()
        new.close()


def test_compare_runs_two_releases_interleaved(cache_env, tmp_path, no_redis_left):
    out = tmp_path / "cmp.json"
    result = cli("compare", "tests/data/netmesh_short.yaml",
                 "--vary", f"target.net-mesh.version={OLDER},{NEWER}", "--repeat", "2",
                 "--json", out)
    assert result.exit_code == 0, flat(result.output)
    data = json.loads(out.read_text())
    assert data["metric"] == "ingest_rate"        # net-mesh exports no dispatched count
    assert [v["label"] for v in data["variants"]] == [f"target.net-mesh.version={OLDER}",
                                                      f"target.net-mesh.version={NEWER}"]


def test_matrix_tabulates_verdicts_per_release(cache_env, tmp_path, no_redis_left):
    js, md = tmp_path / "m.json", tmp_path / "m.md"
    result = cli("matrix", "tests/data/netmesh_short.yaml", "--versions", f"{OLDER},{NEWER}",
                 "--no-fetch", "--json", js, "--markdown", md)
    text = flat(result.output)
    assert result.exit_code == 0, text
    data = json.loads(js.read_text())
    assert data["versions"] == [OLDER, NEWER] and data["newest"] == NEWER
    rows = {r["version"]: r for r in data["rows"]}
    for v in (OLDER, NEWER):
        assert rows[v]["not_comparable"] is None and rows[v]["statuses"] == ["passed"]
        assert rows[v]["verdicts"] == {"conservation": "passed", "ground_truth": "passed"}
        assert data["libraries"][v]["version"] == v
    assert rows[NEWER]["vs_newest"]["ratio_of_medians"] == 1.0
    assert rows[OLDER]["vs_newest"]["ratio_of_medians"] > 0
    assert "| conservation | pass | pass |" in md.read_text()


def test_matrix_without_the_release_and_without_fetch_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BUSBENCH_CACHE_DIR", str(tmp_path / "empty"))
    result = cli("matrix", "tests/data/netmesh_short.yaml", "--versions", "0.40.0,0.45.1",
                 "--no-fetch")
    assert result.exit_code == 2
    assert "busbench releases fetch net-mesh 0.40.0" in flat(result.output)
    result = cli("compare", "tests/data/netmesh_short.yaml",
                 "--vary", "target.net-mesh.version=0.40.0,0.45.1", "--repeat", "2")
    assert result.exit_code == 2
    assert "busbench releases fetch net-mesh 0.40.0" in flat(result.output)


def test_matrix_refuses_a_scenario_of_another_target():
    result = cli("matrix", "scenarios/quickstart.yaml", "--versions", "0.45.1", "--no-fetch")
    assert result.exit_code == 2
    assert "expected target: {net-mesh: {driver: c-abi}}" in flat(result.output)


def test_run_of_a_release_not_cached_exits_2_naming_the_fetch_command(tmp_path, monkeypatch,
                                                                     no_redis_left):
    monkeypatch.setenv("BUSBENCH_CACHE_DIR", str(tmp_path / "empty"))
    result = cli("run", "tests/data/netmesh_short.yaml", "--set", "target.net-mesh.version=0.40.0",
                 "--out", tmp_path, "--no-live")
    assert result.exit_code == 2
    assert "fill it with `busbench releases fetch net-mesh 0.40.0`" in flat(result.output)
