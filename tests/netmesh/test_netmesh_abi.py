"""The C ABI of net-mesh 0.45.1 as busbench relies on it (abi.py's module doc)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from busbench.targets.netmesh import abi


def _run(code: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, check=False,
                          text=True, timeout=timeout_s)


def test_version_is_checked_and_symbols_found():
    lib = abi.load()
    assert lib.version == abi.REQUIRED_VERSION
    assert set(abi.SYMBOLS) <= set(lib.addresses)


def test_a_wrong_expected_version_is_a_clear_error():
    expected = (r"net-mesh 0\.45\.1 \(by installed distribution.s metadata\) found .* "
                r"asks for net-mesh 9\.9\.9.*busbench releases fetch net-mesh 9\.9\.9")
    with pytest.raises(abi.NetMeshError, match=expected):
        abi.load(expect_version="9.9.9")


def test_a_library_without_the_symbols_is_a_clear_error(tmp_path):
    # libc is a real shared library without net-mesh's symbols
    with pytest.raises(abi.NetMeshError, match="lacks the C ABI symbol"):
        abi.load("/lib/x86_64-linux-gnu/libc.so.6")
    with pytest.raises(abi.NetMeshError, match="does not exist"):
        abi.load(tmp_path / "nope.so")


def test_missing_package_names_the_extra():
    r = _run("""
        import importlib.util, sys
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "net" else real(name, *a)
        from busbench.targets.netmesh import abi
        try:
            abi.find_extension()
        except abi.NetMeshError as e:
            print("ERR", e)
    """)
    assert "ERR net-mesh is not installed" in r.stdout
    assert "pip install -e '.[net-mesh]'" in r.stdout


def test_return_codes_refusals_and_shutdown():
    """0 accepted, -5 ring full (counted dropped, not ingested), -8 after shutdown,
    -2 for non-UTF-8; net_init refuses a ring below 1024; shutdown twice is fine."""
    lib = abi.load()
    assert lib.init(json.dumps({"ring_buffer_capacity": 512})) == 0
    assert lib.init(json.dumps({"backpressure_mode": "Bogus"})) == 0
    h = lib.init(json.dumps({"num_shards": 1, "ring_buffer_capacity": 1024,
                             "backpressure_mode": "DropNewest"}))
    assert h
    try:
        rcs = [lib.ingest_raw(h, b'"x%d"' % i) for i in range(20_000)]
        ok, refused = rcs.count(0), rcs.count(abi.NET_ERR_INGESTION_FAILED)
        assert ok + refused == len(rcs)
        assert refused > 0, "a 1024-slot ring took 20 000 events without a refusal"
        assert lib.ingest_raw(h, b"\xff\xfe") == abi.NET_ERR_INVALID_UTF8
        rc, st = lib.stats_ex(h)
        assert rc == 0
        assert st.events_ingested == ok          # refusals are not ingested
        assert st.events_dropped == refused      # but are dropped
        assert lib.ingest_raw_batch(h, [b'"a"', b'"b"']) in (0, 1, 2)
    finally:
        assert lib.shutdown(h) == 0
    assert lib.ingest_raw(h, b'"late"') == abi.NET_ERR_SHUTTING_DOWN
    assert lib.ingest_raw_batch(h, [b'"late"']) == abi.NET_ERR_SHUTTING_DOWN
    assert lib.stats_ex(h)[0] == abi.NET_ERR_SHUTTING_DOWN
    assert lib.flush(h) == abi.NET_ERR_SHUTTING_DOWN
    assert lib.shutdown(h) == 0


def test_kernel_counts_refusals_per_producer():
    """The jitted producer's own tallies agree with net-mesh's counters."""
    import numpy as np

    from busbench.load import kernels as K
    from busbench.targets.netmesh import NetMeshTarget

    t = NetMeshTarget({"num_shards": 1, "ring_buffer_capacity": 1024, "adapter": "noop"}, producers=1)
    try:
        t.prepare()
        t.start()
        prm = np.zeros(K.P_LEN, np.int64)
        prm[K.P_BATCH] = 64
        prm[K.P_MAX_EVENTS] = 50_000
        ps = np.zeros(K.S_LEN, np.int64)
        t.produce(0, prm, ps, None, np.zeros(16, np.int64))
        c = t.counters()
        assert ps[K.S_OFFERED] == 50_000
        assert ps[K.S_LANDED] + ps[K.S_REFUSED] == 50_000
        assert ps[K.S_REFUSED] > 0
        assert c["events_ingested"] == ps[K.S_LANDED]
        assert c["events_dropped"] == ps[K.S_REFUSED]
        assert t.producer_tallies(0)["backpressure_returns"] == ps[K.S_REFUSED]
        t.shutdown(5)
        ps2 = np.zeros(K.S_LEN, np.int64)
        ps2[K.S_NEXT_SEQ] = ps[K.S_NEXT_SEQ]
        t.produce(0, prm, ps2, None, np.zeros(16, np.int64))
        assert ps2[K.S_TURNED_AWAY] == 64 and ps2[K.S_DONE] == 1     # -8: stopped, counted
        assert t.producer_tallies(0)["shutting_down_returns"] == 1
    finally:
        t.close()


def test_kernels_load_from_numba_cache():
    """Addresses as runtime values keep busbench's one producer kernel cacheable: a
    second process loads it from the cache instead of compiling (a ctypes pointer would not)."""
    code = """
        from busbench.targets.netmesh import NetMeshTarget
        from busbench.load import kernels as K
        t = NetMeshTarget({"adapter": "noop"}, producers=1)
        t.prepare()
        t.close()
        print("HITS", sum(K.produce.stats.cache_hits.values()))
    """
    _run(code, 300)
    second = _run(code, 300)
    assert "HITS" in second.stdout, second.stderr[-2000:]
    assert int(second.stdout.split("HITS")[1].split()[0]) >= 1
