"""What a check may read: the ``Evidence`` of a run (or of a step), plain values only.

The runner's collector (collector.py) builds it from the target and the load
generator; the checks (verdicts/checks.py) judge it; a record carries it, so
``busbench check`` rebuilds it with ``from_dict`` and judges it again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Evidence:
    """What a check may read: values, never live objects (see collector.py)."""
    counters: dict                  # what the target exported (a counter it lacks is absent)
    producers: list                 # per producer: ProducerTruth.as_dict() (producer side)
    delivery: dict | None           # targets.base.Delivery.to_dict(), None: no witness
    flushes: list                   # per flush step: see collector.flush_record
    shutdown: dict | None           # targets.base.ShutdownClaim.to_dict(), when shut down
    metrics: dict                   # named metrics for thresholds
    quiescent: bool                 # no producer running, nothing being ingested
    capabilities: dict = field(default_factory=dict)   # targets.base.Capabilities.to_dict()
    backpressure: str | None = None  # the bus's mode, when the target has one
    unquiet: str = ""               # why not quiescent, when not (quiescence.Quiescence)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> Evidence:
        ev = cls(**{k: d.get(k) for k in ("counters", "producers", "delivery", "flushes",
                                           "shutdown", "metrics", "quiescent", "capabilities",
                                           "backpressure")})
        return replace(ev, unquiet=d.get("unquiet") or "")
