"""The checks, branch by branch, on synthetic Evidence with known answers.

Each test builds the evidence of a small imagined run (which events each
producer offered, which the witness received, which the bus says it dropped)
and asserts the verdict the contract demands: passed, failed, not evaluable
(the run did not produce the evidence) or not observable (the target cannot).
"""
from __future__ import annotations

import pytest

from busbench.common import names as N
from busbench.evidence.types import FlushEvidence, ShutdownEvidence
from busbench.load.generator import ProducerTruth
from busbench.native.payload import checksum
from busbench.verdicts import checks as C
from busbench.scenario.schema import CheckSpec
from busbench.scenario.thresholds import parse_threshold

FULL_CAPS = {"witness": "verify adapter", "witness_hint": ""}


def spec(kind, **kw):
    return CheckSpec(kind=kind, **kw)


def producer(offered, refused=(), stranded=(), turned_away=0):
    """A producer's own tallies for the seqs it offered (refused / stranded subsets)."""
    return ProducerTruth(offered=len(offered), landed=len(offered) - len(refused) - len(stranded),
                         refused=len(refused), turned_away=turned_away, stranded=len(stranded),
                         late=0, unsent=0, calls=1, retries=0, next_seq=len(offered),
                         offered_sum=checksum(offered), refused_sum=checksum(refused),
                         stranded_sum=checksum(stranded))


def delivery(received, evicted=None, rejected=None, order_violations=0, **extra):
    """received/evicted/rejected: per producer, the seqs (all on shard 0)."""
    n = len(received)
    evicted = evicted or [[] for _ in range(n)]
    rejected = rejected or [[] for _ in range(n)]
    d = {"witness": "verify adapter",
         "received_by_shard": [[len(r) for r in received]],
         "last_seq_by_shard": [[max(r) if r else -1 for r in received]],
         "received_sum": [checksum(r) for r in received],
         "order_violations": order_violations,
         "evicted_by_shard": [[len(e) for e in evicted]],
         "rejected_by_shard": [[len(r) for r in rejected]],
         "evicted_sum": [checksum(e) for e in evicted],
         "rejected_sum": [checksum(r) for r in rejected],
         "duplicates": None, "received_and_dropped": None, "beyond_bitmap": 0}
    d.update(extra)
    return d


def evidence(producers=(), delivery=None, counters=None, flushes=(), shutdown=None,
             quiescent=True, caps=FULL_CAPS, backpressure="drop_newest", metrics=None):
    if counters is None:
        offered = sum(p.offered for p in producers)
        received = sum(sum(row) for row in delivery["received_by_shard"]) if delivery else 0
        counters = {N.EVENTS_INGESTED: offered, N.EVENTS_DISPATCHED: received,
                    N.EVENTS_DROPPED: offered - received, N.BATCHES_DISPATCHED: 1,
                    N.SHUTDOWN_WAS_LOSSY: False}
    if isinstance(shutdown, dict):      # the fields a test names; the others as a quiet bus's
        shutdown = ShutdownEvidence(**{"lossy": None, "stranded_events": None,
                                       "stranded_by_producer": None, "abandoned_producers": None,
                                       "duration_s": 0.0, "grace_s": 0.0, "residue": None,
                                       "details": {}, **shutdown})
    return C.Evidence(counters=counters, producers=list(producers), delivery=delivery,
                      flushes=[FlushEvidence.from_dict(f) for f in flushes], shutdown=shutdown,
                      metrics=metrics or {},
                      quiescent=quiescent, capabilities=dict(caps), backpressure=backpressure)


def outcome(kind, ev, **kw):
    return C.evaluate(spec(kind, **kw), ev)


R = list(range(10))


# --------------------------------------------------------------------------- conservation
def test_conservation_passes_when_dispatched_plus_dropped_is_ingested():
    ev = evidence(counters={N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 7, N.EVENTS_DROPPED: 3})
    assert outcome(N.CONSERVATION, ev).outcome == C.PASSED


