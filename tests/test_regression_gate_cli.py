"""`busbench run --baseline`: the regression gate, end to end through the CLI.

A real run of a short throughput scenario is the "current" side; the baselines
are that run's own record with its samples scaled, so the expected verdict is
known whatever this machine's speed: a baseline twice as fast must fail the gate,
one half as fast must pass it, and a one-sample baseline cannot be judged.
"""
import json

import pytest
from click.testing import CliRunner

from busbench.cli import main

SHORT = ["--set", "steps=[{run: 1500ms}, {shutdown: {grace: 5s}}]", "--no-live", "-q"]


@pytest.fixture(scope="module")
def current_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate")
    result = CliRunner().invoke(main, ["run", "scenarios/throughput.yaml", *SHORT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = out.glob("throughput-*.json")
    data = json.loads(record.read_text())
    assert len(data["throughput_samples"]) >= 5, "the sampler should give one sample per 100 ms"
    return data


def _baseline(tmp_path, record, scale, keep=None):
    data = dict(record)
    samples = [s * scale for s in record["throughput_samples"]]
    data["throughput_samples"] = samples[:keep] if keep else samples
    path = tmp_path / f"baseline-{scale}.json"
    path.write_text(json.dumps(data))
    return path


def _run_with(tmp_path, baseline, max_regression="10%"):
    result = CliRunner().invoke(main, ["run", "scenarios/throughput.yaml", *SHORT, "--out",
                                       str(tmp_path / "out"), "--baseline", str(baseline),
                                       "--max-regression", max_regression])
    (record,) = (tmp_path / "out").glob("throughput-*.json")
    return result, json.loads(record.read_text())


def test_a_baseline_twice_as_fast_fails_the_gate(tmp_path, current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 2.0))
    assert result.exit_code == 1, result.output
    assert record["gate"]["status"] == "fail" and record["status"] == "failed"
    assert "regression gate: fail" in result.output


def test_a_baseline_half_as_fast_passes_the_gate(tmp_path, current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 0.5))
    assert result.exit_code == 0, result.output
    assert record["gate"]["status"] == "pass"


def test_a_one_sample_baseline_is_inconclusive_never_a_pass(tmp_path, current_record):
    result, record = _run_with(tmp_path, _baseline(tmp_path, current_record, 1.0, keep=1))
    assert record["gate"]["status"] == "inconclusive"
    assert result.exit_code == 0      # inconclusive is said, not failed
    assert "inconclusive" in result.output
