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
from dataclasses import dataclass, field

from ..evidence import environment as env
from ..common import names as N
from . import precision
from .stats import GATE_FAIL
from ..scenario.thresholds import higher_is_better

#: metrics a gate or compare-records can judge (which direction is better:
#: thresholds.METRICS, MetricInfo.better)
GATE_METRICS = ("throughput", "ingest_rate", "cpu_per_event", "cpu_producers_per_event",
                "cpu_workers_per_event")

#: statuses whose figures count (a run that errored or was interrupted has no honest figure)
COUNTED = (N.RUN_PASSED, N.RUN_FAILED)


class BaselineError(ValueError):
    """A --baseline file the user must fix (exit code 2)."""


class IncomparableError(ValueError):
    """The records differ in a field that decides comparability (exit code 2)."""

    def __init__(self, message: str, comparability: env.Comparability):
        super().__init__(message)
        self.comparability = comparability


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
                if run.get("status") in COUNTED and isinstance(value, (int, float)) and value > 0:
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
    """Whether higher is better for a gateable metric (``MetricInfo.better``);
    BaselineError for any other."""
    if metric not in GATE_METRICS:
        raise BaselineError(f"--metric {metric!r} cannot be gated: choose one of "
                            f"{', '.join(GATE_METRICS)}")
    return higher_is_better(metric)


def apply_gate(result, baseline: Records, max_regression: float, metric: str = "throughput",
               found: env.Comparability | None = None) -> precision.GateVerdict:
    """Judge ``result`` (its ``runs``) against the baseline's runs; a FAIL fails the result."""
    check_metric(metric)
    candidate = Records(paths=["(this run)"], records=[result.to_dict()])
    verdict = precision.gate(baseline.values(metric), candidate.values(metric), max_regression,
                             metric=metric)
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
