"""Evidence: what a run observed, as typed plain values for the checks
(``collector.py`` builds them from a target and the load generator).

Every value here is a frozen dataclass with an explicit ``to_dict()`` (what the
run record holds: JSON values only) and ``from_dict()`` (strict: a missing or
unknown key is an ``EvidenceFormatError`` naming it), so that
``from_dict(json.loads(json.dumps(x.to_dict()))) == x`` exactly: a record's
checks are re-evaluated from the record alone (``busbench check``), and
evidence may cross a process boundary.

Record schema (``SCHEMA_VERSION``): 3 holds every field of every type below.
Schema 2 records, written while fields were still being added, may lack
some; ``upgrade_record`` converts them, filling each with what it meant when
it did not exist (see ``_V2_DEFAULTS``). Older records are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..common.strict import field_values
from ..load.generator import ProducerTruth
from .result import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Evidence", "EvidenceFormatError", "FlushEvidence",
           "ProducerTruth", "ShutdownEvidence", "plain", "upgrade_record"]


class EvidenceFormatError(ValueError):
    """A dict that is not the ``to_dict()`` of the evidence type asked for."""


def plain(value):
    """``value`` as JSON gives it back: lists for tuples, str keys, Python
    scalars for numpy ones (so that a to_dict round-trips exactly)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):   # numpy scalar
        return value.item()
    return value


def int_table(rows):
    """A per-(a, b) table as a tuple of tuples of ints, or None."""
    return None if rows is None else tuple(tuple(int(x) for x in row) for row in rows)


def _ints(row):
    return None if row is None else tuple(int(x) for x in row)


def _lists(table):
    return None if table is None else [list(row) for row in table]


def _keys(cls, d, what: str) -> dict:
    """``d``'s values for ``cls``'s fields; every field present, no other key."""
    return field_values(cls, d, what, EvidenceFormatError)


