"""The report's charts as PNG files (``busbench report --png DIR``), for places
that take an image and not a page (a pull-request comment, a chat).

Drawn with matplotlib, the ``plot`` extra; the HTML report needs nothing
beyond busbench itself. The numbers come from the same functions as the
HTML's (``figures.rate_points``, ``figures.step_markers``), read from the record.
"""
from __future__ import annotations

from pathlib import Path

from ..common.units import format_duration, format_rate
from . import figures, svg

MISSING = "--png needs matplotlib: pip install 'busbench[plot]' (the HTML report does not)"


class PlotUnavailable(RuntimeError):
    pass


def ensure_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(MISSING) from None


def _figure(width=11, height=3.6):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _mark_steps(ax, record):
    for m in figures.step_markers(record):
        ax.axvline(m.start, color="#b07d12", linestyle=":", linewidth=1)
        if m.kind != "run" and m.end > m.start:
            ax.axvspan(m.start, m.end, color="#f2e6c9", alpha=0.6)
        ax.annotate(str(m.number), (m.start, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, 2), textcoords="offset points", color="#b07d12", fontsize=8)


def _rate_axis(ax):
    from matplotlib.ticker import FuncFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_rate(v)))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since the bus started")


def write_pngs(records: list[dict], directory, labels: list[str] | None = None) -> list[Path]:
    """The report's charts as PNG files (for a pull-request comment, a chat):
    drawn with matplotlib, the ``plot`` extra. Raises ``PlotUnavailable``."""
    ensure_available()
    labels = labels or [figures.record_label(r, i) for i, r in enumerate(records)]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        FigureCanvasAgg(fig)
        path = out / name
        fig.savefig(path)
        written.append(path)

    fig, ax = _figure()
    drawn = set()
    for i, (rec, label) in enumerate(zip(records, labels)):
        # one run: every rate it has; several: each one's throughput, dispatched where
        # exported, else ingested (figures.throughput_of)
        counters = figures.COUNTERS if len(records) == 1 else tuple(
            c for c in (figures.throughput_of(rec),) if c)
        drawn.update(counters)
        for j, c in enumerate(counters):
            if not figures.exports(rec, c):      # not exported: not drawn as 0
                continue
            pts = figures.rate_points(rec["series"], c)
            name = figures.RATE_NAMES[c] if len(records) == 1 else label
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name,
                    color=svg.PALETTE[(i + j) % len(svg.PALETTE)])
    _mark_steps(ax, records[0])
    _rate_axis(ax)
    ax.set_title("events per second" if len(records) == 1 or len(drawn) != 1
                 else f"{figures.RATE_NAMES[next(iter(drawn))].replace('/s', '')} per second")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "throughput.png")

    for i, rec in enumerate(records):
        heat = figures.heat_rows(rec)
        if heat is None:
            continue
        times, rows, shards = heat
        capacity = int((rec.get("scenario") or {}).get("bus", {}).get("capacity") or 1)
        fig, ax = _figure(height=max(2.0, 0.9 + 0.25 * len(rows)))
        edges = [0.0, *times]
        mesh = ax.pcolormesh(edges, range(len(rows) + 1), [[v / capacity for v in row] for row in rows],
                             cmap="YlOrRd", vmin=0, vmax=1, shading="flat")
        ax.set_yticks([r + 0.5 for r in range(len(rows))], [f"shard {s}" for s in shards], fontsize=8)
        ax.set_xlabel("seconds since the bus started")
        ax.set_title(f"ring fill per shard (capacity {capacity:,}): {labels[i]}", fontsize=10)
        fig.colorbar(mesh, ax=ax, label="fill")
        save(fig, f"ring_fill_{i + 1}.png" if len(records) > 1 else "ring_fill.png")

    bars = [(label, kind, rec["latency"][kind]) for rec, label in zip(records, labels)
            if rec.get("latency") for kind in ("corrected", "uncorrected")
            if (rec["latency"].get(kind) or {}).get("count")]
    if bars:
        fig, ax = _figure(height=3.2)
        keys = figures.PERCENTILES
        width = 0.8 / len(bars)
        for b, (label, kind, summary) in enumerate(bars):
            name = kind if len(records) == 1 else f"{label} {kind}"
            ax.bar([k + b * width for k in range(len(keys))], [summary[key] for key, _ in keys],
                   width=width, label=name, color=svg.PALETTE[b % len(svg.PALETTE)])
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], [s for _, s in keys])
        ax.set_yscale("log")
        from matplotlib.ticker import FuncFormatter
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_duration(v)))
        ax.set_title("latency percentiles, ingest to dispatch")
        ax.legend(fontsize=8)
        save(fig, "latency.png")
    return written
