"""A Markdown summary (also appended to $GITHUB_STEP_SUMMARY in CI)."""
from __future__ import annotations

from ..units import format_count, format_duration, format_rate

MARK = {True: "✅", False: "❌"}


def _verdict_word(v) -> str:
    if v.outcome == "not_evaluable":
        return "not evaluable"
    word = v.outcome
    return f"{word} (expected to fail)" if v.expect == "fail" else word


def render(results) -> str:
    lines = ["# busbench results", ""]
    lines += ["| scenario | status | throughput | dropped | checks |", "|---|---|---|---|---|"]
    for r in results:
        ok = sum(1 for v in r.checks if v.ok)
        tp = r.metrics.get("throughput")
        lines.append(f"| {r.scenario_name} | {r.status} | {format_rate(tp) if tp else '-'} | "
                     f"{r.metrics.get('dropped_ratio', 0):.2%} | {ok}/{len(r.checks)} |")
    for r in results:
        lines += ["", f"## {r.scenario_name}: {r.status}", ""]
        if r.error:
            lines += [f"> {r.error}", ""]
        c = r.counters
        lines += ["| counter | value |", "|---|---|"]
        for k in ("events_ingested", "events_dropped", "batches_dispatched", "events_dispatched"):
            lines.append(f"| `{k}` | {c.get(k, 0):,} |")
        lines.append(f"| `shutdown_was_lossy` | {str(c.get('shutdown_was_lossy', False)).lower()} |")
        m = r.metrics
        behind = (f" Open loop behind schedule: {m.get('late_sends', 0):,} late sends, "
                  f"{m.get('unsent', 0):,} events never sent." if m.get("late_sends") or m.get("unsent")
                  else "")
        lines += ["", f"Layout `{r.layout}`, load {r.load_s:.2f} s, "
                  f"{format_count(c.get('events_dispatched', 0))} events dispatched.{behind}", ""]
        if r.latency and r.latency["corrected"]["count"]:
            lat = r.latency
            lines += ["| latency | p50 | p90 | p99 | p99.9 | max |", "|---|---|---|---|---|---|"]
            for key in ("corrected", "uncorrected"):
                s = lat[key]
                lines.append(f"| {key} | " + " | ".join(format_duration(s[p]) for p in
                                                     ("p50", "p90", "p99", "p999", "max")) + " |")
            lines.append("")
        lines += ["| | check | verdict | evidence |", "|---|---|---|---|"]
        for v in r.checks:
            name = v.name if v.at == "end" else f"{v.name} ({v.at})"
            lines.append(f"| {MARK[v.ok]} | {name} | {_verdict_word(v)} | "
                         f"{v.evidence.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