@pytest.mark.parametrize("dropped, word", [(2, "unaccounted for"), (5, "counted too many")])
def test_conservation_fails_on_either_side(dropped, word):
    ev = evidence(counters={N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 7, N.EVENTS_DROPPED: dropped})
    v = outcome(N.CONSERVATION, ev)
    assert v.outcome == C.FAILED and word in v.evidence and not v.ok


def test_conservation_is_not_evaluable_while_producers_run():
    ev = evidence(counters={N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 1, N.EVENTS_DROPPED: 0},
                  quiescent=False)
    v = outcome(N.CONSERVATION, ev)
    assert v.outcome == C.NOT_EVALUABLE and not v.ok


def test_conservation_is_not_observable_without_the_counter_and_never_indexes_it():
    ev = evidence(counters={N.EVENTS_INGESTED: 10, N.EVENTS_DROPPED: 0})
    v = outcome(N.CONSERVATION, ev)
    assert v.outcome == C.NOT_OBSERVABLE and "events_dispatched" in v.evidence and not v.ok


# --------------------------------------------------------------------------- ground truth
def test_ground_truth_passes_when_every_event_is_accounted_once():
    ev = evidence([producer(R, refused=[8, 9]), producer(R)], delivery([R[:8], R]))
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.PASSED, v.evidence
    assert v.numbers["by_producer"]["0"]["checksum_matches"]


def test_ground_truth_fails_on_an_event_lost_silently():
    ev = evidence([producer(R)], delivery([R[:9]]),
                  counters={N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 9, N.EVENTS_DROPPED: 1})
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "1 events never accounted for" in v.evidence


def test_ground_truth_checksum_catches_a_double_report_covering_a_silent_loss():
    # Event 3 delivered and also reported evicted; event 9 lost: the counts balance.
    ev = evidence([producer(R)], delivery([R[:9]], evicted=[[3]]), backpressure="drop_oldest",
                  counters={N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 9, N.EVENTS_DROPPED: 1})
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "checksums do not" in v.evidence, v.evidence
    assert v.numbers["by_producer"]["0"]["count_difference"] == 0


def test_ground_truth_fails_on_an_event_accounted_twice():
    ev = evidence([producer(R)], delivery([R], evicted=[[3]]), backpressure="drop_oldest")
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "accounted for twice" in v.evidence


@pytest.mark.parametrize("what", ["duplicate", "reordering"])
def test_ground_truth_fails_on_fifo_violations_per_producer_and_shard(what):
    # The witness counts a seq not above the last received on its shard; a duplicate
    # also unbalances the counts, a reordering does not.
    received = [0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9] if what == "duplicate" else [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]
    d = delivery([received], order_violations=1)
    ev = evidence([producer(R)], d)
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "out of order or twice" in v.evidence


def test_ground_truth_reports_bitmap_duplicates_and_received_and_dropped_in_events():
    d = delivery([R], duplicates=2, received_and_dropped=3)
    v = outcome(N.GROUND_TRUTH, evidence([producer(R)], d))
    assert v.outcome == C.FAILED
    assert "2 events received twice" in v.evidence
    assert "3 events received although reported dropped" in v.evidence
    assert v.numbers["received_and_dropped"] == 3


def test_ground_truth_notes_bitmap_coverage_without_failing():
    v = outcome(N.GROUND_TRUTH, evidence([producer(R)], delivery([R], beyond_bitmap=5)))
    assert v.outcome == C.PASSED and "all but 5 events" in v.evidence


def test_ground_truth_fails_when_producer_and_bus_disagree_on_stranded():
    ev = evidence([producer(R, stranded=[9])], delivery([R[:9]]),
                  shutdown={"stranded_by_producer": [2], "residue": 0, "grace_s": 0})
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "bus counted 2" in v.evidence


def test_ground_truth_fails_on_evictions_outside_drop_oldest():
    ev = evidence([producer(R)], delivery([R[:9]], evicted=[[9]]), backpressure="drop_newest")
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and "only drop_oldest evicts" in v.evidence


def test_ground_truth_fails_on_residue_after_the_final_drain():
    ev = evidence([producer(R)], delivery([R]), shutdown={"stranded_by_producer": [0],
                                                          "residue": 4, "grace_s": 5})
    assert "left in the rings" in outcome(N.GROUND_TRUTH, ev).evidence


