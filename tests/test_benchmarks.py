"""The bus benchmark runs end to end and gives sane numbers. Never a speed or a
speed ratio threshold here: machines are noisy, the benchmark's table is for reading."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
EXPECTED_ROWS = {"calibration 1P", "padded 1P", "packed 1P", "striped 1P",
                 "calibration 2P", "padded 2P", "packed 2P", "striped 2P"}


def _positive_finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bus.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_bus.py"), "--seconds", "0.1", "--repeat", "1",
         "--json", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_every_row_is_present_with_a_positive_finite_throughput(bench):
    _, result = bench
    rows = {row["variant"]["name"]: row for row in result["rows"]}
    assert set(rows) == EXPECTED_ROWS
    for name, row in rows.items():
        assert len(row["samples"]) == 1, name
        sample = row["samples"][0]
        assert _positive_finite(sample["events_per_s"]), name
        assert _positive_finite(row["summary"]["median"]), name
        assert row["summary"]["min"] <= row["summary"]["median"] <= row["summary"]["max"]


def test_bus_rows_conserve_events_and_report_a_dropped_ratio(bench):
    _, result = bench
    for row in result["rows"]:
        if row["variant"]["kind"] != "bus":
            continue
        sample = row["samples"][0]
        assert sample["events_dispatched"] > 0
        assert sample["events_dispatched"] + sample["events_dropped"] == sample["events_ingested"]
        assert sample["flush_reached"] and not sample["shutdown_lossy"]
        assert 0.0 <= row["dropped_ratio_median"] < 1.0
        assert row["all_conserved"]


def test_the_calibration_kernel_delivers_every_event_exactly_once(bench):
    _, result = bench
    for row in result["rows"]:
        if row["variant"]["kind"] == "calibration":
            sample = row["samples"][0]
            assert sample["checksum_ok"] and sample["popped"] == sample["pushed"] > 0


def test_ratios_are_computed_against_calibration_and_padded_vs_packed(bench):
    _, result = bench
    for row in result["rows"]:
        vs = row["vs_calibration"]
        assert _positive_finite(vs["ratio"]), row["variant"]["name"]
        assert _positive_finite(vs["paired"]["median"]), row["variant"]["name"]
    pairs = {(p["numerator"], p["denominator"]): p for p in result["padded_vs_packed"]}
    assert set(pairs) == {("padded 1P", "packed 1P"), ("padded 2P", "packed 2P")}
    for pair in pairs.values():
        assert _positive_finite(pair["ratio"]) and _positive_finite(pair["paired"]["median"])
        assert pair["verdict"] in ("significantly faster", "significantly slower",
                                   "no significant difference")
        # one round: the paired estimate says it has no interval, so no resolution
        assert pair["paired"]["resolution"] is None
        assert "nothing can be concluded" in pair["paired"]["description"]
    goal = result["goal"]
    assert goal["variant"] == "padded 1P" and goal["goal"] == 0.30
    assert _positive_finite(goal["share_of_calibration"])


def test_json_carries_the_environment_and_the_output_states_goal_and_threads(bench):
    stdout, result = bench
    env = result["environment"]
    for key in ("cpu_model", "cpu_count", "python", "numba"):
        assert key in env
    assert env["cpu_count"] >= 1 and env["numba"] and env["python"]
    assert "padded, 1 producer:" in stdout and "of calibration (goal >= 30%)" in stdout
    assert "3 busy threads on" in stdout


def test_a_bad_json_path_fails_before_the_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_bus.py"), "--json",
         str(tmp_path / "missing" / "x.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "does not exist" in proc.stderr
