"""Runs that cannot hang: every run has a deadline; past it the run stops
safely, writes its record with status timed_out and exits 3 (issue 9 part 5).

The stalls here are far longer than the deadlines, so a run that ignored its
deadline would show as a hung test, not as a pass: no wall-clock assertion is
needed (the machine is shared and loaded).
"""
from __future__ import annotations

import json
import threading

import pytest
from cli_helpers import cli, flat

from busbench.run import watchdog as W
from busbench.evidence.result import EXIT_CODES, TIMED_OUT
from busbench.run.runner import Runner
from busbench.scenario import load_scenario_text

pytestmark = pytest.mark.slow


def busbench_threads():
    return [t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith("busbench-")]


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def only_record(out):
    records = list(out.glob("*.json"))
    assert len(records) == 1, records
    return json.loads(records[0].read_text(encoding="utf-8"))


STALLED_ADAPTER = """\
name: stalled-adapter
description: the adapter freezes for a minute; flush and sleep would wait for it
bus: {shards: 2, capacity: 64, backpressure: block, block_timeout: 5ms}
load: {producers: 2}
steps:
  - fault: {stall_adapter: {for: 60s}}
  - run: 300ms
  - flush: {timeout: 60s}
  - sleep: 60s
checks: [conservation, ground_truth]
"""


def test_a_stalled_adapter_past_the_deadline_ends_the_run_timed_out_exit_3(tmp_path):
    out = tmp_path / "out"
    result = cli("run", write(tmp_path, STALLED_ADAPTER), "--no-live", "--out", out, "--timeout", "2s")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    record = only_record(out)
    assert record["status"] == TIMED_OUT and record["exit_code"] == 3
    assert record["deadline"]["seconds"] == 2 and record["deadline"]["source"] == W.FROM_OPTION
    assert "deadline" in record["error"] and "step 3 (flush)" in record["error"]
    assert record["threads_left"] == []
    assert busbench_threads() == []
    # nothing judged after the deadline: the end checks were not evaluated
    assert record["checks"] == []


def test_busbench_check_on_a_timed_out_record_says_the_run_did_not_complete(tmp_path):
    """The record of a run ended at its deadline has no evidence for the steps
    it did not reach and no end checks: `busbench check` says so and exits 1
    (never 0: nothing was judged), instead of refusing the record or judging
    checks that were never evaluated."""
    out = tmp_path / "out"
    assert cli("run", write(tmp_path, STALLED_ADAPTER), "--no-live", "--out", out,
               "--timeout", "1s").exit_code == 3
    record = next(out.glob("*.json"))
    result = cli("check", record)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "did not complete (status timed_out)" in flat(result.output)


STALLED_PRODUCER = """\
name: stalled-producer
description: a producer freezes mid-push for a minute with a long shutdown grace
bus: {shards: 2, capacity: 256}
load: {producers: 2}
timeout: 2s
steps:
  - fault: {stall_producer: {producer: 0, after: 10ms, for: 60s}}
  - run: 200ms
  - shutdown: {grace: 60s}
checks: [conservation]
"""


def test_a_stalled_producer_past_the_scenario_timeout_ends_the_run_timed_out(tmp_path):
    out = tmp_path / "out"
    result = cli("run", write(tmp_path, STALLED_PRODUCER), "--no-live", "--out", out)
    assert result.exit_code == 3, result.output
    record = only_record(out)
    assert record["status"] == TIMED_OUT
    assert record["deadline"]["source"] == W.FROM_SCENARIO and record["deadline"]["seconds"] == 2
    assert record["threads_left"] == [] and busbench_threads() == []


COUNT_STEP = """\
name: count-step-too-slow
description: an open loop at 200 events/s asked for a million events
bus: {shards: 2, capacity: 1024}
load: {producers: 2, rate: 200/s, batch: 10}
steps:
  - run: 1M
checks: [conservation]
"""


def test_a_count_step_that_cannot_finish_is_ended_by_the_watchdog_and_counts_unsent(tmp_path):
    out = tmp_path / "out"
    result = cli("run", write(tmp_path, COUNT_STEP), "--no-live", "--out", out, "--timeout", "1s")
    assert result.exit_code == 3, result.output
    record = only_record(out)
    assert record["status"] == TIMED_OUT
    sent = sum(p["offered"] + p["turned_away"] for p in record["producers"])
    unsent = sum(p["unsent"] for p in record["producers"])
    assert sent + unsent == 1_000_000       # the count step's rest is unsent, event for event
    assert unsent > 0 and record["metrics"]["unsent"] == unsent
    assert busbench_threads() == []


def test_the_watchdog_is_idle_on_a_run_that_ends_in_time(tmp_path):
    sc = load_scenario_text("name: quick\ndescription: d\nbus: {shards: 2, capacity: 256}\n"
                            "steps: [run: 100ms, flush]\nchecks: [conservation, ground_truth]\n")
    result = Runner(sc, timeout_s=120.0).run()
    assert result.status == "passed", [v.evidence for v in result.checks]
    assert result.deadline["source"] == W.FROM_OPTION
    assert result.threads_left == [] and busbench_threads() == []


def test_timeout_option_needs_a_duration(tmp_path):
    result = cli("run", write(tmp_path, COUNT_STEP), "--no-live", "--out", tmp_path / "o",
                 "--timeout", "10")
    assert result.exit_code == 2
    assert "--timeout" in result.output and "unit" in flat(result.output)


