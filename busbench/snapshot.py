"""What the dashboard and the progress line see of a running bus: one value.

A sampler thread reads the bus's counters at a fixed interval and hands out
``Snapshot`` values; the dashboard only ever renders these, it never touches
the bus (STYLE.md: nothing downstream reaches back upstream).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

COUNTER_NAMES = ("events_ingested", "events_dropped", "batches_dispatched", "events_dispatched")

#: states a check can be in while a run goes on
CHECK_PENDING = "pending"
CHECK_PASSED = "passed"
CHECK_FAILED = "failed"


@dataclass(frozen=True)
class CheckState:
    name: str                 # e.g. "conservation", "threshold: throughput >= 5M/s"
    state: str                # pending | passed | failed
    evidence: str = ""        # one line: the numbers compared
    expected_to_fail: bool = False


@dataclass(frozen=True)
class ShardFill:
    fill: int                 # events queued in the shard's ring now
    capacity: int


@dataclass(frozen=True)
class Snapshot:
    scenario: str
    target: str               # "builtin"
    layout: str               # "padded" | "packed" | "striped" | "stride 64"
    step_index: int           # 0-based index of the current step
    step_count: int
    step_label: str           # e.g. "run 2s", "flush", "shutdown"
    step_progress: Optional[float]  # 0..1 when known (timed run), else None
    elapsed_s: float          # since the run started
    counters: dict            # COUNTER_NAMES -> int
    rates: dict               # COUNTER_NAMES -> per second, over the last interval
    shutdown_was_lossy: bool
    shards: tuple = ()        # tuple[ShardFill, ...]
    throughput_history: tuple = ()  # events_dispatched per second, one per sample, oldest first
    checks: tuple = ()        # tuple[CheckState, ...]
    latency_ns: Optional[dict] = None  # {"p50": ns, "p90": .., "p99": .., "p999": .., "max": .., "mean": ..}
    status: str = "running"   # running | finished | failed | interrupted

    @property
    def in_flight(self) -> int:
        c = self.counters
        return c["events_ingested"] - c["events_dispatched"] - c["events_dropped"]

    @property
    def dropped_ratio(self) -> float:
        ingested = self.counters["events_ingested"]
        return self.counters["events_dropped"] / ingested if ingested else 0.0

    @property
    def mean_batch_size(self) -> float:
        batches = self.counters["batches_dispatched"]
        return self.counters["events_dispatched"] / batches if batches else 0.0
