"""``busbench check RECORD.json``: re-evaluate a run record's checks from the
record alone, without running anything (CI, or reviewing someone else's result).

A record (schema 3) carries the evidence its checks read: the target's counters
and claims, the producers' tallies, the witness's tallies, each flush's
snapshots, and for a mid-run check step the evidence at that step. A schema 2
record is converted first (``evidence.upgrade_record``); older ones are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import checks as C
from ..common import names as N
from ..evidence.types import Evidence, EvidenceFormatError, upgrade_record
from ..evidence.records import RecordError, read_record


@dataclass
class Recheck:
    path: str
    scenario_name: str
    verdicts: list = field(default_factory=list)       # re-evaluated
    disagreements: list = field(default_factory=list)  # (label, recorded outcome, now)
    incomplete: str | None = None   # the run's status when it did not complete (timed_out...)
    converted_from: int | None = None   # the record's schema, when it was converted to read it

    @property
    def ok(self) -> bool:
        return self.incomplete is None and bool(self.verdicts) and all(v.ok for v in self.verdicts)


def _evidence(d: dict, where: str) -> Evidence:
    try:
        return Evidence.from_dict(d)
    except (EvidenceFormatError, TypeError, ValueError) as e:
        raise RecordError(f"{where}: the recorded evidence is incomplete ({e})") from None


def recheck(path) -> Recheck:
    from pydantic import ValidationError

    from ..scenario.schema import CheckStep, Scenario
    original = read_record(path)
    try:
        record = upgrade_record(original)
    except EvidenceFormatError as e:
        raise RecordError(f"{path}: {e}") from None
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
    out = Recheck(str(path), scenario.name, incomplete=incomplete,
                  converted_from=record.get("converted_from_schema"))
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
