"""The net-mesh target end to end: binding driver, faults, bounded shutdown, errors."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from busbench.load import kernels as K
from busbench.targets.netmesh import NetMeshError, NetMeshTarget


def _params(events, batch=32):
    prm = np.zeros(K.P_LEN, np.int64)
    prm[K.P_BATCH] = batch
    prm[K.P_MAX_EVENTS] = events
    return prm


@pytest.mark.parametrize("call", ["single", "batch"])
def test_binding_driver_delivers_the_same_payloads(no_redis_left, call):
    t = NetMeshTarget({"num_shards": 2, "ring_buffer_capacity": 1 << 16, "driver": "binding",
                       "call": call}, producers=1)
    try:
        t.prepare()
        t.start()
        ps = np.zeros(K.S_LEN, np.int64)
        t.produce(0, _params(3000), ps, None, np.zeros(16, np.int64))
        assert ps[K.S_LANDED] + ps[K.S_REFUSED] == 3000
        assert t.counters()["events_ingested"] == ps[K.S_LANDED]
        t.shutdown(5)
        ev = t.delivery()
        d = ev.producers[0]
        assert d.distinct == ps[K.S_LANDED] and d.duplicates == 0 and ev.malformed == 0
        assert d.checksum == t.producer_tallies(0)["accepted_checksum"]
    finally:
        t.close()


def test_shutdown_against_a_frozen_redis_is_bounded_and_says_so(no_redis_left):
    """net-mesh's shutdown blocks while Redis is frozen (finding); busbench's wait is
    bounded, says the call did not return, and picks up its result after SIGCONT."""
    t = NetMeshTarget({"num_shards": 2, "ring_buffer_capacity": 1 << 16}, producers=1)
    t.shutdown_margin_s = 1.0
    try:
        t.prepare()
        t.start()
        t.arm_fault({"kind": "stall_adapter", "for_s": 0})    # frozen before any event
        t.produce(0, _params(20_000), np.zeros(K.S_LEN, np.int64), None, np.zeros(16, np.int64))
        start = time.monotonic()
        claim = t.shutdown(grace_s=0.5)
        assert time.monotonic() - start < 30          # bounded, whatever net-mesh does
        assert claim.details["returned"] is False and claim.details["rc"] is None
        assert claim.lossy is None and claim.stranded_events is None   # 0.45.1 says nothing
        t.release_faults()
        late = t.join_native_calls(60)
        assert [(x["call"], x["returned"]) for x in late] == [("shutdown", True)]
    finally:
        t.close()


def test_stall_producer_pauses_between_calls(no_redis_left):
    t = NetMeshTarget({"num_shards": 1, "ring_buffer_capacity": 1 << 16, "adapter": "noop"}, producers=1)
    try:
        t.prepare()
        t.start()
        stop = np.zeros(16, np.int64)
        ps = np.zeros(K.S_LEN, np.int64)
        prm = _params(-1)
        t._buffers_for(0, 32)
        armed = t.arm_fault({"kind": "stall_producer", "producer": 0, "for_s": 30.0})
        assert armed["producer"] == 0
        th = threading.Thread(target=t.produce, args=(0, prm, ps, None, stop))
        th.start()
        end = time.monotonic() + 20
        while not t.producer_stalling(0) and time.monotonic() < end:
            time.sleep(0.01)
        assert t.producer_stalling(0)
        sent = int(ps[K.S_NEXT_SEQ])
        time.sleep(0.2)
        assert int(ps[K.S_NEXT_SEQ]) == sent          # nothing sent while stalled
        stop[K.STOP_FLAG] = 1                         # the stop flag ends a stall
        th.join(20)
        assert not th.is_alive()
    finally:
        t.close()


def test_unreachable_redis_fails_fast_with_a_reason():
    t = NetMeshTarget({"redis": {"url": "redis://127.0.0.1:1/0"}}, producers=1)
    start = time.monotonic()
    with pytest.raises(NetMeshError, match="unreachable"):
        t.prepare()
    assert time.monotonic() - start < 8       # net_init itself would block ~9.5 s
    t.close()


def test_unsupported_fault_is_refused():
    t = NetMeshTarget({"redis": {"url": "redis://127.0.0.1:1/0"}}, producers=1)
    with pytest.raises(NetMeshError, match="stall_adapter needs the redis-server busbench starts"):
        t.arm_fault({"kind": "stall_adapter", "for_s": 1})
    with pytest.raises(NetMeshError, match="not supported"):
        t.arm_fault({"kind": "stall_adapterr"})


def test_open_loop_payloads_carry_the_intended_send_time(no_redis_left):
    from busbench.targets.netmesh.streams import stream_key

    t = NetMeshTarget({"num_shards": 1, "ring_buffer_capacity": 1 << 16}, producers=1)
    try:
        t.prepare()
        t.start()
        prm = _params(200, batch=10)
        prm[K.P_OPEN_LOOP] = 1
        prm[K.P_INTERVAL_PS] = 100_000_000          # 10 000 events/s
        prm[K.P_T0_NS] = time.monotonic_ns()
        prm[K.P_LATE_AFTER_NS] = 10**12
        ps = np.zeros(K.S_LEN, np.int64)
        t.produce(0, prm, ps, None, np.zeros(16, np.int64))
        assert ps[K.S_LANDED] == 200
        t.shutdown(5)
        c = t.server.client()
        entries = c.xrange(stream_key(t.prefix, 0), count=1000)
        c.close()
        got = {}
        for _, fields in entries:
            hexes = fields[b"d"][6:38]
            got[int(hexes[4:16], 16)] = int(hexes[16:32], 16)
        assert len(got) == 200
        t0 = int(prm[K.P_T0_NS])
        assert all(got[k] == t0 + k * 100_000 for k in range(200))   # intended, not actual
    finally:
        t.close()
