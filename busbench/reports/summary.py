"""The final summary table printed at the end of `busbench run`."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..common.names import (
    COUNTER_NAMES,
    OUTCOME_WORDS,
    RUN_CRASHED,
    RUN_ERROR,
    RUN_FAILED,
    RUN_INTERRUPTED,
    RUN_PASSED,
    RUN_TIMED_OUT,
    SHUTDOWN_WAS_LOSSY,
)
from ..common.units import format_duration, format_rate
from ..targets.base import exports

STYLE = {RUN_PASSED: "green", RUN_FAILED: "red", RUN_ERROR: "red", RUN_TIMED_OUT: "red",
         RUN_INTERRUPTED: "yellow", RUN_CRASHED: "red"}


def not_evaluated(result) -> Text:
    """Instead of an empty checks table: why there are no verdicts."""
    what = "end checks" if result.checks else "checks"
    why = {"interrupted": "the run was interrupted before its end",
           "error": f"the run could not complete ({result.error})",
           RUN_CRASHED: f"the run could not complete ({result.error})",
           RUN_TIMED_OUT: "the run passed its deadline before its end"}.get(
        result.status, "the scenario declares no checks")
    return Text(f"{what}: not evaluated, {why}", "yellow")


def render(result):
    r = result
    head = Text.assemble((f"{r.scenario_name}", "bold"), "  ",
                         (r.status.upper(), f"bold {STYLE.get(r.status, '')}"),
                         f"  ·  {r.target}  ·  counters {r.layout}  ·  load {r.load_s:.2f}s")
    counters = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    counters.add_column("counter")
    counters.add_column("value", justify="right")
    for k in COUNTER_NAMES:
        shown = exports(r.capabilities, k, r.counters) and k in r.counters
        counters.add_row(k, f"{r.counters[k]:,}" if shown else Text("not exported", "dim"))
    if exports(r.capabilities, SHUTDOWN_WAS_LOSSY, r.counters) and SHUTDOWN_WAS_LOSSY in r.counters:
        lossy = bool(r.counters[SHUTDOWN_WAS_LOSSY])
        counters.add_row(SHUTDOWN_WAS_LOSSY, Text("true" if lossy else "false",
                                                  "bold red" if lossy else ""))
    else:
        counters.add_row(SHUTDOWN_WAS_LOSSY, Text("not exported", "dim"))
    m = r.metrics
    if m.get("throughput") is not None:
        counters.add_row("throughput", format_rate(m["throughput"]))
    counters.add_row("dropped ratio", f"{m.get('dropped_ratio', 0):.2%}")
    if m.get("late_sends") or m.get("unsent"):
        # open loop behind schedule: late sends, and events the steps ended before sending
        counters.add_row("late sends / unsent", f"{m.get('late_sends', 0):,} / {m.get('unsent', 0):,}")
    if "latency.p99" in m:
        counters.add_row("latency p50 / p99 / max",
                         f"{format_duration(m['latency.p50'])} / {format_duration(m['latency.p99'])}"
                         f" / {format_duration(m['latency.max'])}")
        if "latency_uncorrected.p99" in m and m["latency_uncorrected.p99"] != m["latency.p99"]:
            counters.add_row("uncorrected p50 / p99",
                             f"{format_duration(m['latency_uncorrected.p50'])} / "
                             f"{format_duration(m['latency_uncorrected.p99'])}")
    checks = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    checks.add_column("")
    checks.add_column("check")
    checks.add_column("verdict")
    checks.add_column("evidence", overflow="fold")
    for v in r.checks:
        mark = Text("✓", "green") if v.ok else Text("✗", "bold red")
        verdict = OUTCOME_WORDS[v.outcome]
        if v.expect == "fail" and v.outcome in ("passed", "failed"):
            verdict += " (expected to fail)"
        checks.add_row(mark, v.name if v.at == "end" else f"{v.name} ({v.at})", verdict, v.evidence)
    parts = [head, counters]
    if r.checks:
        parts.append(checks)
    if not r.checks or r.status in ("interrupted", "error", RUN_CRASHED):
        parts.append(not_evaluated(r))
    if r.error:
        parts.insert(1, Text(f"error: {r.error}", "red"))
    crash = getattr(r, "crash", None)
    if crash:
        kept = [name for name, key in (("every thread's stack", "stacks"),
                                       ("the child's stderr tail", "stderr_tail")) if crash.get(key)]
        if kept:
            parts.insert(2, Text(f"{' and '.join(kept)}: in the record (crash)", "dim"))
    return Group(*parts)
