"""Issue 9 on the reference bus: verdicts from evidence the bus does not compute.

* flush_barrier judged from producer-side landed counts and what the verify
  adapter received: the mutation ``batch_announced_late`` fools flush's own
  per-shard predicate and the old check that read it, not the new check;
* an honest flush timeout keeps the barrier promise; ``flush_completes`` asks more;
* shutdown with grace 0 (close(), the context manager) under load: lossy
  exactly when a producer's push was really cut off, seen from the producer.
"""
from __future__ import annotations

import json

from cli_helpers import cli

from busbench.verdicts import checks as C
from busbench.common import names as N
from busbench.scenario.schema import CheckSpec
from busbench.targets.builtin import BuiltinTarget


def _evidence(bus, gen, flushes):
    target = BuiltinTarget.around(bus)
    return C.Evidence(counters=target.counters(), producers=gen.truths(),
                      delivery=target.delivery().to_dict(), flushes=[f.record for f in flushes],
                      shutdown=None, metrics={}, quiescent=True,
                      capabilities=target.capabilities.to_dict(), backpressure="drop_newest")


def _old_flush_barrier(flush) -> bool:
    """The check before issue 9: success claimed and every shard's own positions past
    the target (the same predicate flush polls)."""
    return flush.reached and all(s.reached for s in flush.shards)


def _batch_inside_a_frozen_adapter(bus_rig, mutations):
    bus = bus_rig.bus(shards=1, capacity=1024, max_events=512, max_delay_ns=5_000_000_000,
                      adapter="verify", mutations=mutations)
    gen = bus_rig.load(bus, producers=1, batch=100)
    gen.start(events=100)
    assert gen.wait(timeout_s=10.0)
    gen.stop()
    bus.schedule_adapter_stall(after_ns=0, for_ns=30_000_000_000)
    return bus, gen, bus_rig.flush(bus, gen, timeout_s=0.3)


def test_batch_announced_late_fools_the_old_position_check_but_not_the_evidence(bus_rig):
    bus, gen, flush = _batch_inside_a_frozen_adapter(bus_rig, ("batch_announced_late",))
    assert flush.reached and not flush.timed_out         # flush claims success...
    assert bus.stats().events_dispatched == 0            # ...with the batch inside the adapter
    assert _old_flush_barrier(flush)                     # the old check passed it
    v = C.evaluate(CheckSpec(kind=N.FLUSH_BARRIER), _evidence(bus, gen, [flush]))
    assert v.outcome == C.FAILED, v.evidence
    assert "100 events landed before the call neither received nor dropped" in v.evidence
    assert flush.record.landed_before == ((100,),) and flush.record.received_after[0][0] == 0
    bus.release_stalls()


def test_an_honest_timeout_keeps_the_barrier_promise_and_fails_flush_completes(bus_rig):
    bus, gen, flush = _batch_inside_a_frozen_adapter(bus_rig, ())
    assert not flush.reached and flush.timed_out
    ev = _evidence(bus, gen, [flush])
    assert not _old_flush_barrier(flush)                 # the old check failed a correct bus
    barrier = C.evaluate(CheckSpec(kind=N.FLUSH_BARRIER), ev)
    assert barrier.outcome == C.PASSED and "timed out and said so" in barrier.evidence
    completes = C.evaluate(CheckSpec(kind=N.FLUSH_COMPLETES), ev)
    assert completes.outcome == C.FAILED and "timed out" in completes.evidence
    bus.release_stalls()
    flush = bus_rig.flush(bus, gen, timeout_s=10.0)
    assert flush.reached
    ev = _evidence(bus, gen, [flush])
    assert C.evaluate(CheckSpec(kind=N.FLUSH_BARRIER), ev).outcome == C.PASSED
    assert C.evaluate(CheckSpec(kind=N.FLUSH_COMPLETES), ev).outcome == C.PASSED


