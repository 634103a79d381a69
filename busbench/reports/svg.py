"""Three small charts as inline SVG: lines over time, a heat map, grouped bars.

Hand-written rather than drawn by matplotlib so that every install can write
a report (matplotlib is ~30 MB and an optional extra; a report that needs an
extra install is a report nobody sees) and so that the report needs no
network and no script to be viewed. Each mark carries the number it draws
(``data-*`` attributes, and a ``<title>`` a browser shows on hover), so tests
read a chart back and compare it with the record it came from.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f6fb4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
FONT = "font-family=\"system-ui, sans-serif\" font-size=\"12\""


@dataclass(frozen=True)
class Line:
    name: str
    points: tuple          # ((x, y), ...), x in seconds
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A step on the time axis: a numbered line at ``start`` and, when the step
    took visible time, a band to ``end``."""
    number: int
    start: float
    end: float
    label: str
    kind: str


@dataclass(frozen=True)
class Bar:
    group: str             # e.g. "p99"
    name: str              # e.g. "corrected"
    value: float
    color: str = PALETTE[0]


@dataclass
class _Frame:
    width: int
    height: int
    left: int = 78
    right: int = 16
    top: int = 28
    bottom: int = 40
    parts: list = field(default_factory=list)

    @property
    def plot_w(self):
        return self.width - self.left - self.right

    @property
    def plot_h(self):
        return self.height - self.top - self.bottom

    def svg(self, label: str) -> str:
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'aria-label="{escape(label)}" {FONT}>\n{body}\n</svg>')


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least ``high``."""
    if not high > 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high * (1 - 1e-9):
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _fmt_seconds(x: float) -> str:
    return f"{x:g}s"


def _label_positions(xs: list, markers) -> list:
    """Where each step number goes: at its line, or pushed right of the one
    before so that steps a few milliseconds apart stay readable."""
    out, last = [], -1e9
    for x, m in zip(xs, markers):
        width = 7 * len(str(m.number)) + 3
        x = max(x, last)
        out.append(x)
        last = x + width
    return out


def line_chart(lines: list[Line], *, title: str, y_format: Callable[[float], str],
               markers: tuple = (), width: int = 1100, height: int = 300,
               x_max: float | None = None) -> str:
    """Lines over time (x in seconds from the start of the run), y from 0."""
    f = _Frame(width, height, top=40)
    xs = [x for line in lines for x, _ in line.points] + [m.end for m in markers]
    x_hi = x_max if x_max is not None else max(xs, default=1.0)
    x_ticks = nice_ticks(x_hi or 1.0, 10)
    x_hi = x_ticks[-1]
    y_ticks = nice_ticks(max((y for line in lines for _, y in line.points), default=0.0))
    y_hi = y_ticks[-1]

    def sx(x):
        return f.left + x / x_hi * f.plot_w

    def sy(y):
        return f.top + f.plot_h - (y / y_hi * f.plot_h if y_hi else 0)

    p = f.parts
    p.append(f'<text x="{f.left}" y="14" font-weight="bold">{escape(title)}</text>')
    for m in markers:          # under the lines
        x0, x1 = sx(m.start), sx(m.end)
        if x1 - x0 >= 1 and m.kind != "run":
            p.append(f'<rect class="step-band" x="{x0:.1f}" y="{f.top}" width="{x1 - x0:.1f}" '
                     f'height="{f.plot_h}" fill="#f2e6c9" opacity="0.6"/>')
    for t in y_ticks:
        y = sy(t)
        p.append(f'<line x1="{f.left}" x2="{f.left + f.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                 f'stroke="#ddd"/>')
        p.append(f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_format(t))}</text>')
    for t in x_ticks:
        x = sx(t)
        p.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top + f.plot_h}" '
                 f'y2="{f.top + f.plot_h + 4}" stroke="#666"/>')
        p.append(f'<text x="{x:.1f}" y="{f.top + f.plot_h + 17}" text-anchor="middle">'
                 f'{_fmt_seconds(t)}</text>')
    p.append(f'<rect x="{f.left}" y="{f.top}" width="{f.plot_w}" height="{f.plot_h}" '
             f'fill="none" stroke="#999"/>')
    for m, label_x in zip(markers, _label_positions([sx(m.start) for m in markers], markers)):
        x = sx(m.start)
        p.append(f'<g class="step-marker" data-step="{m.number}" data-kind="{escape(m.kind)}" '
                 f'data-start="{m.start:.6g}" data-end="{m.end:.6g}">'
                 f'<title>step {m.number}: {escape(m.label)} at {m.start:.3f} s</title>'
                 f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top - 4}" y2="{f.top + f.plot_h}" '
                 f'stroke="#b07d12" stroke-dasharray="3,3"/>'
                 f'<text x="{label_x + 2:.1f}" y="{f.top - 6}" fill="#b07d12">{m.number}</text></g>')
    for line in lines:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        values = " ".join(f"{x:.6g}:{y:.6g}" for x, y in line.points)
        dash = ' stroke-dasharray="6,4"' if line.dashed else ""
        p.append(f'<polyline class="series" data-name="{escape(line.name)}" data-values="{values}" '
                 f'points="{pts}" fill="none" stroke="{line.color}" stroke-width="1.6"{dash}>'
                 f'<title>{escape(line.name)}</title></polyline>')
    # legend, right-aligned on the title's line
    x = f.left + f.plot_w
    for line in reversed(lines):
        text_w = 7 * len(line.name) + 28
        x -= text_w
        dash = ' stroke-dasharray="6,4"' if line.dashed else ""
        p.append(f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="10" y2="10" stroke="{line.color}" '
                 f'stroke-width="2"{dash}/><text x="{x + 22:.0f}" y="14">{escape(line.name)}</text>')
    p.append(f'<text x="{f.left + f.plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" '
             f'fill="#555">seconds since the bus started</text>')
    return f.svg(title)


def fill_color(fraction: float) -> str:
    """White (empty) through amber to dark red (full)."""
    fr = min(max(fraction, 0.0), 1.0)
    if fr <= 0:
        return "#ffffff"
    if fr < 0.5:                     # white -> amber
        a = fr / 0.5
        r, g, b = 255, round(255 - a * (255 - 191)), round(255 - a * 255)
    else:                            # amber -> dark red
        a = (fr - 0.5) / 0.5
        r, g, b = round(255 - a * (255 - 150)), round(191 - a * 191), 0
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_map(times: list[float], rows: list[list[int]], capacity: int, *, title: str,
             row_label: Callable[[int], str], width: int = 1100, x_max: float | None = None,
             markers: tuple = ()) -> str:
    """``rows[r][i]``: events queued in ring ``r`` at ``times[i]``, drawn as
    cells coloured by ``fill / capacity``; each cell spans to the next sample."""
    row_h = max(6, min(22, 320 // max(1, len(rows))))
    f = _Frame(width, 40 + 40 + row_h * len(rows), top=40, left=78)
    x_hi = x_max if x_max is not None else (times[-1] if times else 1.0)
    x_ticks = nice_ticks(x_hi or 1.0, 10)
    x_hi = x_ticks[-1]

    def sx(x):
        return f.left + x / x_hi * f.plot_w

    p = f.parts
    p.append(f'<text x="{f.left}" y="14" font-weight="bold">{escape(title)}</text>')
    starts = [0.0] + list(times[:-1])
    for r, row in enumerate(rows):
        y = f.top + r * row_h
        p.append(f'<text x="{f.left - 6}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
                 f'{escape(row_label(r))}</text>')
        for i, fill in enumerate(row):
            x0, x1 = sx(starts[i]), sx(times[i])
            fr = fill / capacity if capacity else 0.0
            p.append(f'<rect class="cell" data-row="{r}" data-t="{times[i]:.6g}" data-fill="{fill}" '
                     f'x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="{row_h}" '
                     f'fill="{fill_color(fr)}"><title>{escape(row_label(r))} at {times[i]:.2f} s: '
                     f'{fill:,} of {capacity:,} ({fr:.0%})</title></rect>')
    bottom = f.top + row_h * len(rows)
    p.append(f'<rect x="{f.left}" y="{f.top}" width="{f.plot_w}" height="{row_h * len(rows)}" '
             f'fill="none" stroke="#999"/>')
    for m, label_x in zip(markers, _label_positions([sx(m.start) for m in markers], markers)):
        x = sx(m.start)
        p.append(f'<line class="step-marker" data-step="{m.number}" x1="{x:.1f}" x2="{x:.1f}" '
                 f'y1="{f.top - 4}" y2="{bottom}" stroke="#b07d12" stroke-dasharray="3,3"/>'
                 f'<text x="{label_x + 2:.1f}" y="{f.top - 6}" fill="#b07d12">{m.number}</text>')
    for t in x_ticks:
        x = sx(t)
        p.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_fmt_seconds(t)}</text>')
    # colour key
    kx = f.left + f.plot_w - 200
    for i in range(11):
        p.append(f'<rect x="{kx + i * 14}" y="4" width="14" height="10" fill="{fill_color(i / 10)}" '
                 f'stroke="#ccc" stroke-width="0.5"/>')
    p.append(f'<text x="{kx - 4}" y="13" text-anchor="end">empty</text>'
             f'<text x="{kx + 11 * 14 + 4}" y="13">full</text>')
    return f.svg(title)


def bar_chart(bars: list[Bar], *, title: str, x_format: Callable[[float], str],
              width: int = 1100, log: bool = True) -> str:
    """Horizontal bars grouped by ``group`` (one row per bar), on a log scale
    by default: latency percentiles span microseconds to seconds."""
    groups = list(dict.fromkeys(b.group for b in bars))
    names = list(dict.fromkeys(b.name for b in bars))
    bar_h = 14
    group_h = bar_h * len(names) + 10
    f = _Frame(width, 40 + 36 + group_h * len(groups), top=40, left=90)
    positive = [b.value for b in bars if b.value > 0]
    lo = 10 ** math.floor(math.log10(min(positive))) if positive else 1.0
    hi = 10 ** math.ceil(math.log10(max(positive))) if positive else 10.0
    if hi <= lo:
        hi = lo * 10

    def sx(v):
        if log:
            v = max(v, lo)
            return f.left + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * f.plot_w
        return f.left + v / hi * f.plot_w

    p = f.parts
    p.append(f'<text x="{f.left}" y="14" font-weight="bold">{escape(title)}</text>')
    decade = lo
    while decade <= hi * 1.0001:
        x = sx(decade)
        p.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" y2="{f.top + group_h * len(groups)}" '
                 f'stroke="#ddd"/><text x="{x:.1f}" y="{f.top + group_h * len(groups) + 16}" '
                 f'text-anchor="middle">{escape(x_format(decade))}</text>')
        decade *= 10
    for gi, group in enumerate(groups):
        y0 = f.top + gi * group_h
        p.append(f'<text x="{f.left - 8}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end" '
                 f'font-weight="bold">{escape(group)}</text>')
        for ni, name in enumerate(names):
            bar = next((b for b in bars if b.group == group and b.name == name), None)
            if bar is None:
                continue
            y = y0 + 4 + ni * bar_h
            w = max(sx(bar.value) - f.left, 1)
            p.append(f'<rect class="bar" data-group="{escape(group)}" data-name="{escape(name)}" '
                     f'data-value="{bar.value:.6g}" x="{f.left}" y="{y}" width="{w:.1f}" '
                     f'height="{bar_h - 2}" fill="{bar.color}"><title>{escape(name)} {escape(group)}: '
                     f'{escape(x_format(bar.value))}</title></rect>'
                     f'<text x="{f.left + w + 4:.1f}" y="{y + bar_h - 4}">{escape(x_format(bar.value))}'
                     f' <tspan fill="#777">{escape(name)}</tspan></text>')
    return f.svg(title)
