"""Named metrics of a run (thresholds, compare, reports), from plain values."""
from __future__ import annotations

from . import names as N
from .bus import histogram

LATENCY_STATS = ("p50", "p90", "p99", "p999", "max", "mean")


def latency_summaries(hists) -> dict | None:
    """{"corrected": summary, "uncorrected": summary} from a target's histograms."""
    if hists is None:
        return None
    return {"corrected": histogram.summary(hists[0]), "uncorrected": histogram.summary(hists[1])}


def run_metrics(counters: dict, truths, load_s: float, hists) -> dict:
    """Metrics for thresholds; a counter the target lacks gives no metric (a
    threshold on it is then not evaluable, never a pass)."""
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
    for key, summary in (latency_summaries(hists) or {}).items():
        prefix = "latency" if key == "corrected" else "latency_uncorrected"
        if summary["count"]:
            for name in LATENCY_STATS:
                m[f"{prefix}.{name}"] = summary[name]
    return m