@pytest.mark.parametrize("counter, value, text", [
    (N.EVENTS_INGESTED, 11, "producers offered"),
    (N.EVENTS_DISPATCHED, 11, "the witness received"),
    (N.EVENTS_DROPPED, 3, "refused + evicted + rejected + stranded"),
])
def test_ground_truth_holds_each_counter_to_both_sides(counter, value, text):
    counters = {N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 8, N.EVENTS_DROPPED: 2}
    counters[counter] = value
    ev = evidence([producer(R, refused=[8, 9])], delivery([R[:8]]), counters=counters)
    v = outcome(N.GROUND_TRUTH, ev)
    assert v.outcome == C.FAILED and text in v.evidence


def test_ground_truth_skips_a_counter_the_target_does_not_export():
    counters = {N.EVENTS_INGESTED: 10, N.EVENTS_DROPPED: 0}
    v = outcome(N.GROUND_TRUTH, evidence([producer(R)], delivery([R]), counters=counters))
    assert v.outcome == C.PASSED and N.EVENTS_DISPATCHED not in v.numbers["counters_compared"]


def test_ground_truth_is_not_evaluable_while_producers_run():
    v = outcome(N.GROUND_TRUTH, evidence([producer(R)], delivery([R[:3]]), quiescent=False))
    assert v.outcome == C.NOT_EVALUABLE


def test_ground_truth_without_a_witness_says_how_to_get_one_or_that_the_target_has_none():
    hinted = evidence([producer(R)], None, caps={"witness": None,
                                                 "witness_hint": "bus.adapter.kind: verify"})
    v = outcome(N.GROUND_TRUTH, hinted)
    assert v.outcome == C.NOT_EVALUABLE and "verify" in v.evidence
    none = evidence([producer(R)], None, caps={"witness": None, "witness_hint": ""})
    assert outcome(N.GROUND_TRUTH, none).outcome == C.NOT_OBSERVABLE


def test_ground_truth_is_not_observable_when_drops_are_not_attributed():
    d = delivery([R])
    d["evicted_by_shard"] = None
    assert outcome(N.GROUND_TRUTH, evidence([producer(R)], d)).outcome == C.NOT_OBSERVABLE


# --------------------------------------------------------------------------- flush barrier
def flush(claimed=True, landed=10, last=9, received=10, last_received=9, ev0=0, ev1=0,
          rejected=0, witness=True, positions_reached=None, step=1):
    f = {"step": step, "timeout_s": 0.2, "under_load": False, "claimed_reached": claimed,
         "timed_out": not claimed, "waited_s": 0.01, "landed_before": [[landed]],
         "last_landed_before": [[last]], "witness": "verify adapter" if witness else None,
         "evicted_before": [[ev0]] if witness else None,
         "received_after": [[received]] if witness else None,
         "last_received_after": [[last_received]] if witness else None,
         "evicted_after": [[ev1]] if witness else None,
         "rejected_after": [[rejected]] if witness else None, "positions": {},
         "witness_shortfall": None, "details": {}}
    if positions_reached is not None:
        f["positions"] = {"reached": positions_reached,
                          "shards": [{"shard": 0, "reached": positions_reached,
                                      "unsettled": 0 if positions_reached else 5}]}
    return f


def fb(*flushes):
    return outcome(N.FLUSH_BARRIER, evidence(flushes=flushes))


def test_flush_barrier_is_not_evaluable_without_a_flush():
    assert fb().outcome == C.NOT_EVALUABLE


def test_flush_barrier_passes_when_every_landed_event_was_received_or_dropped():
    v = fb(flush(received=6, last_received=5, rejected=1, ev0=3))
    assert v.outcome == C.PASSED and "landed counts" in v.evidence


def test_flush_barrier_fails_when_success_is_claimed_with_events_inside_the_bus():
    v = fb(flush(received=4, last_received=3))
    assert v.outcome == C.FAILED and "6 events landed before the call" in v.evidence


