"""Evidence collection: what a run observed, as plain values for the checks.

Reads the target (its counters and claims, its witness's tallies) and the load
generator (the producers' own tallies); writes nothing into either. The flush
record is built around the call: producer-side landed counts and the bus's
attributed evictions just before, the witness's counts just after.
"""
from __future__ import annotations

from .types import Evidence
from .metrics import run_metrics


def flush_record(step_index, target, gen, timeout_s, under_load, call) -> dict:
    """Call ``call()`` (the flush) between two evidence snapshots; the record."""
    drops0 = target.drops_by_shard()
    landed, last_landed = gen.landed_by_shard()
    if not target.capabilities.shard_known_to_producer:
        landed = last_landed = None       # the load's shard choice is not the bus's
    claim = call()
    delivery = target.delivery()
    drops1 = target.drops_by_shard()
    record = {"step": step_index, "timeout_s": timeout_s, "under_load": under_load,
              "claimed_reached": claim.reached, "timed_out": claim.timed_out,
              "waited_s": claim.waited_s,
              "landed_before": landed, "last_landed_before": last_landed,
              "witness": None if delivery is None else delivery.witness,
              "evicted_before": None, "received_after": None, "last_received_after": None,
              "evicted_after": None, "rejected_after": None,
              "positions": claim.positions, "witness_shortfall": claim.witness_shortfall,
              "details": claim.details}
    if delivery is not None and drops0 is not None and drops1 is not None and landed is not None:
        record.update(evicted_before=drops0[0], received_after=delivery.received_by_shard,
                      last_received_after=delivery.last_seq_by_shard,
                      evicted_after=drops1[0], rejected_after=drops1[1])
    return record


class EvidenceCollector:
    """Turns the target's and the producers' state into ``Evidence`` values."""

    def __init__(self, target, gen, backpressure=None, cpu_time=None):
        self.target = target
        self.gen = gen
        self.backpressure = backpressure
        self.cpu_time = cpu_time      # () -> metrics.CpuTime, for the cpu metrics; None: none
        self.flushes: list = []

    def flush(self, step_index, timeout_s, under_load, call) -> dict:
        record = flush_record(step_index, self.target, self.gen, timeout_s, under_load, call)
        self.flushes.append(record)
        return record

    def collect(self, quiescent: bool, load_s: float, unquiet: str = "") -> Evidence:
        t = self.target
        counters = t.counters()
        truths = self.gen.truths()
        delivery = t.delivery()
        claim = t.shutdown_claim()
        return Evidence(
            counters=counters, producers=[p.as_dict() for p in truths],
            delivery=None if delivery is None else delivery.to_dict(),
            flushes=list(self.flushes), shutdown=None if claim is None else claim.to_dict(),
            metrics=run_metrics(counters, truths, load_s, t.latency_histograms(),
                                cpu=None if self.cpu_time is None else self.cpu_time()),
            quiescent=quiescent, capabilities=t.capabilities.to_dict(),
            backpressure=self.backpressure, unquiet=unquiet)
