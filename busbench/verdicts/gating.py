"""The ``--baseline`` regression gate over whole runs, and ``compare-records``.

A gate is worth what it can detect (issue 12). Whole runs of identical code
differ far more than the 100 ms samples inside one run, so the gate's unit is
the run: ``busbench run --repeat N`` records N runs (``runs`` in the record),
a baseline is one or more such records, and ``precision.gate`` compares the
two sets of run figures with an interval that has run-to-run variation in it.
One run on either side is inconclusive, with the reason.

Before anything is compared, ``environment.check`` decides whether the records
are comparable (see busbench/evidence/environment.py for the fields that decide).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..evidence import environment as env
from ..common import names as N
from . import precision
from .stats import GATE_FAIL

#: metrics a gate or compare-records can judge, and whether higher is better
GATE_METRICS = {"throughput": True, "ingest_rate": True, "cpu_per_event": False,
                "cpu_producers_per_event": False, "cpu_workers_per_event": False}

#: what each run keeps in the record's ``runs`` list
_RUN_METRICS = ("throughput", "ingest_rate", "cpu_per_event", "cpu_producers_per_event",
                "cpu_workers_per_event", "events_dispatched", "duration")

#: statuses whose figures count (a run that errored or was interrupted has no honest figure)
_COUNTED = (N.RUN_PASSED, N.RUN_FAILED)
#: statuses of a run that has no figure but does not stop the repeats (the bus crashed or hung)
_GO_ON = (N.RUN_CRASHED, N.RUN_TIMED_OUT)


class BaselineError(ValueError):
    """A --baseline file the user must fix (exit code 2)."""


class IncomparableError(ValueError):
    """The records differ in a field that decides comparability (exit code 2)."""

    def __init__(self, message: str, comparability: env.Comparability):
        super().__init__(message)
        self.comparability = comparability


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
    any other run that did not complete (an error, an interrupt) ends the
    repeats. The record's status is the worst of all runs, and ``error`` names a
    separate run that failed, with its record.
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


def describe_runs(result) -> str | None:
    """``"3 runs: throughput 25.1M, 30.2M, 28.0M/s; cpu_per_event 31.2, 29.9, 30.4 ns"``."""
    from .stats import format_si
    if len(result.runs) < 2:
        return None
    parts = []
    for metric, unit in (("throughput", "/s"), ("cpu_per_event", " ns")):
        values = [run["metrics"].get(metric) for run in result.runs]
        if all(isinstance(v, (int, float)) for v in values):
            parts.append(f"{metric} " + ", ".join(format_si(v) for v in values) + unit)
    statuses = {run["status"] for run in result.runs}
    return (f"{len(result.runs)} runs ({', '.join(sorted(statuses))}): " + "; ".join(parts)
            + " (the first here, each other in a process of its own)")


def run_isolated(source: str, overrides, seed, pin: bool, out_dir, timeout: str | None = None,
                 extra_args=()) -> dict:
    """One run of ``source`` in a fresh ``python -m busbench run`` process; its summary.

    The child writes its own record under ``out_dir`` (kept, so a failed run
    can be read); the same busbench package as this process is imported.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
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


@dataclass
class Records:
    """Runs gathered from one or more records: one figure per run, and each record's environment."""
    paths: list
    environments: list = field(default_factory=list)
    records: list = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        out = []
        for record in self.records:
            runs = record.get("runs") or [{"status": record.get("status"),
                                           "metrics": record.get("metrics") or {}}]
            for run in runs:
                value = (run.get("metrics") or {}).get(metric)
                if run.get("status") in _COUNTED and isinstance(value, (int, float)) and value > 0:
                    out.append(float(value))
        return out


def load_records(paths, option: str = "--baseline") -> Records:
    """Read run records; a file that is not one is the user's mistake, named."""
    records = Records(paths=list(paths))
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{option} {path}: not a busbench run record ({exc})") from None
        if not isinstance(record, dict) or "metrics" not in record or "scenario" not in record:
            raise BaselineError(f"{option} {path}: not a busbench run record (no 'metrics' "
                                "or 'scenario'); give the JSON a `busbench run` wrote")
        records.records.append(record)
        records.environments.append(record.get("environment") or {})
    return records


def comparability(reference: Records, candidate_environment: dict,
                  names=("baseline", "candidate")) -> env.Comparability:
    """Every reference record checked against the candidate; refusals and warnings merged."""
    refusals, warnings = [], []
    for path, environment in zip(reference.paths, reference.environments):
        found = env.check(environment, candidate_environment, f"{names[0]} {path}", names[1])
        refusals += found.refusals
        warnings += found.warnings
    return env.Comparability(tuple(dict.fromkeys(refusals)), tuple(dict.fromkeys(warnings)))


def guard(reference: Records, candidate_environment: dict, allow_incomparable: bool,
          names=("baseline", "candidate")) -> env.Comparability:
    """Refuse (raise IncomparableError) unless comparable or explicitly allowed."""
    found = comparability(reference, candidate_environment, names)
    if found.refusals and not allow_incomparable:
        raise IncomparableError(
            "the records are not comparable: " + "; ".join(found.refusals)
            + f" (deciding fields: {', '.join(env.DECIDING)}; --allow-incomparable compares "
              "anyway, with a warning)", found)
    return found


def check_metric(metric: str) -> bool:
    """Whether higher is better for a gateable metric; BaselineError for any other."""
    if metric not in GATE_METRICS:
        raise BaselineError(f"--metric {metric!r} cannot be gated: choose one of "
                            f"{', '.join(GATE_METRICS)}")
    return GATE_METRICS[metric]


def apply_gate(result, baseline: Records, max_regression: float, metric: str = "throughput",
               found: env.Comparability | None = None) -> precision.GateVerdict:
    """Judge ``result`` (its ``runs``) against the baseline's runs; a FAIL fails the result."""
    higher = check_metric(metric)
    candidate = Records(paths=["(this run)"], records=[result.to_dict()])
    verdict = precision.gate(baseline.values(metric), candidate.values(metric), max_regression,
                             metric=metric, higher_is_better=higher)
    gate = verdict.to_dict()
    if found is not None:
        gate["comparability"] = found.to_dict()
        gate["warnings"] = list(found.refusals) + list(found.warnings)
    gate["baseline_records"] = list(baseline.paths)
    result.gate = gate
    if verdict.status == GATE_FAIL:
        result.status = N.RUN_FAILED
    return verdict


def compare_records(reference: Records, candidate: Records, metric: str,
                    confidence: float = 0.95) -> dict:
    """Two sets of records, compared run against run: ratio, interval, verdict, resolution."""
    higher = check_metric(metric)
    estimate = precision.runs_ratio(reference.values(metric), candidate.values(metric), confidence)
    return {"kind": "records_comparison", "metric": metric, "higher_is_better": higher,
            "reference": list(reference.paths), "candidate": list(candidate.paths),
            "reference_runs": reference.values(metric), "candidate_runs": candidate.values(metric),
            "verdict": precision.verdict(estimate, higher), "estimate": estimate.to_dict(),
            "description": precision.describe(estimate, higher)}
