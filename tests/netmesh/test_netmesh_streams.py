"""The stream witness on known data, and a short end-to-end drive through net-mesh."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from busbench.load import kernels as K
from busbench.load.kernels import sum_seq_mix
from busbench.targets.netmesh import NetMeshTarget
from busbench.targets.netmesh.redis_server import RedisServer
from busbench.targets.netmesh.streams import (
    FlushMark,
    read_streams,
    stream_key,
    stream_tips,
)


def _entry(p, seq, shard, t=7):
    return {"d": b'{"r":"%04x%012x%016x","t":1,"s":%d}' % (p, seq, t, shard), "dedup_id": b"x"}


def _py_mix(seq):
    m = (1 << 64) - 1
    z = (seq + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def _signed(x):
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


def test_seq_mix_is_splitmix64_and_sums_wrap():
    seqs = np.arange(1000, dtype=np.int64) * 7919
    assert sum_seq_mix(seqs, seqs.size) == _signed(sum(_py_mix(int(s)) for s in seqs))


@pytest.fixture
def server(no_redis_left):
    with RedisServer() as s:
        yield s


def test_reader_counts_duplicates_order_refusals_and_checksum(server):
    c = server.client()
    # producer 0: seqs 0..9 on shard 0, with 5 duplicated and 7 before 6 (order)
    for seq in (0, 1, 2, 3, 4, 5, 5, 7, 6, 8, 9):
        c.xadd(stream_key("t", 0), _entry(0, seq, 0))
    # producer 1: seqs 0..4 on shard 1, seq 3 had been refused; one foreign entry
    for seq in (0, 1, 2, 3, 4):
        c.xadd(stream_key("t", 1), _entry(1, seq, 1))
    c.xadd(stream_key("t", 1), {"d": b'{"r":{"a":1},"t":1,"s":1}'})
    words = 4
    refused = np.zeros(2 * words, np.int64)
    refused[1 * words + 0] |= 1 << 3
    ambiguous = np.zeros(2 * words, np.int64)
    ev = read_streams(c, "t", 2, np.array([10, 5]), refused, ambiguous, words, batch=3)
    p0, p1 = ev.producers
    assert (p0.received, p0.distinct, p0.duplicates) == (11, 10, 1)
    assert p0.order_violations == 2         # 5 after 5, 6 after 7
    assert (p0.min_seq, p0.max_seq) == (0, 9)
    assert p0.checksum == _signed(sum(_py_mix(s) for s in range(10)))
    assert p1.refused_delivered == 1
    assert ev.malformed == 1 and ev.entries == 17 and ev.complete
    c.close()


def test_reader_flush_marks_cut_at_the_recorded_tip(server):
    c = server.client()
    for seq in range(5):
        c.xadd(stream_key("f", 0), _entry(0, seq, 0))
    tips = stream_tips(c, "f", 2)
    for seq in range(5, 8):             # arrived after "flush returned"
        c.xadd(stream_key("f", 0), _entry(0, seq, 0))
    mark = FlushMark(watermarks=np.array([8]), landed=np.array([8]), tips=tips)
    ev = read_streams(c, "f", 2, np.array([8]), flush_marks=(mark,), batch=2)
    f = ev.flushes[0]
    assert f.in_redis_at_return == (5,) and f.missing_at_return == (3,)
    c.close()


@pytest.mark.parametrize("call", ["single", "batch"])
def test_end_to_end_counts_agree(no_redis_left, call):
    """Kernels ingest N events, shutdown drains, the streams hold exactly what landed."""
    t = NetMeshTarget({"num_shards": 2, "ring_buffer_capacity": 1 << 16, "call": call}, producers=2)
    try:
        t.prepare()
        t.start()
        stop = np.zeros(16, np.int64)
        rigs = []
        for _ in range(2):
            prm = np.zeros(K.P_LEN, np.int64)
            prm[K.P_BATCH] = 32
            prm[K.P_MAX_EVENTS] = 20_000
            rigs.append((prm, np.zeros(K.S_LEN, np.int64)))
        threads = [threading.Thread(target=t.produce, args=(p, *rigs[p], None, stop)) for p in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads)
        counters = t.counters()
        assert counters["events_ingested"] == sum(int(ps[K.S_LANDED]) for _, ps in rigs)
        assert t.flush(30).timed_out is False
        t.shutdown(5)
        ev = t.delivery()
        for p, (_, ps) in enumerate(rigs):
            d = ev.producers[p]
            tal = t.producer_tallies(p)
            assert d.distinct == ps[K.S_LANDED] == 20_000 - ps[K.S_REFUSED]
            assert d.duplicates == d.order_violations == d.refused_delivered == 0
            if tal["ambiguous_offered"] == 0:
                assert d.checksum == tal["accepted_checksum"]
        assert ev.complete and ev.malformed == 0
    finally:
        t.close()


def test_reader_catches_a_lost_event(server):
    """A witness that cannot fail proves nothing: drop one entry, it shows."""
    c = server.client()
    ids = [c.xadd(stream_key("l", 0), _entry(0, seq, 0)) for seq in range(100)]
    c.xdel(stream_key("l", 0), ids[50])
    ev = read_streams(c, "l", 1, np.array([100]))
    d = ev.producers[0]
    assert d.distinct == 99
    assert d.checksum != _signed(sum(_py_mix(s) for s in range(100)))
    c.close()


def test_streams_of_a_given_url_are_deleted_at_close(server):
    t = NetMeshTarget({"num_shards": 2, "ring_buffer_capacity": 1024,
                       "redis": {"url": server.url}}, producers=1)
    try:
        t.prepare()
        t.start()
        prm = np.zeros(K.P_LEN, np.int64)
        prm[K.P_BATCH] = 8
        prm[K.P_MAX_EVENTS] = 100
        t.produce(0, prm, np.zeros(K.S_LEN, np.int64), None, np.zeros(16, np.int64))
        t.shutdown(5)
        c = server.client()
        assert c.exists(stream_key(t.prefix, 0)) or c.exists(stream_key(t.prefix, 1))
    finally:
        t.close()
    assert not c.exists(stream_key(t.prefix, 0), stream_key(t.prefix, 1))
    c.close()


def test_a_read_back_past_its_budget_says_how_much_was_read_and_ground_truth_is_not_evaluable(server):
    """Issue 17: the witness is read within the run's deadline; past it the evidence
    says "witness read-back incomplete: N of M entries read" and the checks that
    need the witness are not evaluable (never failed on a partial count)."""
    from busbench.verdicts import checks as C
    c = server.client()
    for seq in range(50):
        c.xadd(stream_key("b", 0), _entry(0, seq, 0))
    ev = read_streams(c, "b", 1, np.array([50]), batch=10, budget_s=0.0)
    c.close()
    assert not ev.complete and ev.expected == 50 and ev.entries < 50
    assert ev.incomplete == f"witness read-back incomplete: {ev.entries:,} of 50 entries read"
    delivery = {"witness": "redis streams", "received_by_shard": [[ev.entries]],
                "last_seq_by_shard": [[-1]], "received_sum": [0], "order_violations": 0,
                "evicted_by_shard": [[0]], "rejected_by_shard": [[0]], "evicted_sum": [0],
                "rejected_sum": [0], "incomplete": ev.incomplete}
    producer = {"offered": 50, "refused": 0, "stranded": 0, "refused_sum": 0, "stranded_sum": 0,
                "offered_sum": 0, "landed": 50}
    from busbench.load.generator import ProducerTruth
    truth = {f: 0 for f in ProducerTruth.__dataclass_fields__}
    truth.update(producer, next_seq=50)
    evidence = C.Evidence.from_dict({
        "counters": {"events_ingested": 50, "events_dropped": 0}, "producers": [truth],
        "delivery": delivery, "flushes": [], "shutdown": None, "metrics": {}, "quiescent": True,
        "capabilities": {"witness": "redis streams"}})
    for kind in ("ground_truth", "conservation"):
        spec = next(s for s in _specs() if s.kind == kind)
        verdict = C.evaluate(spec, evidence)
        assert verdict.outcome == "not_evaluable", verdict
        assert "witness read-back incomplete" in verdict.evidence


def _specs():
    from busbench.scenario import load_scenario_text
    sc = load_scenario_text("name: x\ndescription: x\nsteps: [{run: 1s}]\n"
                            "checks: [conservation, ground_truth]\n", "<test>")
    return sc.checks
