"""The target seam: the runner drives any Target, and a foreign bus's lies are caught.

``FakeTarget`` (busbench/targets/fake.py) is a plain-Python bus that can be told
to lie about its flush, its lossy flag and its counters, to lose events, to
report a delivered event as evicted, or to export less. The runner and the
checks must catch every lie from the producers' and the witness's evidence, and
say "not observable" (never pass) where the target cannot provide evidence.
"""
from __future__ import annotations

import json

import pytest

from busbench.common import names as N
from busbench.reports import junit, markdown
from busbench.reports import summary as summary_report
from busbench.run.runner import Runner
from busbench.scenario.schema import Scenario
from busbench.targets.fake import FakeTarget, Lies

EVENTS = 200


def scenario(backpressure="drop_newest", flush=True, producers=2):
    checks = ["conservation", "ground_truth", "lossy_shutdown"] + (["flush_barrier"] if flush else [])
    return Scenario.model_validate({
        "name": "fake", "description": "a scripted foreign bus",
        "bus": {"shards": 2, "backpressure": backpressure},
        "load": {"producers": producers, "batch": 10},
        "steps": [{"run": {"events": EVENTS}}] + (["flush"] if flush else [])
        + [{"shutdown": {"grace": "100ms"}}],
        "checks": checks})


def run(target, **kw):
    result = Runner(scenario(**kw), "fake.yaml", target=target).run()
    assert result.status in (N.RUN_PASSED, N.RUN_FAILED), result.error
    return result, {v.kind: v for v in result.checks}


def test_an_honest_fake_passes_every_check():
    result, v = run(FakeTarget(shards=2, producers=2))
    assert result.status == N.RUN_PASSED, [(x.name, x.evidence) for x in result.checks]
    assert sum(p.offered for p in result.producers) == EVENTS
    assert all(x.outcome == N.PASSED for x in v.values())
    assert result.target == "fake"


def test_a_flush_claiming_success_with_events_inside_is_caught():
    _, v = run(FakeTarget(lies=Lies(flush_claims_reached=True)))
    assert v["flush_barrier"].outcome == N.FAILED
    assert f"{EVENTS} events landed before the call" in v["flush_barrier"].evidence


def test_a_lossy_flag_set_without_cause_is_caught():
    _, v = run(FakeTarget(lies=Lies(lossy_flag=True)))
    assert v["lossy_shutdown"].outcome == N.FAILED
    assert "no producer had a push cut off" in v["lossy_shutdown"].evidence


def test_queued_events_dropped_at_shutdown_and_called_stranded_are_caught():
    _, v = run(FakeTarget(lies=Lies(strand_at_shutdown=3)), flush=False)
    assert v["lossy_shutdown"].outcome == N.FAILED
    assert v["ground_truth"].outcome == N.FAILED
    assert v["conservation"].outcome == N.PASSED       # its counters are consistent


def test_a_bent_counter_is_caught():
    _, v = run(FakeTarget(lies=Lies(counter_offsets={N.EVENTS_DISPATCHED: 5})))
    assert v["conservation"].outcome == N.FAILED
    assert v["ground_truth"].outcome == N.FAILED


def test_events_lost_silently_with_consistent_counters_are_caught_by_ground_truth_only():
    _, v = run(FakeTarget(lies=Lies(lose_every=7)))
    assert v["conservation"].outcome == N.PASSED
    assert v["ground_truth"].outcome == N.FAILED and "never accounted for" in v["ground_truth"].evidence


def test_a_delivered_event_also_reported_evicted_cannot_cover_a_lost_one():
    # one event lost (the 150th delivered), one delivered and reported evicted: counts balance
    _, v = run(FakeTarget(producers=1, lies=Lies(lose_every=150, evicted_and_delivered=1)),
               backpressure="drop_oldest", producers=1)
    gt = v["ground_truth"]
    assert gt.outcome == N.FAILED and "checksums do not" in gt.evidence, gt.evidence


def test_evidence_a_target_lacks_is_not_observable_never_a_pass(tmp_path):
    target = FakeTarget(counters=(N.EVENTS_INGESTED, N.EVENTS_DROPPED), witness=False)
    result, v = run(target)
    assert v["conservation"].outcome == N.NOT_OBSERVABLE
    assert v["lossy_shutdown"].outcome == N.NOT_OBSERVABLE
    assert v["ground_truth"].outcome == N.NOT_OBSERVABLE
    assert v["flush_barrier"].outcome == N.NOT_EVALUABLE      # no witness, no positions
    assert result.status == N.RUN_FAILED                       # never a pass
    assert N.EVENTS_DISPATCHED not in result.counters
    # every report says so
    assert "not observable on this target" in markdown.render([result])
    assert "not observable on this target" in junit.render([result])
    from rich.console import Console
    console = Console(record=True, width=200)
    console.print(summary_report.render(result))
    text = console.export_text()
    assert "not observable on this target" in text and "not exported" in text
    from busbench.reports import json_report
    record = json.loads(json_report.render(result))
    assert {c["outcome"] for c in record["checks"]} >= {N.NOT_OBSERVABLE}
    assert record["capabilities"]["witness"] is None


@pytest.mark.parametrize("kind", ["noop", "verify", "slow", "flaky", "stall"])
def test_builtin_translates_each_adapter_kind_explicitly(kind):
    from busbench.targets.builtin import bus_config
    adapter = {"kind": kind, **({"for": "10ms"} if kind == "stall" else {})}
    sc = Scenario.model_validate({"name": "x", "description": "x", "bus": {"adapter": adapter},
                                  "steps": [{"run": "10ms"}], "checks": []})
    assert bus_config(sc).adapter == kind


def test_builtin_refuses_an_adapter_it_has_no_translation_for():
    from busbench.targets.base import TargetConfigError
    from busbench.targets.builtin import adapter_settings

    class Renamed:
        tag = "verify_v2"
    with pytest.raises(TargetConfigError, match="verify_v2"):
        adapter_settings(Renamed())


def test_an_open_loop_step_on_the_fake_target_sends_its_schedule():
    """The Python loop's jitted pieces are compiled in ``prepare``, before the
    step's clock starts: compiled lazily in the producer thread they used to
    take a 300 ms step's whole schedule (0 sent, every event counted unsent)."""
    sc = Scenario.model_validate({
        "name": "open", "description": "an open-loop timed step on the fake target",
        "bus": {"shards": 2}, "load": {"producers": 1, "batch": 16, "rate": "100k/s"},
        "steps": [{"run": "300ms"}], "checks": []})
    result = Runner(sc, "open.yaml", target=FakeTarget(shards=2, producers=1)).run()
    assert result.status == N.RUN_PASSED, result.error
    (p,) = result.producers
    assert p.offered + p.unsent >= 29_000        # the schedule: 100k/s for 300 ms
    assert p.offered > p.unsent, p               # most of it sent, not all left unsent
