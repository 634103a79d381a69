"""End to end: real runs of the reference bus through the command line.

Runs go through ``click.testing.CliRunner`` (in-process, so the kernels are
compiled or loaded once), except the interruption tests, which need a real
process to send SIGINT / SIGTERM to. No test asserts a speed: only exit codes,
what the records, reports and summaries contain, and the checks' verdicts.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime as real_datetime
from pathlib import Path

import pytest

import busbench.run.runner
from busbench.evidence.result import SCHEMA_VERSION
from cli_helpers import STYLE_ENV as _STYLE_ENV
from cli_helpers import cli, flat

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
MUTATIONS = sorted((SCENARIOS / "mutations").glob("*.yaml"))
COUNTERS = ("events_ingested", "events_dropped", "batches_dispatched", "events_dispatched")





def records(out: Path) -> list[dict]:
    """The run records in ``out``, oldest first."""
    found = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))]
    return sorted(found, key=lambda r: r["started_at"])


def only_record(out: Path) -> dict:
    found = records(out)
    assert len(found) == 1, f"expected one record in {out}, found {len(found)}"
    return found[0]


def scenario_file(tmp_path: Path, name: str, *, run="200ms", adapter="verify", producers=1,
                  checks=("conservation",), shutdown="  - shutdown: {grace: 5s}\n") -> Path:
    body = (f"name: {name}\n"
            f"description: a short scenario written by the end-to-end tests\n"
            f"seed: 1\n"
            f"bus: {{shards: 4, adapter: {{kind: {adapter}}}}}\n"
            f"load: {{producers: {producers}}}\n"
            f"steps:\n  - run: {run}\n{shutdown}"
            f"checks:\n" + "".join(f"  - {c}\n" for c in checks))
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


# --------------------------------------------------------------------------- the quick start


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """`busbench run scenarios/quickstart.yaml --no-live` with every report, run once."""
    tmp = tmp_path_factory.mktemp("quickstart")
    out = tmp / "results"
    step_summary = tmp / "step_summary.md"
    step_summary.write_text("earlier step output\n", encoding="utf-8")
    result = cli("run", SCENARIOS / "quickstart.yaml", "--no-live", "--out", out,
                 "--junit", tmp / "j.xml", "--markdown", tmp / "m.md",
                 env={"GITHUB_STEP_SUMMARY": str(step_summary)})
    return {"result": result, "out": out, "junit": tmp / "j.xml", "markdown": tmp / "m.md",
            "step_summary": step_summary}


def test_quickstart_exits_0(quickstart):
    result = quickstart["result"]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_quickstart_no_escape_codes_without_live(quickstart):
    output = quickstart["result"].output
    assert "\x1b" not in output
    assert "quickstart" in output and "PASSED" in output
    assert re.search(r"^\[\s*\d+\.\d+s\] quickstart step 1/\d+ ", output, re.M), output
    # a plain progress line now and then, not a flood
    assert len(output.splitlines()) < 200


def test_quickstart_record_has_the_documented_shape(quickstart):
    record = only_record(quickstart["out"])
    assert record["schema_version"] == SCHEMA_VERSION == 3   # 3: typed evidence recorded
    assert record["status"] == "passed"
    assert record["exit_code"] == 0
    assert record["scenario_name"] == "quickstart"
    assert record["source"].endswith("quickstart.yaml")
    assert record["scenario"]["name"] == "quickstart"
    assert record["scenario"]["seed"] == 7
    assert record["scenario"]["bus"]["shards"] == 4
    env = record["environment"]
    for key in ("cpu_model", "cores", "python", "numba", "busbench"):
        assert env.get(key), key
    assert env["python"] == sys.version.split()[0]
    assert f"record: {quickstart['out']}" in flat(quickstart["result"].output)


def test_quickstart_record_steps_have_counter_snapshots(quickstart):
    record = only_record(quickstart["out"])
    steps = record["steps"]
    assert len(steps) >= len(record["scenario"]["steps"])
    assert [s["index"] for s in steps] == list(range(len(steps)))
    for step in steps:
        for counter in COUNTERS:
            assert isinstance(step["counters"][counter], int), (step, counter)
        assert "shutdown_was_lossy" in step["counters"]
    # counters only grow from one step to the next
    for before, after in zip(steps, steps[1:]):
        for counter in COUNTERS:
            assert after["counters"][counter] >= before["counters"][counter]
    kinds = [s["kind"] for s in steps]
    assert kinds[0] == "run" and "flush" in kinds and kinds[-1] == "shutdown"


def test_quickstart_record_series(quickstart):
    series = only_record(quickstart["out"])["series"]
    assert isinstance(series, list) and len(series) >= 2
    for sample in series:
        assert isinstance(sample["t"], (int, float))
        for counter in COUNTERS:
            assert isinstance(sample[counter], int)
    times = [s["t"] for s in series]
    assert times == sorted(times)


def test_quickstart_record_metrics_and_counters(quickstart):
    record = only_record(quickstart["out"])
    m = record["metrics"]
    assert m["throughput"] > 0 and math.isfinite(m["throughput"])
    c = record["counters"]
    assert c["events_ingested"] == c["events_dispatched"] + c["events_dropped"]
    assert c["shutdown_was_lossy"] is False
    assert record["load_s"] > 0


def test_quickstart_record_checks_have_verdicts_and_evidence(quickstart):
    record = only_record(quickstart["out"])
    checks = record["checks"]
    declared = len(record["scenario"]["checks"])
    assert len([c for c in checks if c["at"] == "end"]) == declared
    assert any(c["at"] != "end" for c in checks)       # the mid-run `check:` step
    for check in checks:
        assert check["outcome"] == "passed", check
        assert check["ok"] is True
        assert isinstance(check["evidence"], str) and check["evidence"]
        assert isinstance(check["numbers"], dict)
    names = {c["name"] for c in checks}
    assert {"conservation", "ground_truth", "flush_barrier"} <= names


def _case_name(check):
    return check["name"] if check["at"] == "end" else f"{check['name']} ({check['at']})"


def test_quickstart_junit_one_testcase_per_check(quickstart):
    record = only_record(quickstart["out"])
    root = ET.parse(quickstart["junit"]).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(record["checks"])
    assert sorted(c.get("name") for c in cases) == sorted(_case_name(c) for c in record["checks"])
    assert not root.findall(".//failure") and not root.findall(".//error")
    suites = root.findall(".//testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "quickstart"
    assert suites[0].get("failures") == "0"


def test_quickstart_markdown_mentions_each_check(quickstart):
    record = only_record(quickstart["out"])
    md = quickstart["markdown"].read_text(encoding="utf-8")
    assert "quickstart" in md and "passed" in md
    for check in record["checks"]:
        assert _case_name(check) in md, check["name"]


def test_quickstart_markdown_appended_to_github_step_summary(quickstart):
    md = quickstart["markdown"].read_text(encoding="utf-8")
    summary = quickstart["step_summary"].read_text(encoding="utf-8")
    assert summary.startswith("earlier step output\n")
    assert summary == "earlier step output\n" + md


# --------------------------------------------------------------------------- overrides in the record


def test_seed_and_set_are_recorded(tmp_path):
    out = tmp_path / "out"
    result = cli("run", SCENARIOS / "clean_shutdown.yaml", "--no-live", "--out", out,
                 "--seed", "42", "--set", "load.producers=1", "--set", "steps.0.run=200ms")
    assert result.exit_code == 0, result.output
    record = only_record(out)
    assert record["scenario"]["seed"] == 42
    assert record["scenario"]["load"]["producers"] == 1
    assert record["scenario"]["steps"][0] == {"run": "200ms"}
    assert len(record["producers"]) == 1


# --------------------------------------------------------------------------- mutations


def _expected_failures(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("expect: fail")


def test_nine_mutation_scenarios_each_expect_a_failure():
    assert len(MUTATIONS) >= 9
    for path in MUTATIONS:
        assert _expected_failures(path) >= 1, path.name


@pytest.mark.parametrize("path", MUTATIONS, ids=lambda p: p.stem)
def test_mutation_is_caught(tmp_path, path):
    """With its mutation, the checks declared `expect: fail` fail, so the scenario passes."""
    out = tmp_path / "out"
    result = cli("run", path, "--no-live", "-q", "--out", out)
    assert result.exit_code == 0, result.output
    record = only_record(out)
    assert record["status"] == "passed"
    expected_to_fail = [c for c in record["checks"] if c["expect"] == "fail"]
    assert expected_to_fail
    for check in expected_to_fail:
        assert check["outcome"] == "failed", check
    assert all(c["ok"] for c in record["checks"])


@pytest.mark.parametrize("path", MUTATIONS, ids=lambda p: p.stem)
def test_mutation_removed_the_scenario_fails(tmp_path, path):
    """Without the mutation, the reference bus keeps every invariant, so the checks
    that expected a failure pass and the scenario fails (exit 1)."""
    out = tmp_path / "out"
    result = cli("run", path, "--no-live", "-q", "--out", out, "--set", "bus.mutations=[]")
    assert result.exit_code == 1, result.output
    record = only_record(out)
    assert record["status"] == "failed"
    assert record["scenario"]["bus"]["mutations"] == []
    for check in record["checks"]:
        assert check["outcome"] == "passed", check
        assert check["ok"] is (check["expect"] == "pass"), check
    assert "expected to fail" in flat(result.output)


# --------------------------------------------------------------------------- failing checks


def test_failing_threshold_exits_1_and_says_why(tmp_path):
    path = scenario_file(tmp_path, "too_demanding",
                         checks=("conservation", 'threshold: "throughput >= 1G/s"'))
    out = tmp_path / "out"
    result = cli("run", path, "--no-live", "--out", out, columns=250)
    assert result.exit_code == 1, result.output
    record = only_record(out)
    assert record["status"] == "failed" and record["exit_code"] == 1
    by_name = {c["name"]: c for c in record["checks"]}
    failed = by_name["threshold: throughput >= 1G/s"]
    assert failed["outcome"] == "failed" and failed["ok"] is False
    assert failed["numbers"]["metric"] == "throughput"
    assert by_name["conservation"]["outcome"] == "passed"
    # the summary names the failed check, its verdict and its evidence, on one row
    row = next((line for line in result.output.splitlines()
                if "threshold: throughput >= 1G/s" in line), None)
    assert row is not None, result.output
    assert "✗" in row and "failed" in row
    assert failed["evidence"] in row
    assert "FAILED" in result.output


def test_check_that_cannot_be_evaluated_never_passes(tmp_path):
    path = scenario_file(tmp_path, "blind", adapter="noop", checks=("ground_truth",))
    out = tmp_path / "out"
    result = cli("run", path, "--no-live", "--out", out, "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1, result.output
    record = only_record(out)
    assert record["status"] == "failed"
    [check] = record["checks"]
    assert check["outcome"] == "not_evaluable"
    assert check["ok"] is False
    assert "verify" in check["evidence"]
    assert "not evaluable" in result.output
    failures = ET.parse(tmp_path / "j.xml").getroot().findall(".//failure")
    assert len(failures) == 1 and "not evaluable" in failures[0].get("message")


def test_two_files_run_in_order_worst_exit_code(tmp_path):
    passing = scenario_file(tmp_path, "first_passes")
    failing = scenario_file(tmp_path, "second_fails", checks=('threshold: "throughput >= 1G/s"',))
    out = tmp_path / "out"
    result = cli("run", passing, failing, "--no-live", "-q", "--out", out,
                 "--junit", tmp_path / "j.xml")
    assert result.exit_code == 1, result.output
    assert "step 1/" not in result.output          # --quiet: no progress, the summaries still print
    found = records(out)
    assert [r["scenario_name"] for r in found] == ["first_passes", "second_fails"]
    assert [r["status"] for r in found] == ["passed", "failed"]
    assert result.output.index("first_passes") < result.output.index("second_fails")
    assert len(re.findall(r"^record: ", result.output, re.M)) == 2
    suites = ET.parse(tmp_path / "j.xml").getroot().findall(".//testsuite")
    assert [s.get("name") for s in suites] == ["first_passes", "second_fails"]


def test_two_files_both_passing_exit_0(tmp_path):
    a = scenario_file(tmp_path, "pass_a")
    b = scenario_file(tmp_path, "pass_b", shutdown="")       # implicit shutdown at the end
    out = tmp_path / "out"
    result = cli("run", a, b, "--no-live", "-q", "--out", out)
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in records(out)] == ["passed", "passed"]
    assert records(out)[1]["steps"][-1]["kind"] == "shutdown"


def test_runs_started_in_the_same_second_keep_both_records(tmp_path, monkeypatch):
    """Regression (found and fixed): a record is named <scenario>-<started_at to the second>.json, so two
    runs of scenarios with the same name started within one second (the same
    file twice, two files sharing a `name:`, a loop over --set values into one
    --out) write the same path and the second silently replaces the first.
    The clock is frozen here to make "within one second" certain."""
    class FrozenClock(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(busbench.run.runner, "datetime", FrozenClock)
    path = scenario_file(tmp_path, "twice", run="100ms")
    out = tmp_path / "out"
    result = cli("run", path, path, "--no-live", "-q", "--out", out)
    assert result.exit_code == 0, result.output
    printed = re.findall(r"^record: (.*)$", result.output, re.M)
    assert len(printed) == 2
    assert len(set(printed)) == 2, f"both runs reported the same record path: {printed}"
    assert len(list(out.glob("*.json"))) == 2


# --------------------------------------------------------------------------- interruption


INTERRUPTIBLE = """\
name: long_run
description: five seconds of load, to be interrupted
seed: 1
bus: {shards: 4, adapter: {kind: verify}}
load: {producers: 2}
steps:
  - run: 5s
  - flush: {timeout: 5s}
  - shutdown: {grace: 5s}