def test_flush_barrier_passes_a_flush_that_timed_out_and_said_so():
    v = fb(flush(claimed=False, received=0, last_received=-1))
    assert v.outcome == C.PASSED and "timed out and said so" in v.evidence
    assert v.numbers["timed_out"] == 1


def test_flush_barrier_trusts_a_later_received_seq_over_counts():
    # evictions during the flush leave counts undecided, but the witness got seq 12 > 9
    v = fb(flush(received=5, last_received=12, ev0=0, ev1=7))
    assert v.outcome == C.PASSED


def test_flush_barrier_undecided_counts_fall_back_to_positions_and_say_so():
    undecided = dict(received=5, last_received=6, ev0=1, ev1=9)
    v = fb(flush(**undecided, positions_reached=False))
    assert v.outcome == C.FAILED and "positions" in v.evidence
    v = fb(flush(**undecided, positions_reached=True))
    assert v.outcome == C.PASSED and any("positions" in r for r in v.numbers["rests_on"])
    v = fb(flush(**undecided))
    assert v.outcome == C.NOT_EVALUABLE and "undecided" in v.evidence


def test_flush_barrier_without_a_witness_rests_on_positions_and_says_so():
    v = fb(flush(witness=False, positions_reached=True))
    assert v.outcome == C.PASSED and "no witness" in v.evidence
    assert fb(flush(witness=False, positions_reached=False)).outcome == C.FAILED
    assert fb(flush(witness=False)).outcome == C.NOT_EVALUABLE


def test_flush_completes_fails_on_a_timeout_and_passes_otherwise():
    assert outcome(N.FLUSH_COMPLETES, evidence(flushes=[flush()])).outcome == C.PASSED
    v = outcome(N.FLUSH_COMPLETES, evidence(flushes=[flush(), flush(claimed=False, step=3)]))
    assert v.outcome == C.FAILED and "step 3 timed out" in v.evidence
    assert outcome(N.FLUSH_COMPLETES, evidence()).outcome == C.NOT_EVALUABLE


# --------------------------------------------------------------------------- lossy shutdown
def lossy_ev(flag, producer_stranded, bus_stranded, **kw):
    counters = {N.EVENTS_INGESTED: 10, N.EVENTS_DISPATCHED: 10, N.EVENTS_DROPPED: 0,
                N.SHUTDOWN_WAS_LOSSY: flag}
    producers = [producer(R, stranded=list(range(10 - k, 10))) for k in producer_stranded]
    return evidence(producers, None, counters=counters,
                    shutdown={"lossy": flag, "stranded_by_producer": bus_stranded,
                              "abandoned_producers": [], "grace_s": 0.1, "residue": 0}, **kw)


@pytest.mark.parametrize("flag, stranded", [(False, [0, 0]), (True, [3, 0])])
def test_lossy_shutdown_passes_when_the_flag_agrees_with_the_producers(flag, stranded):
    v = outcome(N.LOSSY_SHUTDOWN, lossy_ev(flag, stranded, stranded))
    assert v.outcome == C.PASSED, v.evidence


def test_lossy_shutdown_fails_a_flag_set_without_cause():
    v = outcome(N.LOSSY_SHUTDOWN, lossy_ev(True, [0, 0], [0, 0]))
    assert v.outcome == C.FAILED and "no producer had a push cut off" in v.evidence


def test_lossy_shutdown_fails_a_flag_hiding_a_cut_off_push():
    v = outcome(N.LOSSY_SHUTDOWN, lossy_ev(False, [3, 0], [3, 0]))
    assert v.outcome == C.FAILED and "producer(s) 0 had a push cut off" in v.evidence


def test_lossy_shutdown_fails_when_stranded_events_are_not_counted_exactly_once():
    v = outcome(N.LOSSY_SHUTDOWN, lossy_ev(True, [3, 0], [6, 0]))
    assert v.outcome == C.FAILED and "the bus counted 6" in v.evidence


