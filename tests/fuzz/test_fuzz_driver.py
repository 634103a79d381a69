"""benchmarks/fuzz.py, the offline driver, runs end to end and prints its figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import scenario_fuzz as F

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_offline_fuzzer_prints_runs_failures_hangs_and_tracebacks(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--examples", "4",
                           "--mutations", "1", "--seed", "3", "--out", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = re.search(r"correct bus: (\d+) runs .*: ok (\d+), failures (\d+), hangs (\d+), "
                     r"crashes (\d+), tracebacks (\d+), invalid (\d+)", proc.stdout)
    assert line, proc.stdout
    runs, ok, failures, hangs, crashes, tracebacks, invalid = map(int, line.groups())
    assert runs == 4 and ok == 4 and failures == hangs == crashes == tracebacks == invalid == 0
    per_target = re.findall(r"^  (builtin|c_bus|python_bus): (\d+) runs: ok (\d+), failures 0, hangs 0, "
                            r"crashes 0, tracebacks 0, invalid 0", proc.stdout, re.MULTILINE)
    assert [t for t, _, _ in per_target] == list(F.available_targets()), proc.stdout
    assert sum(int(n) for _, n, _ in per_target) == 4 and all(n == k for _, n, k in per_target)
    for mutation in ("no_inflight_gate", "refusal_not_ingested"):
        assert re.search(rf"^{mutation}: 1 runs, manifested in [01], caught [01], missed 0", proc.stdout,
                         re.MULTILINE), proc.stdout
