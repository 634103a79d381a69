"""Latency under open-loop load shows a stalled downstream; uncorrected latency hides it.

scenarios/latency_stall.yaml: 1M events/s in open loop into small rings in block
mode; the downstream freezes for 200 ms. Every event due during the freeze waited
(corrected p99 >= 100 ms); measured from the actual send time (what a closed-loop
tool would report), only the few events already queued waited.
"""
import json

import pytest

from busbench.run.runner import Runner
from busbench.scenario import load_scenario


@pytest.fixture(scope="module")
def stalled_run():
    scenario = load_scenario("scenarios/latency_stall.yaml")
    return Runner(scenario, "scenarios/latency_stall.yaml").run()


def test_the_stall_shows_in_the_corrected_p99(stalled_run):
    assert stalled_run.status == "passed", [v.to_dict() for v in stalled_run.checks]
    assert stalled_run.metrics["latency.p99"] >= 100_000_000          # ns


def test_the_uncorrected_p99_stays_far_below_it(stalled_run):
    corrected = stalled_run.metrics["latency.p99"]
    uncorrected = stalled_run.metrics["latency_uncorrected.p99"]
    assert uncorrected < 20_000_000 and uncorrected * 5 < corrected


def test_sends_that_fell_behind_are_counted_late_and_the_rest_unsent(stalled_run):
    # open loop never skips an event to catch up, and stops at the step's end:
    # every due event was offered, or is counted unsent (how many depends on how
    # far behind the producers were when the second ran out: not asserted)
    offered = sum(p.offered + p.turned_away for p in stalled_run.producers)
    unsent = sum(p.unsent for p in stalled_run.producers)
    assert offered + unsent == 1_000_000               # 1M/s for 1 s, exactly
    assert stalled_run.metrics["late_sends"] > 0 and stalled_run.metrics["unsent"] == unsent


def test_both_latencies_are_in_the_record(stalled_run):
    lat = json.loads(json.dumps(stalled_run.to_dict()))["latency"]
    for key in ("corrected", "uncorrected"):
        assert set(lat[key]) >= {"count", "p50", "p90", "p99", "p999", "max", "mean"}
        assert lat[key]["count"] == stalled_run.counters["events_dispatched"]


def test_latency_can_be_switched_off():
    scenario = load_scenario("scenarios/throughput.yaml",
                             overrides=["bus.latency=false", "steps=[{run: 200ms}]", "checks=[]"])
    result = Runner(scenario, "x").run()
    assert result.latency is None
    assert not any(k.startswith("latency") for k in result.metrics)
