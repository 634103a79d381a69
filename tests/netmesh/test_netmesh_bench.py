"""bench_netmesh runs end to end and gives sane numbers (never a speed threshold here)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_netmesh.py"


def test_every_variant_has_a_positive_finite_rate(tmp_path, no_redis_left):
    out = tmp_path / "nm.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--seconds", "0.05", "--repeat", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    names = {r["variant"] for r in result["rows"]}
    assert {"binding ingest_raw 1P", "binding ingest_raw_batch 2P", "kernel single 1P",
            "kernel batch 2P"} <= names
    for row in result["rows"]:
        assert math.isfinite(row["median"]) and row["median"] > 0, row["variant"]
        assert row["min"] <= row["median"] <= row["max"]
    assert result["best_binding"].startswith("binding")


def test_the_call_benchmark_times_both_ways_of_calling_ingest():
    bench = BENCH.parent / "bench_netmesh_call.py"
    proc = subprocess.run([sys.executable, str(bench), "--events", "2000", "--rounds", "2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("by name") and "M calls/s" in line for line in lines)
    assert any(line.startswith("by address") and "M calls/s" in line for line in lines)
    assert "paired per round: median" in proc.stdout
