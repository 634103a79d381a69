"""A run, or several, as one self-contained HTML page.

``render(records)`` reads run records (the JSON dicts ``json_report`` writes,
or ``RunResult.to_dict()``) and nothing else: never the bus, never the YAML.
The page has no script, no stylesheet link and no font or CDN fetch; charts
are inline SVG (``svg.py``), so it opens from a CI artifact, an e-mail or a
laptop offline.

What it shows, for each record: the target, events ingested / dispatched /
dropped per second with the steps marked, ring fill per shard as a heat map,
latency percentiles (corrected and uncorrected side by side), the checks with
their evidence (and which ones the target could not observe), flushes and
shutdown, the scenario as run and the environment. What a target does not
export (a counter, ring fill, latency) is said to be missing, never drawn as 0.
Several records (a compare's variants, a baseline and a candidate) are
overlaid on the same axes.
"""
from __future__ import annotations

import json
from html import escape

import yaml

from ..common import names as N
from ..common.units import format_count, format_duration, format_rate
from ..evidence.records import RecordError, read_record  # noqa: F401 (RecordError: re-exported)
from . import svg
from .figures import (COUNTERS, MAX_HEAT_COLUMNS, MAX_HEAT_ROWS, PERCENTILES, RATE_NAMES,  # noqa: F401
                      exports, rate_points, record_label, step_markers, throughput_of)
from .figures import heat_rows as _heat_rows

