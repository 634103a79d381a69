"""Repeated runs, each after the first in a process of its own (``busbench run --repeat N``).

What the regression gate judges (verdicts/gating.py) is a set of whole runs;
this module does the runs: the first here (its record carries the checks and
evidence), the others as ``python -m busbench run`` children, and keeps each
as the summary the record's ``runs`` list holds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..common import names as N
from ..common.pythonpath import child_env
from ..verdicts.gating import COUNTED as _COUNTED

#: what each run keeps in the record's ``runs`` list
_RUN_METRICS = ("throughput", "ingest_rate", "cpu_per_event", "cpu_producers_per_event",
                "cpu_workers_per_event", "events_dispatched", "duration")


def run_summary(result) -> dict:
    """One run as the gate keeps it: status, the gateable metrics, its in-run samples."""
    return {"status": result.status,
            "metrics": {k: result.metrics[k] for k in _RUN_METRICS if k in result.metrics},
            "throughput_samples": list(result.throughput_samples),
            "load_average_at_start": result.environment.get("load_average_at_start")}


# the record's status is the worst of its runs' (a status not listed, e.g. a
# newer one, ranks as an error)
_SEVERITY = {N.RUN_PASSED: 0, N.RUN_FAILED: 1, N.RUN_TIMED_OUT: 2, N.RUN_ERROR: 2,
             N.RUN_CRASHED: 2, N.RUN_INTERRUPTED: 3}
#: statuses of a run that has no figure but does not stop the repeats (the bus crashed or hung)
_GO_ON = (N.RUN_CRASHED, N.RUN_TIMED_OUT)


def run_repeated(run_once, repeat: int, run_isolated=None):
    """The first run here (``run_once()``: its record carries the checks and
    evidence), the others through ``run_isolated()``, each in a process of its own.

    Why separate processes: on the development VM three in-process runs of
    one process agreed within 4% while two processes of identical code
    differed 2.8x (bench_power, gate A/A): what differs between processes
    (where the allocator puts the rings, how the threads are placed) stays
    fixed within one. Runs of one process would make the gate's interval far
    too narrow. ``run_isolated`` returns a run summary (``run_summary`` of the
    child's record, plus its path). Without it (tests), every run is
    ``run_once()``. A run that crashed or was killed at its deadline (the
    supervisor's verdict on the bus) is that run's result and the others go on;
    any other run that did not complete ends the repeats; the record's
    status is the worst of all runs, and ``error`` names a separate run that
    failed, with its record.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    result = run_once()
    runs = [run_summary(result)]
    for _index in range(1, repeat):
        if runs[-1]["status"] not in _COUNTED + _GO_ON:
            break
        runs.append(run_isolated() if run_isolated is not None else run_summary(run_once()))
    result.runs = runs
    worst = max(runs, key=lambda run: _SEVERITY.get(run["status"], 2))
    if _SEVERITY.get(worst["status"], 2) > _SEVERITY.get(result.status, 2):
        result.status = worst["status"]
        where = f"; its record: {worst['record']}" if worst.get("record") else ""
        result.error = (f"run {runs.index(worst) + 1} of {len(runs)} (a separate process) "
                        f"{worst['status']}{where}")
    return result


def run_isolated(source: str, overrides, seed, pin: bool, out_dir, timeout: str | None = None,
                 extra_args=()) -> dict:
    """One run of ``source`` in a fresh ``python -m busbench run`` process; its summary.

    The child writes its own record under ``out_dir`` (kept, so a failed run
    can be read); the same busbench package as this process is imported.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    env = child_env()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".run-") as scratch:
        args = [sys.executable, "-m", "busbench", "run", str(source), "--no-live", "-q",
                "--out", scratch]
        for item in overrides:
            args += ["--set", item]
        if seed is not None:
            args += ["--seed", str(seed)]
        if pin:
            args.append("--pin")
        if timeout is not None:      # the child keeps the parent's deadline
            args += ["--timeout", str(timeout)]
        args += list(extra_args)
        proc = subprocess.run(args, check=False, capture_output=True, text=True, env=env)
        records = sorted(Path(scratch).glob("*.json"))
        if not records:
            return {"status": N.RUN_ERROR, "metrics": {}, "throughput_samples": [],
                    "error": (proc.stderr or proc.stdout)[-2000:], "record": None}
        kept = Path(out_dir) / records[-1].name
        os.replace(records[-1], kept)
    record = json.loads(kept.read_text(encoding="utf-8"))
    return {"status": record.get("status"),
            "metrics": {k: v for k, v in (record.get("metrics") or {}).items() if k in _RUN_METRICS},
            "throughput_samples": record.get("throughput_samples") or [],
            "load_average_at_start": (record.get("environment") or {}).get("load_average_at_start"),
            "record": str(kept)}
