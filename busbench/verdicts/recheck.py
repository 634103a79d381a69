"""``busbench check RECORD.json``: re-evaluate a run record's checks from the
record alone, without running anything (CI, or reviewing someone else's result).

A record (schema 2) carries the evidence its checks read: the target's counters
and claims, the producers' tallies, the witness's tallies, each flush's
snapshots, and for a mid-run check step the evidence at that step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import checks as C
from ..common import names as N
from ..evidence.records import RecordError, read_record
from ..evidence.result import SCHEMA_VERSION


@dataclass
class Recheck:
    path: str
    scenario_name: str
    verdicts: list = field(default_factory=list)       # re-evaluated
    disagreements: list = field(default_factory=list)  # (label, recorded outcome, now)
    incomplete: str | None = None   # the run's status when it did not complete (timed_out...)

    @property
    def ok(self) -> bool:
        return self.incomplete is None and bool(self.verdicts) and all(v.ok for v in self.verdicts)


def _evidence(d: dict, where: str) -> C.Evidence:
    try:
        return C.Evidence.from_dict(d)
    except TypeError as e:
        raise RecordError(f"{where}: the recorded evidence is incomplete ({e})") from None


def recheck(path) -> Recheck:
    from pydantic import ValidationError

    from ..scenario.schema import CheckStep, Scenario
    record = read_record(path)
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"{path}: record schema {version}, this busbench re-evaluates schema "
                          f"{SCHEMA_VERSION} (records written before the evidence was recorded "
                          "cannot be re-evaluated)")
    try:
        scenario = Scenario.model_validate(record["scenario"])
    except (ValidationError, ValueError) as e:
        raise RecordError(f"{path}: the recorded scenario does not validate: "
                          f"{str(e).splitlines()[0]}") from None
    missing = [k for k in ("counters", "producers", "flushes", "metrics", "steps")
               if k not in record]
    if missing:
        raise RecordError(f"{path}: the record lacks {', '.join(missing)}")
    status = record.get("status")
    # A run that did not complete (the watchdog's deadline, an error, Ctrl-C) has
    # evidence only for the steps it reached, and no end checks: those are not
    # re-evaluated (they were never evaluated), and the record never passes.
    incomplete = status if status in N.RUN_INCOMPLETE else None
    out = Recheck(str(path), scenario.name, incomplete=incomplete)
    recorded = {(v.get("at"), v.get("name")): v.get("outcome") for v in record.get("checks", [])}
    steps = {s.get("index"): s for s in record["steps"] if isinstance(s, dict)}
    for index, step in enumerate(scenario.steps):
        if not isinstance(step, CheckStep):
            continue
        details = (steps.get(index) or {}).get("details", {})
        if "evidence" not in details and incomplete and index not in steps:
            continue         # the run ended before this step
        if "evidence" not in details:
            raise RecordError(f"{path}: step {index} (check) has no recorded evidence")
        ev = _evidence(details["evidence"], f"{path}: step {index}")
        for spec in step.checks:
            out.verdicts.append(C.evaluate(spec, ev, f"step {index}"))
    if not (incomplete and not any(at == "end" for at, _ in recorded)):
        end = _evidence({**record, "quiescent": record.get("evidence_quiescent", True)}, str(path))
        for spec in scenario.checks:
            out.verdicts.append(C.evaluate(spec, end, "end"))
    for v in out.verdicts:
        before = recorded.get((v.at, v.name))
        if before != v.outcome:
            out.disagreements.append((v.name if v.at == "end" else f"{v.name} ({v.at})",
                                      before, v.outcome))
    return out
