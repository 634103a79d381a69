"""What a run looks like while it runs: a pure view over ``Snapshot`` values.

``render_dashboard`` builds the whole frame from one snapshot and nothing else
(STYLE.md: the dashboard only reads snapshots, it never touches the bus), so a
frame is tested by rendering it to a recording console and reading the text.

Three front-ends share one interface (context manager + ``update(snapshot)``):

* ``LiveDashboard``: a rich ``Live`` redrawing the latest snapshot a few times a second;
* ``PlainProgress``: for CI logs, one short plain line now and then, never an escape code;
* ``NullProgress``: for ``--quiet``, nothing.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterable, Optional, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from busbench.common.names import (
    DISPLAY_STATUS,
    EVENTS_DISPATCHED,
    EVENTS_DROPPED,
    EVENTS_INGESTED,
    OUTCOME_WORDS,
    RUN_TIMED_OUT,
    SHUTDOWN_WAS_LOSSY,
)
from busbench.run.snapshot import (
    CHECK_FAILED,
    CHECK_PASSED,
    COUNTER_NAMES,
    Snapshot,
)
from busbench.targets.base import THROUGHPUT_COUNTERS

NOT_EXPORTED = "not exported"
NOT_OBSERVABLE_WORDS = "not observable"

#: above this many shards only the fullest are drawn, so the frame fits a terminal
MAX_SHARD_ROWS = 16
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
SHARD_BAR_WIDTH = 40
STEP_BAR_WIDTH = 30
LATENCY_KEYS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))
#: counters panel: header row + counters + lossy flag + two borders; the derived
#: panel beside it takes the same height so the two read as one block
NUMBERS_HEIGHT = 1 + len(COUNTER_NAMES) + 1 + 2
STATUS_STYLES = {"running": "bold cyan", "finished": "bold green",
                 "failed": "bold red", DISPLAY_STATUS[RUN_TIMED_OUT]: "bold red",
                 "interrupted": "bold yellow"}


# --- human formatters (private on purpose: busbench/common/units.py is written concurrently) ---

def _count(n: int) -> str:
    return f"{int(n):,}"


RATE_UNITS = (("G/s", 1e9), ("M/s", 1e6), ("k/s", 1e3), ("/s", 1))
NANOSECOND_UNITS = (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1))


def _scaled(value: Optional[float], units: tuple) -> str:
    """``value`` in the largest of ``units`` it reaches, one decimal; whole numbers in the smallest."""
    if value is None:
        return "–"
    for suffix, scale in units[:-1]:
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    return f"{value:.0f}{units[-1][0]}"


def _rate(per_s: Optional[float]) -> str:
    return _scaled(per_s, RATE_UNITS)


def _nanoseconds(ns: Optional[float]) -> str:
    return _scaled(ns, NANOSECOND_UNITS)


def _ratio(fraction: float) -> str:
    # a few drops in a hundred million must not read as "0.00%": drops matter
    return "<0.01%" if 0 < fraction < 0.0001 else f"{fraction:.2%}"


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{secs:04.1f}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{int(secs):02d}s"


def _step(snapshot: Snapshot) -> str:
    # step_index is 0-based; people count steps from 1
    return f"step {snapshot.step_index + 1}/{snapshot.step_count} {snapshot.step_label}"


def waiting_line(s: Snapshot) -> str | None:
    """On a step that runs long: what it waits for, what is left in the rings,
    how fast it drains and when it should be done. None on a step on time."""
    if not s.long_step:
        return None
    parts = [f"waiting {_elapsed(s.step_elapsed_s or 0.0)} for {s.waiting_for}"]
    if s.shards:
        queued = s.queued
        if queued:
            fullest = max(range(len(s.shards)), key=lambda i: s.shards[i].fill)
            eta = s.drain_eta_s
            if s.drain_rate is None:
                drain = "drain rate not observable on this target (no events_dispatched)"
            elif eta is not None:
                drain = f"draining {_rate(s.drain_rate)}, ~{_elapsed(eta)} left"
            else:
                drain = "not draining (nothing dispatched in the last interval)"
            parts.append(f"{_count(queued)} events in the rings (fullest shard {fullest}: "
                         f"{_count(s.shards[fullest].fill)}), {drain}")
        else:
            parts.append("the rings are empty")
    else:
        parts.append("ring fill not observable on this target")
    return "; ".join(parts)


# --- small drawing helpers ---

def sparkline(values: Iterable[float], width: int) -> str:
    """``values`` (oldest first) as exactly ``width`` block characters.

    The lowest value maps to ``▁`` and the highest to ``█``; a flat series is all
    ``▁``. More values than ``width`` are averaged into ``width`` buckets so the
    whole history stays visible; fewer are right-aligned (padded with spaces on
    the left) so the newest sample is always at the right edge.
    """
    values = [float(v) for v in values]
    if width <= 0:
        return ""
    if len(values) > width:
        n = len(values)
        values = [sum(values[i * n // width:(i + 1) * n // width]) / ((i + 1) * n // width - i * n // width)
                  for i in range(width)]
    if not values:
        return " " * width
    low, high = min(values), max(values)
    top = len(SPARK_BLOCKS) - 1
    span = high - low
    blocks = "".join(SPARK_BLOCKS[round((v - low) / span * top) if span else 0] for v in values)
    return blocks.rjust(width)


def _bar(fraction: float, width: int, style: str = "") -> Text:
    fraction = min(max(fraction, 0.0), 1.0)
    cells = round(fraction * width)
    if fraction > 0:
        cells = max(cells, 1)  # a nearly empty ring is still not empty
    return Text.assemble(("█" * cells, style), ("░" * (width - cells), "dim"))


def _fill_style(fraction: float) -> str:
    return "red" if fraction >= 0.9 else "yellow" if fraction >= 0.5 else "green"


# --- the sections of a frame ---

def _header(s: Snapshot) -> Panel:
    status = Text(s.status.upper(), style=STATUS_STYLES.get(s.status, "bold"))
    first = Text.assemble(
        ("target ", "dim"), s.target, ("  ·  counters ", "dim"), s.layout,
        ("  ·  elapsed ", "dim"), _elapsed(s.elapsed_s), ("  ·  ", "dim"), status,
    )
    second = Text(_step(s), style="bold")
    if s.step_progress is not None:
        second.append("  ")
        second.append_text(_bar(s.step_progress, STEP_BAR_WIDTH, "cyan"))
        second.append(f" {s.step_progress:4.0%}")
    lines = [first, second]
    waiting = waiting_line(s)
    if waiting is not None:
        lines.append(Text(waiting, style="yellow"))
    return Panel(Group(*lines), title=f"[bold]busbench[/] · {s.scenario}",
                 title_align="left", box=box.ROUNDED)


def _counters(s: Snapshot) -> Panel:
    table = Table(box=None, expand=True, pad_edge=False)
    table.add_column("counter", style="bold")
    table.add_column("value", justify="right")
    table.add_column("rate", justify="right")
    for name in COUNTER_NAMES:
        if not s.exports(name) and (s.counters or s.capabilities):   # the target lacks it
            table.add_row(name, Text(NOT_EXPORTED, style="dim"), "")
            continue
        table.add_row(name, _count(s.counters.get(name, 0)), _rate(s.rates.get(name)))
    if s.shutdown_was_lossy is None or not s.exports(SHUTDOWN_WAS_LOSSY) and s.capabilities:
        lossy = Text(NOT_EXPORTED, style="dim")
    else:
        lossy = Text("LOSSY", style="bold red") if s.shutdown_was_lossy else Text("false", style="dim")
    table.add_row(SHUTDOWN_WAS_LOSSY, lossy, "")
    return Panel(table, title="EventBusStats", title_align="left", box=box.ROUNDED, height=NUMBERS_HEIGHT)


def _derived(s: Snapshot) -> Panel:
    table = Table(box=None, expand=True, pad_edge=False)
    table.add_column("")
    table.add_column("value", justify="right")
    # a value derived from a counter the target does not export is not observable
    unseen = Text(NOT_OBSERVABLE_WORDS, style="dim")
    in_flight, ratio, batch = s.in_flight, s.dropped_ratio, s.mean_batch_size
    table.add_row("in flight", unseen if in_flight is None else _count(in_flight))
    dropped_style = "red" if s.counters.get("events_dropped") else ""
    table.add_row("dropped ratio", unseen if ratio is None else Text(_ratio(ratio), style=dropped_style))
    table.add_row("mean batch size", unseen if batch is None else f"{batch:,.1f}")
    return Panel(table, title="derived", title_align="left", box=box.ROUNDED, height=NUMBERS_HEIGHT)


def _shards(s: Snapshot) -> Panel:
    def fraction(i: int) -> float:
        shard = s.shards[i]
        return shard.fill / shard.capacity if shard.capacity else 0.0

    shown = range(len(s.shards))
    if len(s.shards) > MAX_SHARD_ROWS:
        # the fullest rings are where backpressure starts; keep index order for reading
        shown = sorted(sorted(shown, key=fraction, reverse=True)[:MAX_SHARD_ROWS])
    table = Table.grid(padding=(0, 1))
    for i in shown:
        shard = s.shards[i]
        table.add_row(f"shard {i:>3}", _bar(fraction(i), SHARD_BAR_WIDTH, _fill_style(fraction(i))),
                      Text(f"{_count(shard.fill)}/{_count(shard.capacity)}", justify="right"),
                      # floored, so "100%" means truly full, not 4,095 of 4,096
                      Text(f"{int(fraction(i) * 100)}%", justify="right"))
    rows: list[RenderableType] = [table]
    if len(s.shards) > MAX_SHARD_ROWS:
        rows.append(Text(f"… {len(s.shards) - MAX_SHARD_ROWS} more shards", style="dim"))
    return Panel(Group(*rows), title="ring fill per shard", title_align="left", box=box.ROUNDED)


def _throughput(s: Snapshot) -> Panel:
    """The rate of what the target has: dispatched, else ingested events."""
    history, counter = s.throughput_history, s.throughput_of
    if counter is None:
        body = Text(f"{NOT_OBSERVABLE_WORDS}: the target exports neither "
                    f"{' nor '.join(THROUGHPUT_COUNTERS)}", style="dim")
        return Panel(body, title="throughput", title_align="left", box=box.ROUNDED)
    if history:
        body = Group(Text(sparkline(history, SPARK_WIDTH), style="cyan"),
                     Text.assemble(("now ", "dim"), _rate(history[-1]), ("   min ", "dim"), _rate(min(history)),
                                   ("   max ", "dim"), _rate(max(history))))
    else:
        body = Text("no samples yet", style="dim")
    return Panel(body, title=f"{counter} throughput", title_align="left", box=box.ROUNDED)


def _checks(s: Snapshot) -> Panel:
    if not s.checks:
        return Panel(Text("no checks", style="dim"), title="checks", title_align="left", box=box.ROUNDED)
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # evidence: one line, cut at the edge
    for check in s.checks:
        if check.state == CHECK_PASSED:
            mark, state = Text("✓", style="bold green"), Text("passed", style="green")
        elif check.state == CHECK_FAILED:
            mark, state = Text("✗", style="bold red"), Text("failed", style="red")
        elif check.state in OUTCOME_WORDS:      # not evaluable / not observable: never a pass
            mark, state = Text("?", style="bold yellow"), Text(OUTCOME_WORDS[check.state], style="yellow")
        else:
            mark, state = Text("·", style="dim"), Text("pending", style="dim")
        if check.expected_to_fail:
            state.append(" (expected to fail)", style="yellow")
        evidence = " ".join(check.evidence.split()) if check.state == CHECK_FAILED else ""
        table.add_row(mark, check.name, state, Text(evidence, style="dim"))
    return Panel(table, title="checks", title_align="left", box=box.ROUNDED)


def _latency(latency_ns: dict) -> Panel:
    line = Text()
    for key, label in LATENCY_KEYS:
        line.append(f"{label} ", style="dim")
        line.append(f"{_nanoseconds(latency_ns.get(key)):<10}")
    return Panel(line, title="latency", title_align="left", box=box.ROUNDED)


def render_dashboard(snapshot: Snapshot) -> RenderableType:
    """The whole dashboard frame for one snapshot (pure: same snapshot, same frame)."""
    numbers = Table.grid(padding=(0, 1), expand=True)
    numbers.add_column(ratio=3)
    numbers.add_column(ratio=2)
    numbers.add_row(_counters(snapshot), _derived(snapshot))
    parts: list[RenderableType] = [_header(snapshot), numbers]
    if snapshot.shards:
        parts.append(_shards(snapshot))
    parts += [_throughput(snapshot), _checks(snapshot)]
    if snapshot.latency_ns is not None:
        parts.append(_latency(snapshot.latency_ns))
    return Group(*parts)


# --- front-ends ---

class LiveDashboard:
    """The dashboard on a terminal: redraws the latest snapshot a few times a second.

    ``update`` only stores the snapshot (cheap, any thread); rich's refresh thread
    pulls it through ``get_renderable``, so the sampler never waits on drawing.
    """

    def __init__(self, console: Optional[Console] = None, refresh_per_second: float = 4.0):
        self._lock = threading.Lock()
        self._latest: Optional[Snapshot] = None
        self.live = Live(console=console, get_renderable=self._frame,
                         refresh_per_second=refresh_per_second, transient=False)

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._latest = snapshot

    def _frame(self) -> RenderableType:
        with self._lock:
            latest = self._latest
        if latest is None:
            return Text("waiting for the first snapshot…", style="dim")
        return render_dashboard(latest)

    def __enter__(self) -> "LiveDashboard":
        self.live.start(refresh=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Live.stop draws the latest frame one last time and leaves it on screen
        # (transient=False), then restores the cursor and sys.stdout/stderr, even
        # if that last draw fails.
        try:
            self.live.stop()
        except Exception:
            if exc_type is None:
                raise
            # an exception already on its way out (e.g. Ctrl-C -> exit 130) says
            # more about the run than a failed last frame, so let it win
        return False


class PlainProgress:
    """Progress for logs: at most one short plain line per ``interval_s``, plus one
    per step change and one at exit. Never an escape code, never a flood."""

    MAX_LINE = 159

    def __init__(self, file: Optional[TextIO] = None, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self._file = file
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Optional[Snapshot] = None
        self._last_line_at: Optional[float] = None
        self._last_step: Optional[int] = None
        self._long_label: str | None = None
        self._printed: Snapshot | None = None

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._latest = snapshot
            now = self._clock()
            step_changed = snapshot.step_index != self._last_step
            due = self._last_line_at is None or now - self._last_line_at >= self._interval_s
            # a step turning long says so at once, not at the next interval
            turned_long = snapshot.long_step and self._long_label != snapshot.step_label
            if turned_long:
                self._long_label = snapshot.step_label
            if step_changed or due or turned_long:
                self._print(snapshot)
                self._printed = snapshot
                self._last_line_at = now
                self._last_step = snapshot.step_index

    def _print(self, s: Snapshot) -> None:
        c = s.counters

        def value(name):
            return _count(c[name]) if s.exports(name) and name in c else NOT_EXPORTED
        # the last line of a run says how it ended, not the step it ended in
        where = _step(s) if s.status == "running" else s.status
        target = "" if s.target == "builtin" else f" [{s.target}]"
        ratio = s.dropped_ratio
        counter = s.throughput_of
        rate = (f"{_rate(s.rates.get(counter))}"
                + ("" if counter == EVENTS_DISPATCHED else f" {counter.split('_')[-1]}")
                if counter else "throughput not observable")
        line = (f"[{s.elapsed_s:7.1f}s] {s.scenario}{target} {where}: "
                f"ingested {value(EVENTS_INGESTED)} "
                f"dispatched {value(EVENTS_DISPATCHED)} "
                f"dropped {value(EVENTS_DROPPED)}"
                f"{'' if ratio is None else f' ({_ratio(ratio)})'} {rate}")
        if s.shutdown_was_lossy:
            line += " LOSSY"
        lines = [line]
        waiting = waiting_line(s)
        if waiting is not None:      # its own line: the first one is full already
            lines.append(f"  {waiting}")
        file = self._file or sys.stdout
        for text in lines:
            if len(text) > self.MAX_LINE:  # a long scenario name or label must not make a log line wrap
                text = text[:self.MAX_LINE - 1] + "…"
            print(text, file=file, flush=True)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        with self._lock:
            # the final line, unless the final frame was printed already
            if self._latest is not None and self._latest is not self._printed:
                self._print(self._latest)
        return False


class NullProgress:
    """``--quiet``: the same interface, nothing shown."""

    def update(self, snapshot: Snapshot) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False


Progress = LiveDashboard | PlainProgress | NullProgress
MODES = ("live", "plain", "quiet")


def make_progress(mode: str, console: Optional[Console] = None, interval_s: float = 10.0) -> Progress:
    """The front-end for ``mode`` ("live" | "plain" | "quiet")."""
    if mode == "live":
        return LiveDashboard(console=console)
    if mode == "plain":
        return PlainProgress(file=console.file if console is not None else None, interval_s=interval_s)
    if mode == "quiet":
        return NullProgress()
    raise ValueError(f"unknown progress mode {mode!r}; expected one of {', '.join(MODES)}")


def default_mode(stdout_is_tty: bool, quiet: bool, live: Optional[bool]) -> str:
    """--quiet wins; then an explicit --live/--no-live; else live only on a terminal."""
    if quiet:
        return "quiet"
    if live is None:
        live = stdout_is_tty
    return "live" if live else "plain"