#: check outcomes the target or the run could not decide: never a pass, not a failure either
UNDECIDED = (N.NOT_EVALUABLE, N.NOT_OBSERVABLE)
STATUS_CLASS = {N.RUN_PASSED: "ok", N.RUN_FAILED: "bad", N.RUN_ERROR: "bad",
                N.RUN_INTERRUPTED: "warn"}

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1180px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin-bottom:6px}
table{border-collapse:collapse;margin:6px 0 12px 0;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#18794e;font-weight:bold} .bad{color:#c62828;font-weight:bold}
.warn{color:#a15c00;font-weight:bold} .muted{color:#777}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}
.chart{margin:8px 0 18px 0} details{margin:2px 0} .swatch{display:inline-block;width:10px;height:10px}
"""


def load_record(path) -> dict:
    """A run record to draw (it must carry its time series)."""
    record = read_record(path)
    if "series" not in record:
        raise RecordError(f"{path}: not a busbench run record with a time series")
    return record


# --------------------------------------------------------------------------- derived numbers
# (what the charts plot is read in figures.py, shared with the PNG files)
def _target(record: dict) -> str:
    return str(record.get("target") or "?")


# --------------------------------------------------------------------------- html pieces
def _table(header: list, rows: list, num_cols: tuple = ()) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in num_cols else ""
            cells.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _status(status: str) -> str:
    return f'<span class="{STATUS_CLASS.get(status, "")}">{escape(status.upper())}</span>'


def _summary(records, labels) -> str:
    rows = []
    for rec, label in zip(records, labels):
        m = rec.get("metrics", {})
        checks = rec.get("checks", [])
        ok = sum(1 for c in checks if c.get("ok"))
        unobservable = sum(1 for c in checks if c.get("outcome") == N.NOT_OBSERVABLE)
        tp = m.get("throughput")
        p99 = m.get("latency.p99")
        dropped = m.get("dropped_ratio") if exports(rec, N.EVENTS_DROPPED) else None
        passed = f"{ok}/{len(checks)}"
        if unobservable:
            passed += f' <span class="warn">({unobservable} not observable)</span>'
        rows.append([escape(label), _status(rec.get("status", "?")), escape(_target(rec)),
                     escape(rec.get("layout", "")),
                     format_rate(tp) if tp is not None else "–",
                     f"{dropped:.2%}" if dropped is not None else "–",
                     format_duration(p99) if p99 is not None else "–",
                     f"{rec.get('load_s', 0.0):.2f} s", passed])
    return _table(["run", "status", "target", "counters", "throughput", "dropped", "latency p99",
                   "load", "checks as declared"], rows, num_cols=(4, 5, 6, 7))


def _throughput_section(records, labels) -> str:
    x_max = max((float(r["series"][-1]["t"]) for r in records if r.get("series")), default=1.0)
    x_max = max([x_max] + [m.end for m in step_markers(records[0])])
    out, missing = [], []
    if len(records) == 1:
        rec = records[0]
        lines = [svg.Line(RATE_NAMES[c], tuple(rate_points(rec["series"], c)), color=svg.PALETTE[i])
                 for i, c in enumerate(COUNTERS) if exports(rec, c)]
        missing = [f"the {_target(rec)} target does not export {c}"
                   for c in COUNTERS if not exports(rec, c)]
        if lines:
            out.append(svg.line_chart(lines, title="events per second", y_format=format_rate,
                                      markers=step_markers(rec), x_max=x_max))
    else:
        for c in COUNTERS:
            lines = [svg.Line(label, tuple(rate_points(rec["series"], c)),
                              color=svg.PALETTE[i % len(svg.PALETTE)], dashed=i >= len(svg.PALETTE))
                     for i, (rec, label) in enumerate(zip(records, labels)) if exports(rec, c)]
            missing += [f"{label} (target {_target(rec)}) does not export {c}"
                        for rec, label in zip(records, labels) if not exports(rec, c)]
            if lines:
                out.append(svg.line_chart(lines, title=f"{RATE_NAMES[c].replace('/s', '')} per second",
                                          y_format=format_rate, markers=step_markers(records[0]),
                                          x_max=x_max))
    steps = []
    for m in step_markers(records[0]):
        steps.append([str(m.number), escape(m.kind), escape(m.label), f"{m.start:.3f} s",
                      f"{m.end - m.start:.3f} s"])
    note = ("" if len(records) == 1 else
            '<p class="muted">Steps are marked as in the first run; the others ran the same steps.</p>')
    interval = records[0].get("series_interval_s")
    every = f" sampled every {interval * 1000:.0f} ms" if interval else ""
    return ("<h2>Throughput over time</h2>"
            f'<p class="muted">Rates over each sampling interval ({every.strip() or "as sampled"}); '
            "numbered lines mark where each step began, shaded bands the steps that are not "
            "load (flush, fault, shutdown…).</p>"
            + "".join(f'<div class="chart">{c}</div>' for c in out)
            + "".join(f'<p class="warn">Not drawn: {escape(m)}.</p>' for m in missing) + note
            + _table(["step", "kind", "label", "started", "took"], steps, num_cols=(3, 4)))


def _ring_section(records, labels) -> str:
    out = ["<h2>Ring fill per shard</h2>"]
    for rec, label in zip(records, labels):
        capacity = int((rec.get("scenario") or {}).get("bus", {}).get("capacity") or 0)
        heat = _heat_rows(rec)
        title = f"events queued per ring (capacity {capacity:,})" + (f": {label}" if len(records) > 1 else "")
        if heat is None:
            caps = rec.get("capabilities") or {}
            why = (f"the {_target(rec)} target cannot observe its rings' fill"
                   if caps and not caps.get("shard_fill") else
                   "written before busbench recorded it")
            out.append(f"<p class=\"muted\">{escape(label)}: this record has no per-shard fill "
                       f"({escape(why)}).</p>")
            continue
        times, rows, shards = heat
        x_max = max([times[-1] if times else 1.0] + [m.end for m in step_markers(rec)])
        chart = svg.heat_map(times, rows, capacity, title=title,
                             row_label=lambda r, shards=shards: f"shard {shards[r]}",
                             x_max=x_max, markers=step_markers(rec))
        out.append(f'<div class="chart">{chart}</div>')
        total = len(rec["series"][0].get("shard_fill", [])) if rec.get("series") else 0
        if len(shards) < total:
            out.append(f'<p class="muted">The {len(shards)} fullest of {total} rings.</p>')
    return "".join(out)


def _latency_section(records, labels) -> str:
    present = [(rec, label) for rec, label in zip(records, labels)
               if rec.get("latency") and rec["latency"].get("corrected", {}).get("count")]
    if not present:
        cannot = [_target(r) for r in records
                  if (r.get("capabilities") or {}) and not r["capabilities"].get("latency")]
        why = ("the scenario ran with <code>bus.latency: false</code>, or no event was dispatched"
               if not cannot or len(cannot) < len(records) else
               f"the {escape(', '.join(dict.fromkeys(cannot)))} target does not measure it, or "
               "the scenario ran with <code>bus.latency: false</code>")
        return f'<h2>Latency</h2><p class="muted">Not measured ({why}).</p>'

    bars, rows = [], []
    color = 0
    for rec, label in present:
        lat = rec["latency"]
        for kind in ("corrected", "uncorrected"):
            summary = lat.get(kind)
            if not summary or not summary.get("count"):
                continue
            name = kind if len(present) == 1 else f"{label} {kind}"
            for key, shown in PERCENTILES:
                bars.append(svg.Bar(shown, name, float(summary[key]),
                                    color=svg.PALETTE[color % len(svg.PALETTE)]))
            rows.append([escape(label), kind, format_count(summary["count"])]
                        + [format_duration(summary[key]) for key, _ in PERCENTILES])
            color += 1
    same = all(rec["latency"].get("corrected") == rec["latency"].get("uncorrected") for rec, _ in present)
    note = ("Corrected latency is measured from each event's intended send time (open-loop load), "
            "uncorrected from its actual send: a stalled bus shows in the first, not the second.")
    if same:
        note += (" Here they are equal: closed-loop producers send when the bus lets them, "
                 "so there is no intended time apart from the actual one.")
    return ("<h2>Latency, ingest to dispatch</h2>"
            f'<p class="muted">{escape(note)}</p>'
            + _table(["run", "measured from", "events"] + [s for _, s in PERCENTILES], rows,
                     num_cols=(2, 3, 4, 5, 6, 7))
            + '<div class="chart">'
            + svg.bar_chart(bars, title="latency percentiles (log scale)", x_format=format_duration)
            + "</div>")


def _checks_section(records, labels) -> str:
    out = ["<h2>Checks</h2>"]
    for rec, label in zip(records, labels):
        if len(records) > 1:
            out.append(f"<h3>{escape(label)}</h3>")
        checks = rec.get("checks", [])
        if not checks:
            reason = rec.get("error") or rec.get("status", "")
            out.append(f'<p class="warn">The checks were not evaluated: the run ended '
                       f'{escape(rec.get("status", ""))} ({escape(str(reason))}).</p>')
            continue
        rows, unobservable = [], []
        for c in checks:
            outcome = c.get("outcome", "")
            verdict = N.OUTCOME_WORDS.get(outcome, outcome.replace("_", " "))
            if c.get("expect") == "fail" and outcome not in UNDECIDED:
                verdict += " (expected to fail)"
            name = c["name"] if c.get("at", "end") == "end" else f"{c['name']} ({c['at']})"
            if outcome in UNDECIDED:       # could not tell: never a pass, and not a failure seen
                cls, mark = "warn", "?"
            else:
                cls, mark = ("ok", "✓") if c.get("ok") else ("bad", "✗")
            if outcome == N.NOT_OBSERVABLE:
                unobservable.append(name)
            numbers = c.get("numbers") or {}
            details = (f"<details><summary>numbers</summary><pre>"
                       f"{escape(json.dumps(numbers, indent=1, default=str))}</pre></details>"
                       if numbers else "")
            rows.append([f'<span class="{cls}">{mark}</span>', escape(name),
                         f'<span class="{cls}">{escape(verdict)}</span>',
                         escape(c.get("evidence", "")) + details])
        out.append(_table(["", "check", "verdict", "evidence"], rows))
        if unobservable:
            out.append(_not_observable_note(rec, unobservable))
        if rec.get("status") in ("interrupted", "error"):
            out.append(f'<p class="warn">The end checks were not evaluated: the run ended '
                       f'{escape(rec.get("status", ""))}.</p>')
    return "".join(out)


def _not_observable_note(record: dict, names: list[str]) -> str:
    """Which checks the target could not observe, and what it lacks."""
    caps = record.get("capabilities") or {}
    lacks = [f"{escape(str(what))}: {escape(str(why))}"
             for what, why in (caps.get("reasons") or {}).items()]
    if caps and not caps.get("witness"):
        hint = caps.get("witness_hint")
        lacks.append("no downstream witness of deliveries"
                     + (f" (for one: <code>{escape(hint)}</code>)" if hint else ""))
    more = f" It lacks {'; '.join(lacks)}." if lacks else ""
    return (f'<p class="warn">Not observable on the {escape(_target(record))} target: '
            f'{escape(", ".join(names))}. These are not passes: the target does not provide '
            f"the evidence they read.{more}</p>")


def _flush_shutdown_section(records, labels) -> str:
    rows = []
    for rec, label in zip(records, labels):
        for f in rec.get("flushes", []):
            rows.append([escape(label), f"flush (step {f.get('step', 0) + 1})"
                         + (" under load" if f.get("under_load") else ""),
                         escape(_flush_claim(f)),
                         f"{f.get('waited_s', 0.0) * 1000:.2f} ms of {f.get('timeout_s', 0.0):g} s",
                         escape(_flush_evidence(f))])
        sd = rec.get("shutdown")
        if sd:
            lossy = sd.get("lossy")
            said = ("lossy" if lossy else "clean") if lossy is not None else "the bus does not say"
            rows.append([escape(label), "shutdown", escape(said),
                         f"{sd.get('duration_s', 0.0) * 1000:.2f} ms of grace {sd.get('grace_s', 0.0):g} s",
                         escape(_shutdown_evidence(sd))])
    if not rows:
        return ""
    return "<h2>Flushes and shutdown</h2>" + _table(["run", "what", "result", "took", "evidence"], rows)


def _count_or(value, missing="not said by the bus") -> str:
    return format_count(value) if isinstance(value, int) else missing


def _flush_claim(f: dict) -> str:
    """What the bus claimed (schema 2: claimed_reached; schema 1: reached)."""
    reached = f.get("claimed_reached", f.get("reached"))
    if f.get("timed_out"):
        return "timed out"
    return "claimed reached" if reached else "not reached"


def _flush_evidence(f: dict) -> str:
    def total(key):
        rows = f.get(key)
        return sum(sum(row) for row in rows) if isinstance(rows, list) else None

    parts = []
    landed, received = total("landed_before"), total("received_after")
    dropped = [v for v in (total("evicted_after"), total("rejected_after")) if v is not None]
    if landed is not None:
        since = [f"landed before the call {format_count(landed)}"]
        if received is not None:
            since.append(f"received by the {f.get('witness') or 'witness'} at return "
                         f"{format_count(received)}")
        if dropped:
            since.append(f"dropped by the bus at return {format_count(sum(dropped))}")
        parts.append("since the start: " + ", ".join(since))
    if f.get("witness_shortfall") is not None:
        parts.append(f"witness shortfall {format_count(f['witness_shortfall'])}")
    # the bus's own positions: schema 2 keeps them apart as a second opinion
    positions = f.get("positions") if "positions" in f else f
    if positions:
        unsettled = sum(s.get("unsettled", 0) for s in positions.get("shards", []))
        if "in_flight_at_call" in positions:
            parts.append(f"bus positions: in flight at call "
                         f"{format_count(positions['in_flight_at_call'])}, unsettled at return "
                         f"{format_count(unsettled)}")
    elif "positions" in f:
        parts.append("no bus positions (the target has none)")
    return "; ".join(parts)


def _shutdown_evidence(sd: dict) -> str:
    parts = [f"stranded {_count_or(sd.get('stranded_events'))}"]
    if "flag_set" in sd:                     # schema 1
        parts.append(f"flag set {str(sd.get('flag_set')).lower()}")
    abandoned = sd.get("abandoned_producers")
    if abandoned:
        parts.append(f"abandoned producers {', '.join(str(p) for p in abandoned)}")
    parts.append(f"left in rings {_count_or(sd.get('residue'))}")
    return "; ".join(parts)


def _scenario_section(records, labels) -> str:
    out = ["<h2>Scenario as run</h2>"]
    seen = {}
    for rec, label in zip(records, labels):
        scenario = dict(rec.get("scenario") or {})
        if isinstance(scenario.get("description"), str):     # one paragraph, not a quoted block
            scenario["description"] = " ".join(scenario["description"].split())
        text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True, width=100)
        if text in seen:
            out.append(f'<p class="muted">{escape(label)}: same as {escape(seen[text])}.</p>')
            continue
        seen[text] = label
        out.append(f"<h3>{escape(label)} <span class=\"muted\">({escape(rec.get('source', ''))})</span></h3>"
                   f"<pre>{escape(text)}</pre>")
    return "".join(out)


def _environment_section(records, labels) -> str:
    keys = list(dict.fromkeys(k for rec in records for k in (rec.get("environment") or {})))
    rows = []
    for k in keys:
        values = [str((rec.get("environment") or {}).get(k, "–")) for rec in records]
        differs = len(set(values)) > 1
        rows.append([escape(k)] + [f'<span class="{"warn" if differs else ""}">{escape(v)}</span>'
                                   for v in values])
    more = [["started at"] + [escape(str(r.get("started_at", ""))) for r in records],
            ["target"] + [escape(str(r.get("target", ""))) for r in records],
            ["record schema"] + [escape(str(r.get("schema_version", ""))) for r in records]]
    header = ["", *labels] if len(records) > 1 else ["", "value"]
    return "<h2>Environment</h2>" + _table(header, rows + more)


def _comparison_section(comparison: dict | None) -> str:
    """A compare's verdicts (``ComparisonResult.to_dict()``): medians with their
    intervals, and each variant against the first."""
    if not comparison:
        return ""
    metric = comparison.get("metric", "")
    fmt = format_rate if metric in ("throughput", "ingest_rate") else (
        format_duration if metric.startswith(("latency", "cpu_")) else (lambda v: f"{v:,.4g}"))

    def show(v):
        return fmt(v) if isinstance(v, (int, float)) else "–"

    rows = []
    for v in comparison.get("variants", []):
        summary = v.get("summary") or {}
        low, high = (v.get("median_ci") or [None, None])[:2]
        rows.append([escape(v.get("label", "")), show(summary.get("median")),
                     f"{show(low)} – {show(high)}", str(len(v.get("samples", [])))])
    verdicts, described = [], []
    comparisons = comparison.get("comparisons", [])
    # since issue 12 the primary estimate is paired (median of per-round ratios,
    # sign-test interval) and carries its resolution; older comparisons hold the
    # ratio of medians with its bootstrap interval
    paired = any(c.get("paired") for c in comparisons)
    for c in comparisons:
        ratio, low, high = c.get("ratio"), c.get("ci_low"), c.get("ci_high")
        resolution = c.get("resolution")
        verdicts.append([escape(f"{c.get('variant')} vs {c.get('baseline')}"),
                         f"{ratio:.3f}" if isinstance(ratio, (int, float)) else "–",
                         (f"{low:.3f} – {high:.3f}" if isinstance(low, (int, float))
                          and isinstance(high, (int, float)) else "–"),
                         (f"±{resolution:.1%}" if isinstance(resolution, (int, float))
                          else "–"),
                         f"<b>{escape(str(c.get('verdict', '')))}</b>"])
        if c.get("description"):
            line = f"{c.get('variant')} vs {c.get('baseline')}: {c['description']}"
            described.append(f"<p>{escape(line)}</p>")
    warnings = "".join(f'<p class="warn">warning: {escape(w)}</p>' for w in comparison.get("warnings", []))
    level = comparison.get("confidence", 0.95)
    ratio_head, interval_head = (("paired ratio (median of per-round ratios)",
                                  f"{level:.0%} interval (sign test)") if paired else
                                 ("ratio of medians", f"{level:.0%} bootstrap interval"))
    return (f"<h2>Comparison of {escape(metric)}</h2>"
            + _table(["variant", "median", f"{level:.0%} interval of the median", "runs"], rows,
                     num_cols=(1, 2, 3))
            + _table(["", ratio_head, interval_head, "resolution", "verdict"], verdicts,
                     num_cols=(1, 2, 3))
            + "".join(described)
            + warnings
            + '<p class="muted">The charts below overlay the last measured run of each variant.</p>')


def render(records: list[dict], labels: list[str] | None = None,
           comparison: dict | None = None, title: str | None = None) -> str:
    """The HTML page for ``records`` (at least one)."""
    if not records:
        raise ValueError("render needs at least one record")
    labels = labels or [record_label(r, i) for i, r in enumerate(records)]
    if len(records) == 1:
        labels = [labels[0]]
    names = list(dict.fromkeys(r["scenario_name"] for r in records))
    title = title or ("busbench: " + ", ".join(names))
    head = (f"<h1>{escape(title)}</h1>"
            f'<p class="muted">{len(records)} run record{"s" if len(records) > 1 else ""}; '
            "every number and chart below is read from the record(s).</p>")
    if len(names) > 1:
        head += ('<p class="warn">These records are of different scenarios: their series are '
                 "overlaid on one time axis all the same.</p>")
    errors = "".join(f'<p class="bad">{escape(label)}: {escape(str(r["error"]))}</p>'
                     for r, label in zip(records, labels) if r.get("error"))
    body = (head + _summary(records, labels) + errors + _comparison_section(comparison)
            + _throughput_section(records, labels) + _ring_section(records, labels)
            + _latency_section(records, labels) + _checks_section(records, labels)
            + _flush_shutdown_section(records, labels) + _scenario_section(records, labels)
            + _environment_section(records, labels))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            "</body></html>\n")
