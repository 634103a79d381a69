"""Evidence collection: what a run observed, as ``types.Evidence`` values.

Reads the target (its counters and claims, its witness's tallies) and the load
generator (the producers' own tallies); writes nothing into either. The flush
record is built around the call: producer-side landed counts and the bus's
attributed evictions just before, the witness's counts just after.
"""
from __future__ import annotations

from .metrics import run_metrics
from .types import Evidence, FlushEvidence, ShutdownEvidence, int_table, plain


def flush_record(step_index, target, gen, timeout_s, under_load, call) -> FlushEvidence:
    """Call ``call()`` (the flush) between two evidence snapshots; the evidence."""
    drops0 = target.drops_by_shard()
    landed, last_landed = gen.landed_by_shard()
    if not target.capabilities.shard_known_to_producer:
        landed = last_landed = None       # the load's shard choice is not the bus's
    claim = call()
    delivery = target.delivery()
    drops1 = target.drops_by_shard()
    after = {}
    if delivery is not None and drops0 is not None and drops1 is not None and landed is not None:
        after = dict(evicted_before=int_table(drops0[0]),
                     received_after=int_table(delivery.received_by_shard),
                     last_received_after=int_table(delivery.last_seq_by_shard),
                     evicted_after=int_table(drops1[0]), rejected_after=int_table(drops1[1]))
    return FlushEvidence(
        step=step_index, timeout_s=timeout_s, under_load=under_load,
        claimed_reached=bool(claim.reached), timed_out=bool(claim.timed_out),
        waited_s=claim.waited_s, landed_before=int_table(landed),
        last_landed_before=int_table(last_landed),
        witness=None if delivery is None else delivery.witness,
        evicted_before=after.get("evicted_before"), received_after=after.get("received_after"),
        last_received_after=after.get("last_received_after"),
        evicted_after=after.get("evicted_after"), rejected_after=after.get("rejected_after"),
        positions=plain(claim.positions or {}),
        witness_shortfall=None if claim.witness_shortfall is None else int(claim.witness_shortfall),
        details=plain(claim.details or {}))


# --------------------------------------------------------------------------- collecting
class EvidenceCollector:
    """Turns the target's and the producers' state into ``Evidence`` values."""

    def __init__(self, target, gen, backpressure=None, cpu_time=None):
        self.target = target
        self.gen = gen
        self.backpressure = backpressure
        self.cpu_time = cpu_time      # () -> metrics.CpuTime, for the cpu metrics; None: none
        self.flushes: list[FlushEvidence] = []

    def flush(self, step_index, timeout_s, under_load, call) -> FlushEvidence:
        record = flush_record(step_index, self.target, self.gen, timeout_s, under_load, call)
        self.flushes.append(record)
        return record

    def collect(self, quiescent: bool, load_s: float, unquiet: str = "") -> Evidence:
        t = self.target
        counters = t.counters()
        truths = self.gen.truths()       # built from the producers' tally arrays, now
        delivery = t.delivery()
        claim = t.shutdown_claim()
        return Evidence(
            counters=counters, producers=tuple(truths),
            delivery=None if delivery is None else plain(delivery.to_dict()),
            flushes=tuple(self.flushes),
            shutdown=None if claim is None else ShutdownEvidence.from_claim(claim),
            metrics=run_metrics(counters, truths, load_s, t.latency_histograms(),
                                cpu=None if self.cpu_time is None else self.cpu_time()),
            quiescent=quiescent, capabilities=t.capabilities.to_dict(),
            backpressure=self.backpressure, unquiet=unquiet)
