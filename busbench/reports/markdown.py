"""A Markdown summary (also appended to $GITHUB_STEP_SUMMARY in CI)."""
from __future__ import annotations

from ..common.names import COUNTER_NAMES, OUTCOME_WORDS, SHUTDOWN_WAS_LOSSY
from ..common.units import format_count, format_duration, format_rate
from ..targets.base import exports

MARK = {True: "✅", False: "❌"}


def _verdict_word(v) -> str:
    word = OUTCOME_WORDS[v.outcome]
    if v.outcome not in ("passed", "failed"):
        return word
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
        for k in COUNTER_NAMES:
            lines.append(f"| `{k}` | {c[k]:,} |" if exports(r.capabilities, k, c) and k in c
                         else f"| `{k}` | not exported |")
        lines.append(f"| `{SHUTDOWN_WAS_LOSSY}` | {str(c[SHUTDOWN_WAS_LOSSY]).lower()} |"
                     if exports(r.capabilities, SHUTDOWN_WAS_LOSSY, c) and SHUTDOWN_WAS_LOSSY in c
                     else f"| `{SHUTDOWN_WAS_LOSSY}` | not exported |")
        m = r.metrics
        behind = (f" Open loop behind schedule: {m.get('late_sends', 0):,} late sends, "
                  f"{m.get('unsent', 0):,} events never sent." if m.get("late_sends") or m.get("unsent")
                  else "")
        dispatched = (f"{format_count(c['events_dispatched'])} events dispatched"
                      if exports(r.capabilities, "events_dispatched", c) and "events_dispatched" in c
                      else "events dispatched not exported")
        lines += ["", f"Target `{r.target}`, layout `{r.layout}`, load {r.load_s:.2f} s, "
                  f"{dispatched}.{behind}", ""]
        if r.latency and r.latency["corrected"]["count"]:
            lat = r.latency
            lines += ["| latency | p50 | p90 | p99 | p99.9 | max |", "|---|---|---|---|---|---|"]
            for key in ("corrected", "uncorrected"):
                s = lat.get(key)
                if s is None:          # open loop on a sink-witnessed target: no uncorrected
                    continue
                lines.append(f"| {key} | " + " | ".join(format_duration(s[p]) for p in
                                                     ("p50", "p90", "p99", "p999", "max")) + " |")
            lines.append("")
        lines += ["| | check | verdict | evidence |", "|---|---|---|---|"]
        for v in r.checks:
            name = v.name if v.at == "end" else f"{v.name} ({v.at})"
            lines.append(f"| {MARK[v.ok]} | {name} | {_verdict_word(v)} | "
                         f"{v.evidence.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
