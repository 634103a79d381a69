"""What the report's charts plot, read from a run record: shared by the HTML page
(html.py) and the PNG files (png.py), so both draw the same numbers.
"""
from __future__ import annotations

from ..common import names as N
from ..targets.base import THROUGHPUT_COUNTERS
from ..targets.base import exports as target_exports
from . import svg

COUNTERS = (N.EVENTS_INGESTED, N.EVENTS_DISPATCHED, N.EVENTS_DROPPED)
RATE_NAMES = {N.EVENTS_INGESTED: "ingested/s", N.EVENTS_DISPATCHED: "dispatched/s",
              N.EVENTS_DROPPED: "dropped/s"}
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
#: the heat map draws at most this many rings (the fullest, in shard order)
MAX_HEAT_ROWS = 64
#: and at most this many columns (neighbouring samples merged, keeping the fuller)
MAX_HEAT_COLUMNS = 400


def exports(record: dict, counter: str) -> bool:
    """Whether the record's target exported ``counter``: its capabilities say
    (``targets.base.exports``, the one answer); a record without them, what its
    counters and series hold (a counter a target lacks is absent, never 0)."""
    seen = dict(record.get("counters") or {})
    if counter not in seen and any(counter in row for row in record.get("series", [])):
        seen[counter] = True
    return target_exports(record.get("capabilities"), counter, seen)


def throughput_of(record: dict) -> str | None:
    """The counter a record's throughput over time is drawn from
    (``targets.base.throughput_counter``: dispatched, else ingested)."""
    return next((c for c in THROUGHPUT_COUNTERS if exports(record, c)), None)


def rate_points(series: list, counter: str) -> list[tuple[float, float]]:
    """Per-second rate of ``counter`` over each sampling interval, placed at the
    interval's end. The bus starts at t=0 with every counter at 0."""
    out, t_prev, c_prev = [], 0.0, 0
    for row in series:
        t, c = float(row["t"]), int(row.get(counter, 0))
        if t > t_prev:
            out.append((t, (c - c_prev) / (t - t_prev)))
            t_prev, c_prev = t, c
    return out


def step_markers(record: dict) -> tuple:
    return tuple(svg.Marker(number=s["index"] + 1, start=float(s["started_s"]),
                            end=float(s["started_s"]) + float(s.get("duration_s") or 0.0),
                            label=s.get("label", s["kind"]), kind=s["kind"])
                 for s in record.get("steps", []))


def record_label(record: dict, i: int) -> str:
    return record.get("label") or f"#{i + 1} {record['scenario_name']} {record.get('started_at', '')}".strip()


def heat_rows(record: dict):
    """(times, rows, shard numbers): the fullest ``MAX_HEAT_ROWS`` rings and at
    most ``MAX_HEAT_COLUMNS`` columns, or None when the record has no per-shard fill."""
    rows_by_time = [(float(r["t"]), r["shard_fill"]) for r in record.get("series", [])
                    if isinstance(r.get("shard_fill"), list)]
    if not rows_by_time:
        return None
    times = [t for t, _ in rows_by_time]
    shards = len(rows_by_time[0][1])
    per_shard = [[fills[s] if s < len(fills) else 0 for _, fills in rows_by_time] for s in range(shards)]
    keep = sorted(range(shards), key=lambda s: max(per_shard[s]), reverse=True)[:MAX_HEAT_ROWS]
    keep.sort()
    rows = [per_shard[s] for s in keep]
    if len(times) > MAX_HEAT_COLUMNS:
        n, width = len(times), MAX_HEAT_COLUMNS
        bounds = [(i * n // width, (i + 1) * n // width) for i in range(width)]
        times = [times[b - 1] for _, b in bounds]
        rows = [[max(row[a:b]) for a, b in bounds] for row in rows]
    return times, rows, keep
