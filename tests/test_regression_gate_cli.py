"""`busbench run --baseline`: the regression gate, end to end through the CLI.

A real `--repeat 3` run of a short throughput scenario is the candidate; the
baselines are a first such record with every run's figure scaled, so the
expected verdict is known whatever this machine's speed: a baseline a hundred
times as fast must fail the gate, one a hundred times slower must pass it (the
runs are separate processes, whose spread on a loaded 2-core VM reaches 3x),
and a one-run baseline cannot be judged. The gate's unit is the whole run
(precision.gate): its statistics are tested on simulated runs in
tests/test_precision.py.
"""
import copy
import json

import pytest
from click.testing import CliRunner

from busbench.cli import main

SHORT = ["--set", "steps=[{run: 400ms}, {shutdown: {grace: 5s}}]", "--no-live", "-q"]


@pytest.fixture(scope="module")
def current_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate")
    result = CliRunner().invoke(main, ["run", "scenarios/throughput.yaml", *SHORT, "--repeat", "3",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = out.glob("throughput-*.json")
    data = json.loads(record.read_text())
    assert len(data["runs"]) == 3
    assert all(run["metrics"]["throughput"] > 0 and run["metrics"]["cpu_per_event"] > 0
               for run in data["runs"])
    return data


def _baseline(tmp_path, record, scale, keep=None, name="baseline"):
    data = copy.deepcopy(record)
    for run in data["runs"]:
        run["metrics"]["throughput"] *= scale
    if keep:
        data["runs"] = data["runs"][:keep]
    path = tmp_path / f"{name}-{scale}.json"
    path.write_text(json.dumps(data))
    return path


def _run_with(tmp_path, *baselines, extra=()):
    args = ["run", "scenarios/throughput.yaml", *SHORT, "--repeat", "3", "--out",
            str(tmp_path / "out"), *extra]
    for baseline in baselines:
        args += ["--baseline", str(baseline)]
    result = CliRunner().invoke(main, args)
    records = list((tmp_path / "out").glob("throughput-*.json"))
    return result, (json.loads(records[0].read_text()) if records else None)


def test_a_baseline_a_hundred_times_as_fast_fails_the_gate(tmp_path, current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 100.0))
    assert result.exit_code == 1, result.output
    assert record["gate"]["status"] == "fail" and record["status"] == "failed"
    assert record["gate"]["baseline_runs"] == 3 and record["gate"]["candidate_runs"] == 3
    assert "regression gate: fail" in result.output


def test_a_baseline_a_hundred_times_slower_passes_the_gate_and_states_its_resolution(tmp_path,
                                                                                current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 0.01))
    assert result.exit_code == 0, result.output
    assert record["gate"]["status"] == "pass"
    assert record["gate"]["resolution"] > 0 and "resolution ±" in record["gate"]["message"]
    assert record["gate"]["estimate"]["method"].startswith("ratio of geometric means")


def test_a_one_run_baseline_is_inconclusive_with_the_reason(tmp_path, current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 1.0, keep=1))
    assert record["gate"]["status"] == "inconclusive"
    assert result.exit_code == 0      # inconclusive is said, not failed
    assert "at least 2 runs on each side" in record["gate"]["message"]


def test_several_baseline_records_pool_their_runs(tmp_path, current_record):
    one = _baseline(tmp_path, current_record, 0.01, keep=1, name="a")
    two = _baseline(tmp_path, current_record, 0.01, keep=1, name="b")
    _, record = _run_with(tmp_path, one, two)
    assert record["gate"]["baseline_runs"] == 2 and record["gate"]["status"] == "pass"


def test_a_baseline_of_a_different_scenario_setting_is_refused_before_running(tmp_path,
                                                                               current_record):
    baseline = _baseline(tmp_path, current_record, 1.0)
    result, record = _run_with(tmp_path, baseline, extra=["--set", "bus.shards=2"])
    assert result.exit_code == 2 and record is None
    assert "scenario_hash differs" in result.output and "--allow-incomparable" in result.output
    result, record = _run_with(tmp_path, baseline,
                               extra=["--set", "bus.shards=2", "--allow-incomparable"])
    assert result.exit_code in (0, 1) and record["gate"]["comparability"]["comparable"] is False
    assert "scenario_hash differs" in result.output


def test_a_baseline_from_another_cpu_is_refused(tmp_path, current_record):
    data = copy.deepcopy(current_record)
    data["environment"]["cpu_model"] = "Some Other CPU"
    path = tmp_path / "other-cpu.json"
    path.write_text(json.dumps(data))
    result, _ = _run_with(tmp_path, path)
    assert result.exit_code == 2 and "cpu_model differs" in result.output


def test_compare_records_judges_whole_runs_and_says_its_resolution(tmp_path, current_record):
    slower = _baseline(tmp_path, current_record, 0.01)     # beyond any run-to-run spread
    same = _baseline(tmp_path, current_record, 1.0, name="same")
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(main, ["compare-records", "--baseline", str(same),
                                       "--candidate", str(slower), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["verdict"] == "significantly slower"
    assert data["estimate"]["point"] == pytest.approx(0.01)
    assert "resolution" in data["estimate"] and data["comparability"]["comparable"]