checks:
  - conservation
  - ground_truth
"""


def _restore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _preexec():
    # A shell running pytest in the background leaves SIGINT ignored, and a child
    # Python keeps it ignored: then let the child get Ctrl-C like a foreground job.
    # (Only then: preexec_fn is best avoided in a process with threads.)
    return _restore_sigint if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_exits_130_and_writes_its_record(tmp_path, signum):
    scenario = tmp_path / "long_run.yaml"
    scenario.write_text(INTERRUPTIBLE)
    out = tmp_path / "out"
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k not in _STYLE_ENV}
    started = time.monotonic()
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "busbench", "run", str(scenario),
                                 "--no-live", "--out", str(out)],
                                cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, preexec_fn=_preexec())
    try:
        # wait until the load runs (the first progress line), then ~1.5 s in all
        deadline = started + 60
        while "long_run step" not in stdout_path.read_text():
            assert proc.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(max(0.3, 1.5 - (time.monotonic() - started)))
        assert proc.poll() is None, "the 5 s run ended before it was interrupted"
        signalled = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=15)
        stopped_in = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = stdout_path.read_text() + stderr_path.read_text()
    assert code == 130, output
    assert stopped_in < 5.0, f"took {stopped_in:.1f}s to stop"
    assert "Traceback" not in output
    assert "INTERRUPTED" in output
    files = list(out.glob("*.json"))
    assert len(files) == 1, output
    record = json.loads(files[0].read_text(encoding="utf-8"))
    assert record["status"] == "interrupted"
    assert record["exit_code"] == 130
    assert record["scenario_name"] == "long_run"
    assert record["series"]                      # what it had when interrupted
    assert not list(out.glob(".*"))              # no temporary file left behind


# --------------------------------------------------------------------------- compare and lab


def test_compare_padded_vs_packed(tmp_path):
    json_path = tmp_path / "c.json"
    result = cli("compare", SCENARIOS / "padded_vs_packed.yaml",
                 "--vary", "bus.counters=padded,packed", "--repeat", "2",
                 "--set", "steps.0.run=200ms", "--json", json_path)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["metric"] == "throughput"
    assert data["repeat"] == 2
    labels = [v["label"] for v in data["variants"]]
    assert labels == ["bus.counters=padded", "bus.counters=packed"]
    for variant in data["variants"]:
        assert len(variant["samples"]) == 2
        assert all(s > 0 for s in variant["samples"])
    [comparison] = data["comparisons"]
    assert comparison["baseline"] == "bus.counters=padded"
    assert comparison["variant"] == "bus.counters=packed"
    assert comparison["ratio"] > 0
    # two rounds: too few for the paired (distribution-free) interval, and it says so
    assert comparison["ci_low"] is None and comparison["resolution"] is None
    assert "at least 6" in comparison["paired"]["reason"]
    medians = comparison["ratio_of_medians"]
    assert medians["ci_low"] <= medians["ci_high"]
    assert comparison["verdict"] == "no significant difference"
    # 2 variants x (1 warm-up + 2 rounds) runs reported as they happen
    assert re.search(r"\[6/6\]", result.output)


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    json_path = tmp_path_factory.mktemp("lab") / "lab.json"
    result = cli("lab", "false-sharing", "--strides", "8,128", "--repeats", "1",
                 "--json", json_path)
    return result, json_path


def test_lab_false_sharing_prints_a_ratio(lab_run):
    result, json_path = lab_run
    assert result.exit_code == 0, result.output
    assert re.search(r"\d+\.\d\dx", result.output), result.output
    assert "8 B" in result.output and "128 B" in result.output
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert [s["stride_bytes"] for s in data["strides"]] == [8, 128]
    assert data["strides"][1]["ratio_to_widest"] == pytest.approx(1.0)
    assert data["strides"][0]["ratio_to_widest"] > 0


def test_lab_interpretation_printed_once(lab_run):
    """BUG (cosmetic): `lab false-sharing` prints the interpretation (and each
    warning) twice: once as the table's caption (render_lab_table) and again
    right after the table (cli.py)."""
    result, json_path = lab_run
    data = json.loads(json_path.read_text(encoding="utf-8"))
    sentence = flat(data["interpretation"])
    assert flat(result.output).count(sentence) == 1, result.output
