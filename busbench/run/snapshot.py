"""What the dashboard and the progress line see of a running bus: one value.

A sampler thread reads the bus's counters at a fixed interval and hands out
``Snapshot`` values; the dashboard only ever renders these, it never touches
the bus (STYLE.md: nothing downstream reaches back upstream).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..common.names import (
    BATCHES_DISPATCHED,
    CHECK_PENDING,
    COUNTER_NAMES,
    EVENTS_DISPATCHED,
    EVENTS_DROPPED,
    EVENTS_INGESTED,
    FAILED,
    NOT_EVALUABLE,
    NOT_OBSERVABLE,
    PASSED,
)
from ..targets.base import exports, throughput_counter

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
    counters: dict            # COUNTER_NAMES -> int (those the target exports)
    rates: dict               # COUNTER_NAMES -> per second, over the last interval
    shutdown_was_lossy: bool | None   # None: the target exports no lossy flag
    shards: tuple = ()        # tuple[ShardFill, ...]
    # ``throughput_of`` per second, one per sample, oldest first
    throughput_history: tuple = ()
    checks: tuple = ()        # tuple[CheckState, ...]
    latency_ns: dict | None = None  # {"p50": ns, "p90": .., "p99": .., "p999": .., "max": .., "mean": ..}
    status: str = "running"   # running | finished | failed | interrupted
    # What a long step is waiting for (busbench/run/waiting.py), and for how long:
    step_elapsed_s: float | None = None     # time in the current step
    step_expected_s: float = 0.0            # how long the step should take (a run's duration)
    waiting_for: str = ""                   # e.g. "every shard to settle past its flush target"
    # the target's Capabilities.to_dict(): what it exports (targets.base.exports
    # decides); {}: not known, what ``counters`` holds was exported
    capabilities: dict = field(default_factory=dict)

    def exports(self, counter: str) -> bool:
        """Does the target export ``counter``? (``targets.base.exports``, the one answer)."""
        return exports(self.capabilities, counter, self.counters)

    def _have(self, *names) -> bool:
        return all(self.exports(n) and n in self.counters for n in names)

    @property
    def throughput_of(self) -> str | None:
        """The counter whose rate ``throughput_history`` holds (None: the target exports none)."""
        return throughput_counter(self.capabilities, self.counters)

    @property
    def in_flight(self) -> int | None:
        """Ingested, not yet dispatched or dropped; None: a counter it needs is not exported."""
        if not self._have(EVENTS_INGESTED, EVENTS_DISPATCHED, EVENTS_DROPPED):
            return None
        c = self.counters
        return c[EVENTS_INGESTED] - c[EVENTS_DISPATCHED] - c[EVENTS_DROPPED]

    @property
    def queued(self) -> int:
        """Events in the rings now (claimed by a producer, not yet taken out by a worker)."""
        return sum(shard.fill for shard in self.shards)

    @property
    def drain_rate(self) -> float | None:
        """Events leaving the rings per second (dispatched), over the last interval;
        None when the target does not export events_dispatched."""
        if not self._have(EVENTS_DISPATCHED):
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
    def dropped_ratio(self) -> float | None:
        """None: events_ingested or events_dropped is not exported."""
        if not self._have(EVENTS_INGESTED, EVENTS_DROPPED):
            return None
        ingested = self.counters[EVENTS_INGESTED]
        return self.counters[EVENTS_DROPPED] / ingested if ingested else 0.0

    @property
    def mean_batch_size(self) -> float | None:
        """None: events_dispatched or batches_dispatched is not exported."""
        if not self._have(EVENTS_DISPATCHED, BATCHES_DISPATCHED):
            return None
        batches = self.counters[BATCHES_DISPATCHED]
        return self.counters[EVENTS_DISPATCHED] / batches if batches else 0.0