def test_close_with_grace_zero_under_load_is_lossy_only_when_a_push_was_cut_off(
        bus_rig, contract_violations):
    """Regression: shutdown abandoned pushes that had just entered (0 pending) or
    had landed every event and were about to leave, and IDLE was stored over
    ABANDONED: a grace-0 close() under load was flagged lossy without cause."""
    lossy_runs = 0
    for _ in range(12):
        bus = bus_rig.bus(shards=2, capacity=256, backpressure="drop_newest", adapter="verify")
        gen = bus_rig.load(bus, producers=2, batch=64)
        gen.start(duration_ns=30_000_000_000)
        assert bus_rig.wait_for(lambda b=bus: b.stats().events_ingested > 10_000, timeout_s=10.0)
        report = bus.close()                           # grace 0, producers mid-flight
        assert bus_rig.wait_for(lambda g=gen: not g.running, timeout_s=10.0)
        gen.stop()
        truths = gen.truths()
        cut_off = any(t.stranded > 0 for t in truths)
        assert report.lossy == cut_off, (report, truths)
        assert report.abandoned_producers == tuple(p for p, t in enumerate(truths) if t.stranded)
        assert contract_violations(bus, truths, report=report) == []
        lossy_runs += report.lossy
    # Whether a push is caught mid-flight at the instant of close is up to the
    # scheduler; the assertions above hold either way.
    assert 0 <= lossy_runs <= 12


def test_busbench_check_re_evaluates_a_record_from_the_record_alone(tmp_path):
    out = tmp_path / "out"
    result = cli("run", "scenarios/mutations/batch_announced_late.yaml", "--no-live", "-q",
                 "--out", out)
    assert result.exit_code == 0, result.output
    [record_path] = out.glob("*.json")
    again = cli("check", record_path)
    assert again.exit_code == 0, again.output
    assert "flush_barrier" in again.output and "expected to fail" in again.output
    # Tamper with the evidence: the witness now says it received the 100 events.
    record = json.loads(record_path.read_text())
    record["flushes"][0]["received_after"] = [[100]]
    record["flushes"][0]["last_received_after"] = [[99]]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(record))
    again = cli("check", tampered)
    assert again.exit_code == 1, again.output          # flush_barrier now passes: not as declared
    assert "the record says failed, re-evaluated passed" in again.output
    # Unreadable or not a record: exit 2
    (tmp_path / "junk.json").write_text("{not json")
    assert cli("check", tmp_path / "junk.json").exit_code == 2
    assert cli("check", tmp_path / "missing.json").exit_code == 2
    old = dict(record, schema_version=1)
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert cli("check", tmp_path / "old.json").exit_code == 2


def test_a_push_with_nothing_pending_at_the_deadline_is_not_a_lossy_shutdown(bus_rig):
    """White-box, deterministic: a stripe ACTIVE with 0 pending at the deadline (a
    producer that entered after the gate closed, or whose events all landed and
    that is about to leave) is no push cut off: not listed, flag not set."""
    from busbench.bus.config import ABANDONED, ACTIVE, SLOT, ST_PENDING, ST_STATE
    bus = bus_rig.bus(shards=2, capacity=64, adapter="verify")
    stripes = bus.state.stripes
    stripes[0 * SLOT + ST_PENDING] = 0
    stripes[0 * SLOT + ST_STATE] = ACTIVE
    report = bus.shutdown(grace_s=0.0)
    assert stripes[0 * SLOT + ST_STATE] == ABANDONED     # it can no longer change anything
    assert not report.lossy and report.abandoned_producers == ()
    assert bus.stats().shutdown_was_lossy is False


def test_a_push_with_events_pending_at_the_deadline_is_cut_off_and_counted(bus_rig):
    from busbench.bus.config import ACTIVE, SLOT, ST_PENDING, ST_STATE
    bus = bus_rig.bus(shards=2, capacity=64, adapter="verify")
    stripes = bus.state.stripes
    stripes[1 * SLOT + ST_PENDING] = 5
    stripes[1 * SLOT + ST_STATE] = ACTIVE
    report = bus.shutdown(grace_s=0.0)
    assert report.lossy and report.abandoned_producers == (1,)
    assert report.stranded_events == 5 and bus.ground_truth().stranded.tolist() == [0, 5]
    assert bus.stats().shutdown_was_lossy is True and bus.stats().events_dropped == 5
