"""Gathering runs for the gate: repeats, records with and without `runs`, bad files."""
import json

import pytest

from busbench.run import repeat as repeats
from busbench.verdicts import gating
from busbench.evidence.result import RunResult


def _result(status="passed", throughput=1e6, cpu=50.0):
    result = RunResult(scenario_name="s", scenario={}, source="s.yaml", target="builtin",
                       layout="padded", environment={"load_average_at_start": [0.1, 0.1, 0.1]},
                       started_at="now", status=status)
    result.metrics = {"throughput": throughput, "cpu_per_event": cpu}
    result.throughput_samples = [throughput]
    return result


def test_repeats_keep_every_run_and_the_worst_status_names_the_separate_run():
    others = iter([{"status": "failed", "metrics": {"throughput": 2e6}, "record": "r2.json"},
                   {"status": "passed", "metrics": {"throughput": 3e6}, "record": "r3.json"}])
    chosen = repeats.run_repeated(lambda: _result(throughput=1e6), 3, lambda: next(others))
    assert chosen.status == "failed" and chosen.metrics["throughput"] == 1e6
    assert [run["metrics"]["throughput"] for run in chosen.runs] == [1e6, 2e6, 3e6]
    assert "run 2 of 3 (a separate process) failed" in chosen.error and "r2.json" in chosen.error


def test_a_run_that_did_not_complete_ends_the_repeats():
    others = iter([{"status": "error", "metrics": {}, "record": None},
                   {"status": "passed", "metrics": {"throughput": 3e6}}])
    chosen = repeats.run_repeated(lambda: _result(), 3, lambda: next(others))
    assert chosen.status == "error" and len(chosen.runs) == 2


def test_a_run_that_crashed_is_that_runs_result_and_the_others_go_on():
    others = iter([{"status": "crashed", "metrics": {}, "record": "r2.json"},
                   {"status": "passed", "metrics": {"throughput": 3e6}}])
    chosen = repeats.run_repeated(lambda: _result(), 3, lambda: next(others))
    assert [run["status"] for run in chosen.runs] == ["passed", "crashed", "passed"]
    assert chosen.status == "crashed" and chosen.exit_code == 3
    assert "run 2 of 3 (a separate process) crashed" in chosen.error


def test_records_give_one_value_per_counted_run_and_old_records_one_run():
    with_runs = _result()
    with_runs.runs = [repeats.run_summary(_result(throughput=v)) for v in (1e6, 2e6)]
    with_runs.runs.append(repeats.run_summary(_result("error", 9e9)))     # not counted
    old = _result(throughput=5e6).to_dict()
    del old["runs"]
    records = gating.Records(paths=["a", "b"], records=[with_runs.to_dict(), old])
    assert records.values("throughput") == [1e6, 2e6, 5e6]
    assert records.values("cpu_per_event") == [50.0, 50.0, 50.0]


def test_a_file_that_is_not_a_run_record_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "comparison"}))
    with pytest.raises(gating.BaselineError, match="bad.json: not a busbench run record"):
        gating.load_records([str(bad)])
    with pytest.raises(gating.BaselineError, match="cannot be gated"):
        gating.check_metric("latency.p99")
