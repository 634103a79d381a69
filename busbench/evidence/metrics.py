"""Named metrics of a run (thresholds, compare, reports), from plain values."""
from __future__ import annotations

from typing import NamedTuple

from ..common import names as N
from ..native import histogram

LATENCY_STATS = ("p50", "p90", "p99", "p999", "max", "mean")

#: CPU time per event dispatched (ns): the producer and worker threads' (threadcpu.py)
CPU_PER_EVENT = "cpu_per_event"
CPU_PRODUCERS_PER_EVENT = "cpu_producers_per_event"
CPU_WORKERS_PER_EVENT = "cpu_workers_per_event"


class CpuTime(NamedTuple):
    """Thread CPU time of a run so far, in ns: each producer thread's (the load
    generator's threads), and the target's worker threads' in all, or None when
    the target cannot name its workers (``Target.worker_threads``)."""
    producers_ns: tuple
    workers_ns: int | None


def cpu_metrics(cpu: CpuTime, events_dispatched: int | None) -> dict:
    """``cpu_per_event`` and its producer and worker parts (ns per event
    dispatched), and ``cpu_s``. What was not measured is absent, never 0: no
    worker clocks (a target that cannot name its workers) gives the producers'
    part only; no events dispatched, or no clock read at all, gives nothing."""
    producers = int(sum(cpu.producers_ns))
    workers = cpu.workers_ns
    if not events_dispatched or events_dispatched <= 0 or producers + (workers or 0) <= 0:
        return {}
    m = {CPU_PRODUCERS_PER_EVENT: producers / events_dispatched}
    if workers is not None:
        m.update({CPU_PER_EVENT: (producers + workers) / events_dispatched,
                  CPU_WORKERS_PER_EVENT: workers / events_dispatched,
                  "cpu_s": (producers + workers) / 1e9})
    return m


def latency_summaries(hists) -> dict | None:
    """{"corrected": summary, "uncorrected": summary} from a target's histograms; a
    histogram the target does not have (None: a sink in open loop sees only the intended
    send time, so no uncorrected latency) has no entry."""
    if hists is None:
        return None
    return {key: histogram.summary(h) for key, h in zip(("corrected", "uncorrected"), hists)
            if h is not None}


def run_metrics(counters: dict, truths, load_s: float, hists, cpu: CpuTime | None = None) -> dict:
    """Metrics for thresholds; a counter the target lacks gives no metric (a
    threshold on it is then not evaluable, never a pass). ``cpu``: the run's
    thread CPU time, for the cpu metrics (absent without it)."""
    c = counters
    m = {"late_sends": sum(t.late for t in truths), "unsent": sum(t.unsent for t in truths),
         "duration": load_s}
    for name in N.COUNTER_NAMES:
        if name in c:
            m[name] = c[name]
    ingested, dropped = c.get(N.EVENTS_INGESTED), c.get(N.EVENTS_DROPPED)
    dispatched, batches = c.get(N.EVENTS_DISPATCHED), c.get(N.BATCHES_DISPATCHED)
    if ingested is not None and dropped is not None:
        m["dropped_ratio"] = dropped / ingested if ingested else 0.0
    if dispatched is not None and batches is not None:
        m["mean_batch_size"] = dispatched / batches if batches else 0.0
    if load_s > 0:
        if dispatched is not None:
            m["throughput"] = dispatched / load_s
        if ingested is not None:
            m["ingest_rate"] = ingested / load_s
    if cpu is not None:
        m.update(cpu_metrics(cpu, dispatched))
    for key, summary in (latency_summaries(hists) or {}).items():
        prefix = "latency" if key == "corrected" else "latency_uncorrected"
        if summary["count"]:
            for name in LATENCY_STATS:
                m[f"{prefix}.{name}"] = summary[name]
    return m
