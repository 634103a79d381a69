"""What the dashboard and the progress line see of a running bus: one value.

A sampler thread reads the bus's counters at a fixed interval and hands out
``Snapshot`` values; the dashboard only ever renders these, it never touches
the bus (STYLE.md: nothing downstream reaches back upstream).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.names import (
    CHECK_PENDING,
    COUNTER_NAMES,
    EVENTS_DISPATCHED,
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

#: a step this much longer than planned says what it is waiting for
LONG_STEP_GRACE_S = 1.0


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
    # What a long step is waiting for (busbench/run/waiting.py), and for how long:
    step_elapsed_s: float | None = None     # time in the current step
    step_expected_s: float = 0.0            # how long the step should take (a run's duration)
    waiting_for: str = ""                   # e.g. "every shard to settle past its flush target"

    @property
    def in_flight(self) -> int:
        c = self.counters
        return c.get("events_ingested", 0) - c.get("events_dispatched", 0) - c.get("events_dropped", 0)

    @property
    def queued(self) -> int:
        """Events in the rings now (claimed by a producer, not yet taken out by a worker)."""
        return sum(shard.fill for shard in self.shards)

    @property
    def drain_rate(self) -> float | None:
        """Events leaving the rings per second (dispatched), over the last interval;
        None when the target does not export events_dispatched."""
        if EVENTS_DISPATCHED not in self.counters:
            return None
        return max(0.0, self.rates.get(EVENTS_DISPATCHED, 0.0))

    @property
    def drain_eta_s(self) -> float | None:
        """Seconds until the rings are empty at the current drain rate (None: not
        draining, or the rate is not observable)."""
        rate = self.drain_rate
        return self.queued / rate if rate else None

    @property
    def long_step(self) -> bool:
        """The step has run a second past what it should take and is waiting on something."""
        return bool(self.waiting_for) and self.step_elapsed_s is not None \
            and self.step_elapsed_s >= self.step_expected_s + LONG_STEP_GRACE_S

    @property
    def dropped_ratio(self) -> float:
        ingested = self.counters.get("events_ingested", 0)
        return self.counters.get("events_dropped", 0) / ingested if ingested else 0.0

    @property
    def mean_batch_size(self) -> float:
        batches = self.counters.get("batches_dispatched", 0)
        return self.counters.get("events_dispatched", 0) / batches if batches else 0.0