def test_lossy_shutdown_value_is_an_extra_expectation():
    ev = lossy_ev(True, [3, 0], [3, 0])          # an honest lossy shutdown
    assert outcome(N.LOSSY_SHUTDOWN, ev, value=True).outcome == C.PASSED
    v = outcome(N.LOSSY_SHUTDOWN, ev, value=False)
    assert v.outcome == C.FAILED and "expected false" in v.evidence
    assert outcome(N.LOSSY_SHUTDOWN, ev, value=False, expect="fail").ok


def test_lossy_shutdown_not_evaluable_or_not_observable():
    ev = lossy_ev(False, [0], [0])
    assert outcome(N.LOSSY_SHUTDOWN, C.Evidence(**{**ev.__dict__, "shutdown": None})).outcome \
        == C.NOT_EVALUABLE
    assert outcome(N.LOSSY_SHUTDOWN, C.Evidence(**{**ev.__dict__, "quiescent": False})).outcome \
        == C.NOT_EVALUABLE
    no_flag = {k: v for k, v in ev.counters.items() if k != N.SHUTDOWN_WAS_LOSSY}
    v = outcome(N.LOSSY_SHUTDOWN, C.Evidence(**{**ev.__dict__, "counters": no_flag}))
    assert v.outcome == C.NOT_OBSERVABLE and not v.ok


# --------------------------------------------------------------------------- thresholds and verdicts
def test_threshold_passes_fails_and_is_not_evaluable_without_its_metric():
    t = parse_threshold("throughput >= 5M/s")
    s = CheckSpec(kind="threshold", threshold=t)
    assert C.evaluate(s, evidence(metrics={"throughput": 6e6})).outcome == C.PASSED
    assert C.evaluate(s, evidence(metrics={"throughput": 4e6})).outcome == C.FAILED
    assert C.evaluate(s, evidence(metrics={})).outcome == C.NOT_EVALUABLE


@pytest.mark.parametrize("outcome_, expect, ok", [
    (C.PASSED, "pass", True), (C.FAILED, "pass", False), (C.FAILED, "fail", True),
    (C.PASSED, "fail", False), (C.NOT_EVALUABLE, "pass", False), (C.NOT_EVALUABLE, "fail", False),
    (C.NOT_OBSERVABLE, "pass", False), (C.NOT_OBSERVABLE, "fail", False)])
def test_a_verdict_is_ok_only_when_it_came_out_as_declared(outcome_, expect, ok):
    v = C.Verdict("x", "conservation", outcome_, expect, "")
    assert v.ok is ok


def test_evidence_round_trips_through_a_dict():
    ev = evidence([producer(R)], delivery([R]), flushes=[flush()])
    assert C.Evidence.from_dict(ev.to_dict()) == ev


def test_flush_barrier_for_a_bus_that_chooses_shards_uses_the_targets_per_event_shortfall():
    f = flush(witness=False)
    f["landed_before"] = f["last_landed_before"] = None
    f["witness"] = "redis streams"
    f["witness_shortfall"] = 0
    v = fb(f)
    assert v.outcome == C.PASSED and "per-event shortfall" in v.evidence
    v = fb(dict(f, witness_shortfall=7))
    assert v.outcome == C.FAILED and "7 events landed before the call" in v.evidence


def test_not_observable_says_why_in_the_targets_words():
    caps = {"witness": None, "witness_hint": "",
            "reasons": {N.SHUTDOWN_WAS_LOSSY: "net-mesh 0.45.1 exports no lossy flag",
                        "delivery": "adapter noop: nothing downstream witnesses deliveries"}}
    ev = lossy_ev(False, [0], [0])
    no_flag = {k: v for k, v in ev.counters.items() if k != N.SHUTDOWN_WAS_LOSSY}
    v = outcome(N.LOSSY_SHUTDOWN, C.Evidence(**{**ev.__dict__, "counters": no_flag,
                                                 "capabilities": caps}))
    assert v.outcome == C.NOT_OBSERVABLE and "0.45.1 exports no lossy flag" in v.evidence
    v = outcome(N.GROUND_TRUTH, evidence([producer(R)], None, caps=caps))
    assert v.outcome == C.NOT_OBSERVABLE and "adapter noop" in v.evidence
