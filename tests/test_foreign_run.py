"""`busbench run` drives c-abi and python targets (issue 13), in-process.

The examples run through the runner, the lossy Python bus is caught, validation never
imports a module, and what a foreign target cannot do is refused with file, line, key.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import cli, flat

ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc")


def _verdicts(out: Path) -> dict:
    (path,) = sorted(out.glob("*.json"))
    record = json.loads(path.read_text())
    return record, {c["name"] if c["at"] == "end" else f"{c['name']} ({c['at']})": c
                    for c in record["checks"]}


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("run", "examples/python_bus/scenario.yaml", "--out", tmp_path, "--no-live")
    out = flat(result.output)
    assert result.exit_code == 0, out
    assert "importing pybus" in out and "figures include the GIL" in out
    record, verdicts = _verdicts(tmp_path)
    assert record["target"] == "python" and record["capabilities"]["witness"] == "sink"
    assert verdicts["ground_truth"]["outcome"] == "passed"
    assert "flush_barrier (step 2)" in verdicts and verdicts["flush_barrier (step 2)"]["outcome"] == "passed"


def test_the_lossy_python_bus_is_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("run", "examples/python_bus/lossy-shutdown.yaml", "--out", tmp_path, "--no-live")
    assert result.exit_code == 0, flat(result.output)         # it fails exactly as declared
    _, verdicts = _verdicts(tmp_path)
    gt = verdicts["ground_truth"]
    assert gt["outcome"] == "failed" and "never accounted for" in gt["evidence"]
    assert verdicts["conservation"]["outcome"] == "failed"
    # the same scenario declaring a pass is a failed run (exit 1)
    text = (ROOT / "examples/python_bus/lossy-shutdown.yaml").read_text().replace(
        "ground_truth: {expect: fail}", "ground_truth").replace(
        "path: .", f"path: {ROOT / 'examples/python_bus'}")      # the copy lives elsewhere
    path = tmp_path / "lossy-expect-pass.yaml"
    path.write_text(text)
    assert cli("run", path, "--out", tmp_path / "again", "--no-live").exit_code == 1


@pytest.mark.skipif(CC is None, reason="needs a C compiler (cc or gcc)")
def test_c_abi_example_runs(tmp_path, monkeypatch):
    build = tmp_path / "c_bus"
    shutil.copytree(ROOT / "examples/c_bus", build)
    subprocess.run([CC, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(build / "libcbus.so"),
                    str(build / "cbus.c")], check=True, timeout=120)
    # the copy runs as it is: its target file and library resolve against the files
    result = cli("run", build / "scenario.yaml", "--out", tmp_path / "out", "--no-live")
    out = flat(result.output)
    assert result.exit_code == 0, out
    assert "target c-abi: loading" in out
    record, verdicts = _verdicts(tmp_path / "out")
    assert record["target"] == "c-abi"
    for name in ("conservation", "ground_truth", "lossy_shutdown == false",
                 "flush_barrier (step 2)"):
        assert verdicts[name]["outcome"] == "passed", (name, verdicts[name]["evidence"])


def test_validate_never_imports_the_module(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndescription: y\ntarget:\n  python: no_such_module_zz:make\n"
                    "steps:\n  - run: 10ms\nchecks: [ground_truth]\n")
    assert cli("validate", path).exit_code == 0
    assert "no_such_module_zz" not in sys.modules
    result = cli("run", path, "--out", tmp_path / "out", "--no-live")
    out = flat(result.output)
    assert result.exit_code == 2 and "cannot import no_such_module_zz" in out, out


@pytest.mark.parametrize(("extra", "key"), [
    ("bus:\n  capacity: 1024\n", "bus.capacity"),
    ("load:\n  keys: round_robin\n", "load.keys"),
    ("steps:\n  - fault: {stall_producer: {producer: 0, for: 10ms}}\n  - run: 10ms\n",
     "steps.0.fault.stall_producer"),
])
def test_what_a_python_target_cannot_do_is_refused(tmp_path, extra, key):
    base = "name: x\ndescription: y\ntarget:\n  python: pybus:make_bus\n"
    text = base + extra + ("" if extra.startswith("steps") else "steps:\n  - run: 10ms\nchecks: [ground_truth]\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = cli("validate", path)
    out = flat(result.output)
    assert result.exit_code == 2 and key in out and "not supported by target python" in out, out


def test_progress_shows_the_target_and_what_it_does_not_export():
    import io

    from rich.console import Console

    from busbench.reports.dashboard import PlainProgress, render_dashboard
    from busbench.run.snapshot import CheckState, Snapshot
    snap = Snapshot(scenario="s", target="net-mesh 0.45.1 (c-abi, redis)", layout="-",
                    step_index=0, step_count=1, step_label="run 1s", step_progress=None,
                    elapsed_s=1.0, counters={"events_ingested": 5, "events_dropped": 0},
                    rates={}, shutdown_was_lossy=False,
                    checks=(CheckState("lossy_shutdown", "not_observable", "no flag"),))
    out = io.StringIO()
    PlainProgress(file=out)._print(snap)
    assert "[net-mesh 0.45.1 (c-abi, redis)]" in out.getvalue()
    assert "dispatched not exported" in out.getvalue()
    console = Console(file=io.StringIO(), width=160)
    console.print(render_dashboard(snap))
    frame = console.file.getvalue()
    assert "net-mesh 0.45.1" in frame and "not exported" in frame
    assert "not observable on this target" in frame


def _spec(kind):
    from types import SimpleNamespace
    return SimpleNamespace(label=kind, kind=kind, expect="pass", value=None)


def _delivery(received):
    return {"witness": "redis streams", "received_by_shard": [[received, 0]],
            "last_seq_by_shard": [[received - 1, -1]], "received_sum": [0, 0],
            "order_violations": 0, "evicted_by_shard": [[0, 0]], "rejected_by_shard": [[0, 0]],
            "evicted_sum": [0, 0], "rejected_sum": [0, 0]}


@pytest.mark.parametrize(("received", "outcome"), [(90, "passed"), (80, "failed")])
def test_conservation_stands_in_the_witness_for_a_missing_events_dispatched(received, outcome):
    from busbench.verdicts import checks as C
    ev = C.Evidence(counters={"events_ingested": 100, "events_dropped": 10}, producers=[],
                    delivery=_delivery(received), flushes=[], shutdown=None, metrics={},
                    quiescent=True)
    v = C.conservation(_spec("conservation"), ev)
    assert v.outcome == outcome and "stands in for it" in v.evidence
    no_witness = C.Evidence(**{**ev.__dict__, "delivery": None,
                               "capabilities": {"reasons": {"events_dispatched": "not exported"}}})
    v = C.conservation(_spec("conservation"), no_witness)
    assert v.outcome == "not_observable" and "not exported" in v.evidence


@pytest.mark.parametrize(("counts", "ingested", "outcome"), [
    ("landed", 90, "passed"), ("landed", 100, "failed"), ("offered", 100, "passed"),
    ("offered", 90, "failed")])
def test_ground_truth_judges_events_ingested_as_the_target_counts_it(counts, ingested, outcome):
    from busbench.load.generator import ProducerTruth
    from busbench.native.payload import checksum
    from busbench.verdicts import checks as C
    producer = ProducerTruth(offered=100, landed=90, refused=10, turned_away=0, stranded=0,
                             late=0, unsent=0, calls=2, retries=0, next_seq=100,
                             offered_sum=checksum(range(100)),
                             refused_sum=checksum(range(90, 100)), stranded_sum=0)
    delivery = _delivery(90)
    delivery["received_sum"] = [checksum(range(90))]
    delivery.update(received_by_shard=[[90]], last_seq_by_shard=[[89]], evicted_by_shard=[[0]],
                    rejected_by_shard=[[0]], evicted_sum=[0], rejected_sum=[0])
    ev = C.Evidence(counters={"events_ingested": ingested, "events_dropped": 10},
                    producers=[producer], delivery=delivery, flushes=[], shutdown=None,
                    metrics={}, quiescent=True, capabilities={"ingested_counts": counts})
    assert C.ground_truth(_spec("ground_truth"), ev).outcome == outcome


def test_target_errors_carry_their_exit_codes():
    from busbench.targets.errors import (
        NetMeshConfigError,
        NetMeshError,
        ReleaseError,
        TargetConfigError,
        TargetError,
    )
    assert issubclass(NetMeshConfigError, TargetConfigError) and issubclass(NetMeshError, TargetError)
    assert NetMeshConfigError("num_shards", "bad").exit_code == 2
    assert NetMeshError("gone").exit_code == 3
    assert TargetConfigError("k", "m").exit_code == 2 and ReleaseError("x").exit_code == 2
    assert ReleaseError("x", 3).exit_code == 3