# --------------------------------------------------------------------------- flush
@dataclass(frozen=True)
class FlushEvidence:
    """One flush step: what the bus claimed, and the evidence taken around the call.

    Tables: ``landed_before`` and ``last_landed_before`` per (producer, shard)
    (producer side, just before the call); ``evicted_before`` and every
    ``*_after`` per (shard, producer) (the bus's attributed drops and the
    witness's counts). None where the target cannot provide them.
    """
    step: int
    timeout_s: float
    under_load: bool
    claimed_reached: bool          # the bus's word (judged)
    timed_out: bool
    waited_s: float
    landed_before: tuple | None
    last_landed_before: tuple | None
    witness: str | None
    evicted_before: tuple | None
    received_after: tuple | None
    last_received_after: tuple | None
    evicted_after: tuple | None
    rejected_after: tuple | None
    positions: dict                # the bus's own per-shard positions ({}: none)
    witness_shortfall: int | None  # targets whose producers do not know shards
    details: dict                  # target-specific, recorded

    _TABLES = ("landed_before", "last_landed_before", "evicted_before", "received_after",
               "last_received_after", "evicted_after", "rejected_after")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._TABLES:
            d[name] = _lists(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FlushEvidence:
        kw = _keys(cls, d, "flush evidence")
        for name in cls._TABLES:
            kw[name] = int_table(kw[name])
        kw["positions"], kw["details"] = plain(kw["positions"] or {}), plain(kw["details"] or {})
        return cls(**kw)


# --------------------------------------------------------------------------- shutdown
@dataclass(frozen=True)
class ShutdownEvidence:
    """What the bus said of its shutdown (targets.base.ShutdownClaim), as recorded."""
    lossy: bool | None                    # None: the bus does not say
    stranded_events: int | None           # the total (the per-producer sum when given)
    stranded_by_producer: tuple | None    # None: the bus does not say
    abandoned_producers: tuple | None
    duration_s: float
    grace_s: float
    residue: int | None                   # events left in the rings after the final drain
    details: dict

    @classmethod
    def from_claim(cls, claim) -> ShutdownEvidence:
        by_producer = _ints(claim.stranded_by_producer)
        return cls(lossy=None if claim.lossy is None else bool(claim.lossy),
                   stranded_events=(sum(by_producer) if by_producer is not None
                                    else claim.stranded_events),
                   stranded_by_producer=by_producer,
                   abandoned_producers=_ints(claim.abandoned_producers),
                   duration_s=claim.duration_s, grace_s=claim.grace_s, residue=claim.residue,
                   details=plain(claim.details or {}))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("stranded_by_producer", "abandoned_producers"):
            d[name] = None if d[name] is None else list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ShutdownEvidence:
        kw = _keys(cls, d, "shutdown evidence")
        kw["stranded_by_producer"] = _ints(kw["stranded_by_producer"])
        kw["abandoned_producers"] = _ints(kw["abandoned_producers"])
        kw["details"] = plain(kw["details"] or {})
        return cls(**kw)


# --------------------------------------------------------------------------- evidence
def _producer(d) -> ProducerTruth:
    """Producer tallies (built from the load's tally arrays, load/generator.py) from a dict."""
    if not isinstance(d, dict):
        raise EvidenceFormatError(f"producer tallies: expected an object, got {type(d).__name__}")
    try:
        return ProducerTruth.from_dict(d)
    except ValueError as e:
        raise EvidenceFormatError(str(e)) from None


@dataclass(frozen=True)
class Evidence:
    """What a check may read: values, never live objects."""
    counters: dict                  # what the target exported (a counter it lacks is absent)
    producers: tuple                # ProducerTruth per producer (producer side)
    delivery: dict | None           # targets.base.Delivery.to_dict(), None: no witness
    flushes: tuple                  # FlushEvidence per flush step
    shutdown: ShutdownEvidence | None   # when shut down
    metrics: dict                   # named metrics for thresholds
    quiescent: bool                 # no producer running, nothing being ingested
    capabilities: dict = field(default_factory=dict)   # targets.base.Capabilities.to_dict()
    backpressure: str | None = None  # the bus's mode, when the target has one
    unquiet: str = ""               # why not quiescent, when not (quiescence.Quiescence)

    def __post_init__(self):
        object.__setattr__(self, "producers", tuple(self.producers))
        object.__setattr__(self, "flushes", tuple(self.flushes))
        for name, items, kind in (("producers", self.producers, ProducerTruth),
                                  ("flushes", self.flushes, FlushEvidence)):
            wrong = [type(x).__name__ for x in items if not isinstance(x, kind)]
            if wrong:
                raise TypeError(f"Evidence.{name} holds {wrong[0]}, not {kind.__name__} "
                                f"(build it with {kind.__name__} or Evidence.from_dict)")
        if self.shutdown is not None and not isinstance(self.shutdown, ShutdownEvidence):
            raise TypeError(f"Evidence.shutdown is {type(self.shutdown).__name__}, "
                            "not ShutdownEvidence")

    def to_dict(self) -> dict:
        return {"counters": plain(self.counters),
                "producers": [p.to_dict() for p in self.producers],
                "delivery": plain(self.delivery), "flushes": [f.to_dict() for f in self.flushes],
                "shutdown": None if self.shutdown is None else self.shutdown.to_dict(),
                "metrics": plain(self.metrics), "quiescent": self.quiescent,
                "capabilities": plain(self.capabilities), "backpressure": self.backpressure,
                "unquiet": self.unquiet}

    @classmethod
    def from_dict(cls, d: dict) -> Evidence:
        """From ``to_dict()``, or from a run record (which holds the same keys
        at its top level, the quiescence as ``evidence_quiescent``)."""
        if not isinstance(d, dict):
            raise EvidenceFormatError(f"evidence: expected an object, got {type(d).__name__}")
        missing = [k for k in ("counters", "producers", "delivery", "flushes", "shutdown",
                               "metrics", "quiescent") if k not in d]
        if missing:
            raise EvidenceFormatError(f"evidence: missing {', '.join(missing)}")
        flushes, producers = d["flushes"], d["producers"]
        if not isinstance(flushes, list) or not isinstance(producers, list):
            raise EvidenceFormatError("evidence: producers and flushes must be lists")
        return cls(counters=d["counters"],
                   producers=tuple(_producer(p) for p in producers),
                   delivery=d["delivery"],
                   flushes=tuple(FlushEvidence.from_dict(f) for f in flushes),
                   shutdown=None if d["shutdown"] is None
                   else ShutdownEvidence.from_dict(d["shutdown"]),
                   metrics=d["metrics"], quiescent=bool(d["quiescent"]),
                   capabilities=d.get("capabilities") or {}, backpressure=d.get("backpressure"),
                   unquiet=d.get("unquiet") or "")

    def with_counters(self, counters: dict) -> Evidence:
        return replace(self, counters=counters)


# --------------------------------------------------------------------------- records
# Fields added to the record while it was schema 2, and what their absence
# meant (the busbench that wrote it did not have them):
_V2_DEFAULTS = {
    # a flush: no target-specific details, no per-event shortfall (the runner's
    # per-(producer, shard) counts were the only flush evidence), no positions
    "flushes": {"positions": {}, "witness_shortfall": None, "details": {}},
    # a producer: events never sent were not counted (None: unknown, never 0)
    "producers": {"unsent": None},
    "shutdown": {"details": {}},
}


def _upgrade_entry(entry, defaults):
    return {**defaults, **entry} if isinstance(entry, dict) else entry


def _upgrade_evidence(d: dict) -> dict:
    d = dict(d)
    for key in ("flushes", "producers"):
        if isinstance(d.get(key), list):
            d[key] = [_upgrade_entry(e, _V2_DEFAULTS[key]) for e in d[key]]
    if isinstance(d.get("shutdown"), dict):
        d["shutdown"] = _upgrade_entry(d["shutdown"], _V2_DEFAULTS["shutdown"])
    return d


def upgrade_record(record: dict) -> dict:
    """A schema 2 run record as schema 3 (a new dict); a schema 3 one unchanged.
    ``EvidenceFormatError`` for any other version, saying what can be done."""
    version = record.get("schema_version")
    if version == SCHEMA_VERSION:
        return record
    if version != 2:
        raise EvidenceFormatError(
            f"record schema {version!r}: this busbench reads schema {SCHEMA_VERSION} and converts "
            "schema 2; records written before the evidence was recorded (schema 1) cannot be "
            "re-evaluated: run the scenario again")
    out = _upgrade_evidence(record)
    out["steps"] = []
    for step in record.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("details"), dict):
            details = dict(step["details"])
            if isinstance(details.get("evidence"), dict):
                details["evidence"] = _upgrade_evidence(details["evidence"])
            if isinstance(details.get("flush"), dict):
                details["flush"] = _upgrade_entry(details["flush"], _V2_DEFAULTS["flushes"])
            if isinstance(details.get("shutdown"), dict):
                details["shutdown"] = _upgrade_entry(details["shutdown"], _V2_DEFAULTS["shutdown"])
            step = {**step, "details": details}
        out["steps"].append(step)
    out["schema_version"] = SCHEMA_VERSION
    out["converted_from_schema"] = version
    return out


