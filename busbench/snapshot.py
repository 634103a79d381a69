"""What the dashboard and the progress line see of a running bus: one value.

A sampler thread reads the bus's counters at a fixed interval and hands out
``Snapshot`` values; the dashboard only ever renders these, it never touches
the bus (STYLE.md: nothing downstream reaches back upstream).
"""
from __future__ import annotations

from dataclasses import dataclass

from .names import (
    CHECK_PENDING,
    COUNTER_NAMES,
    FAILED,
    NOT_EVALUABLE,
    NOT_OBSERVABLE,
    PASSED,
)

#: states a check can be in while a run goes on: pending, or its outcome
CHECK_PASSED = PASSED
CHECK_FAILED = FAILED
CHECK_NOT_EVALUABLE = NOT_EVALUABLE
CHECK_NOT_OBSERVABLE = NOT_OBSERVABLE
__all__ = [
    "CHECK_FAILED",
    "CHECK_NOT_EVALUABLE",
    "CHECK_NOT_OBSERVABLE",
    "CHECK_PASSED",
    "CHECK_PENDING",
    "COUNTER_NAMES",
    "CheckState",
    "ShardFill",
    "Snapshot",
]


@dataclass(frozen=True)
class CheckState:
    name: str                 # e.g. "conservation", "threshold: throughput >= 5M/s"
    state: str                # pending | passed | failed | not_evaluable | not_observable
    evidence: str = ""        # one line: the numbers compared
    expected_to_fail: bool = False


@dataclass(frozen=True)
class ShardFill:
    fill: int                 # events queued in the shard's ring now
    capacity: int


@dataclass(frozen=True)
class Snapshot:
    scenario: str
    target: str               # "builtin", ...
    layout: str               # "padded" | "packed" | "striped" | "stride 64"
    step_index: int           # 0-based index of the current step
    step_count: int
    step_label: str           # e.g. "run 2s", "flush", "shutdown"
    step_progress: float | None  # 0..1 when known (timed run), else None
    elapsed_s: float          # since the run started
    counters: dict            # COUNTER_NAMES -> int
    rates: dict               # COUNTER_NAMES -> per second, over the last interval
    shutdown_was_lossy: bool
    shards: tuple = ()        # tuple[ShardFill, ...]
    throughput_history: tuple = ()  # events_dispatched per second, one per sample, oldest first
    checks: tuple = ()        # tuple[CheckState, ...]
    latency_ns: dict | None = None  # {"p50": ns, "p90": .., "p99": .., "p999": .., "max": .., "mean": ..}
    status: str = "running"   # running | finished | failed | interrupted

    @property
    def in_flight(self) -> int:
        c = self.counters
        return c.get("events_ingested", 0) - c.get("events_dispatched", 0) - c.get("events_dropped", 0)

    @property
    def dropped_ratio(self) -> float:
        ingested = self.counters.get("events_ingested", 0)
        return self.counters.get("events_dropped", 0) / ingested if ingested else 0.0

    @property
    def mean_batch_size(self) -> float:
        batches = self.counters.get("batches_dispatched", 0)
        return self.counters.get("events_dispatched", 0) / batches if batches else 0.0