def test_exit_code_of_timed_out_is_3():
    assert EXIT_CODES[TIMED_OUT] == 3


# --------------------------------------------------------------------- deadlines, unit


def scenario(text):
    return load_scenario_text(text)


BASE = "name: s\ndescription: d\nchecks: [conservation]\n"


def test_default_deadline_is_twice_the_planned_time_plus_a_minute():
    sc = scenario(BASE + "steps: [run: 2s, {flush: {timeout: 3s}}, sleep: 1s, {shutdown: {grace: 4s}}]\n")
    d = W.run_deadline(sc)
    assert d.source == W.FROM_PLAN
    assert d.planned_s == pytest.approx(2 + 3 + 1 + 4, abs=0.01)   # noop drain, no block waits
    assert d.seconds == pytest.approx(d.planned_s * W.SLACK_FACTOR + W.SLACK_S)


def test_planned_time_counts_stalls_count_steps_and_the_implicit_shutdown():
    sc = scenario(BASE + "load: {rate: 1000/s}\nsteps: [run: 5000, "
                  "{fault: {stall_adapter: {after: 1s, for: 10s}}}]\n")
    assert W.planned_seconds(sc) == pytest.approx(5 + 11 + W.IMPLICIT_SHUTDOWN_GRACE_S, abs=0.01)


def test_planned_time_counts_draining_full_rings_through_a_slow_adapter():
    sc = scenario(BASE + "bus: {shards: 2, capacity: 1024, batch: {max_events: 1}, "
                  "adapter: {kind: slow, per_batch: 1ms}}\nsteps: [run: 1s]\n")
    drain = 2 * 1024 * 1e-3
    assert W.planned_seconds(sc) == pytest.approx(1 + W.IMPLICIT_SHUTDOWN_GRACE_S + drain, abs=0.01)


def test_planned_time_lets_each_event_of_a_call_in_progress_wait_for_room():
    """block: a call of 4096 events may wait up to block_timeout per event (the
    wait restarts after each bit of progress), not once per shard group."""
    sc = scenario(BASE + "bus: {shards: 1024, capacity: 2, backpressure: block, "
                  "block_timeout: 1ms}\nload: {batch: 4096}\nsteps: [run: 1s]\n")
    assert W.planned_seconds(sc) == pytest.approx(1 + 4.096 + W.IMPLICIT_SHUTDOWN_GRACE_S,
                                                  abs=0.01)


def test_option_wins_over_the_scenario_timeout_which_wins_over_the_plan():
    sc = scenario(BASE + "timeout: 7s\nsteps: [run: 1s]\n")
    assert W.run_deadline(sc) .seconds == 7 and W.run_deadline(sc).source == W.FROM_SCENARIO
    assert W.run_deadline(sc, 3.0).seconds == 3 and W.run_deadline(sc, 3.0).source == W.FROM_OPTION


def test_scenario_timeout_must_be_a_duration():
    from busbench.scenario import ScenarioError
    with pytest.raises(ScenarioError) as error:
        scenario(BASE + "timeout: 5\nsteps: [run: 1s]\n")
    assert "timeout" in str(error.value) and "unit" in str(error.value)


def test_watchdog_expiry_runs_its_actions_once_and_wakes_sleepers():
    calls = []
    dog = W.Watchdog(W.Deadline(0.05, W.FROM_OPTION, 0.0), on_expire=[lambda: calls.append(1)])
    dog.start()
    dog.sleep(60.0)               # returns at the deadline, not after a minute
    assert dog.cut_short
    assert dog._expired.wait(10.0)    # the watchdog's own thread fires (bounded wait)
    dog.cancel()
    assert calls == [1]
    with pytest.raises(W.RunTimedOut, match="0.05s deadline"):
        dog.check()


def test_a_wait_clipped_at_the_deadline_marks_the_run_cut_short_once_it_comes():
    dog = W.Watchdog(W.Deadline(1.5, W.FROM_OPTION, 0.0)).start()
    try:
        assert dog.clip(0.01) == 0.01 and not dog.cut_short
        clipped = dog.clip(120.0)
        assert clipped <= 1.5
        dog.check()                 # a clipped wait that ends early (a flush that reached) is fine
        threading.Event().wait(clipped)
        assert dog.cut_short        # it ran into the deadline: its outcome is never judged
        with pytest.raises(W.RunTimedOut):
            dog.check()
    finally:
        dog.cancel()


def test_a_cancelled_watchdog_never_fires():
    calls = []
    dog = W.Watchdog(W.Deadline(0.2, W.FROM_OPTION, 0.0), on_expire=[lambda: calls.append(1)]).start()
    dog.cancel()
    threading.Event().wait(0.4)
    assert not dog.expired and calls == []


def test_planned_time_of_a_fault_without_a_duration_counts_its_start():
    """kill_adapter (net-mesh) has no duration (the shipped kill_adapter scenario raised
    AttributeError here before any run); its restart falls within the deadline's slack."""
    from busbench.scenario import load_scenario
    sc = load_scenario("scenarios/net-mesh/kill_adapter.yaml")
    without = sc.model_copy(update={"steps": tuple(s for s in sc.steps if s.tag != "fault")})
    assert W.planned_seconds(sc) == pytest.approx(W.planned_seconds(without) + 0.1, abs=0.01)
