"""``busbench compare`` (variants of a scenario, interleaved) and ``compare-records``
(run records against a baseline).
"""
from __future__ import annotations

import json
import os
import sys

import click

from ..common import names as N
from ..common.names import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .completion import scenario_files
from .shared import (UsageProblem, err, isolation_options, prepare_lines, session,
                     sigterm_as_interrupt, stdout_console)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=scenario_files)
@click.option("--vary", "vary", multiple=True, required=True, metavar="KEY=V1,V2",
              help="A field and the values to compare (repeatable: the product is run).")
@click.option("--repeat", default=7, show_default=True, type=click.IntRange(2, 1000),
              help="Measured runs of each variant (after one warm-up run each).")
@click.option("--metric", default=None,
              help="The metric compared (any threshold metric, e.g. latency.p99, or "
                   "cpu_per_event: the bus threads' CPU time per event, quieter on a shared machine). "
                   "Default: throughput; ingest_rate on net-mesh and kafka, where busbench counts no dispatch.")
@click.option("--precision", "precision_text", default=None, metavar="PERCENT",
              help="Add rounds until the interval is this narrow (±, e.g. 5%), or --max-time is spent.")
@click.option("--max-time", default="120s", show_default=True,
              help="With --precision: the time budget of the whole comparison.")
@click.option("--warmup", type=click.Choice(["once", "settle"]), default="once", show_default=True,
              help="One warm-up round, or warm-up rounds until the rate settles (within 5%, at most 6).")
@click.option("--drop-spoiled", is_flag=True,
              help="Drop rounds a placement change spoiled (ratio over 5 robust SDs from the "
                   "median, at most 10% of rounds, 10 rounds or more); always reported.")
@click.option("--pin", is_flag=True, help="Pin producer and worker threads to CPUs where allowed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the comparison as Markdown.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a plot (needs busbench[plot]).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write an HTML report: the verdicts, and the last run of each variant overlaid.")
@isolation_options
def compare(file, vary, repeat, metric, precision_text, max_time, warmup, drop_spoiled, pin,
            overrides, json_path, markdown, plot, html_path, isolate, memory_limit):
    """Run variants of a scenario interleaved and compare a metric: the median of
    per-round ratios with a distribution-free interval, and the smallest change
    the comparison could see (e.g. --vary bus.counters=padded,packed)."""
    from ..reports import compare as compare_report
    from ..verdicts import compare as cmp
    from ..reports import check_writable, write_atomic
    from ..evidence.result import environment
    from ..run.supervisor import Job
    from ..scenario import ScenarioError, load_scenario
    from ..scenario.thresholds import METRICS

    metric_given = metric is not None
    metric = metric or "throughput"
    if metric not in METRICS:
        from difflib import get_close_matches
        near = get_close_matches(metric, list(METRICS), n=1)
        raise UsageProblem(f"--metric: unknown metric {metric!r}"
                           + (f"; did you mean {near[0]!r}?" if near else ""))
    try:
        variants = cmp.variants(list(vary))
    except cmp.CompareUsageError as e:
        raise UsageProblem(f"--vary: {e}") from None
    plan = _precision_plan(precision_text, max_time) if precision_text else None
    for path in [p for p in (json_path, markdown, plot, html_path) if p]:
        try:
            check_writable(path)
        except OSError as e:
            raise UsageProblem(f"cannot write {path}: {e}") from None
    if plot:
        try:
            compare_report.ensure_plot_available()
        except compare_report.PlotUnavailable as e:
            raise UsageProblem(str(e)) from None
    loaded = {}
    problems = []
    for v in variants:                      # validate every variant before running any
        try:
            loaded[v.label] = load_scenario(file, overrides=list(overrides) + list(v.overrides))
        except ScenarioError as e:
            problems.append(e.format())
        except OSError as e:
            problems.append(f"{file}: cannot read: {e.strerror or e}")
    from .releases import releases_missing
    problems += releases_missing(file, loaded.values())
    if not metric_given and loaded and all(sc.target_name in ("net-mesh", "kafka") for sc in loaded.values()):
        metric = "ingest_rate"        # no dispatched count at the bus: throughput is not measured
    if problems:
        for p in dict.fromkeys(problems):
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)

    console = stdout_console()

    last_records = {}         # the last run of each variant, for --html
    say = prepare_lines("plain", console)     # the first run's compile notice
    # one warm supervised child for every round: paired rounds stay in one process
    runs = session(isolate, memory_limit, say)

    def run_once(variant):
        job = Job(file, tuple(overrides) + tuple(variant.overrides), pin=pin)
        result = runs.run(loaded[variant.label], job)
        if html_path:
            last_records[variant.label] = result.to_dict()
        if result.status in N.RUN_INCOMPLETE:
            if result.status == N.RUN_INTERRUPTED:
                raise KeyboardInterrupt
            if result.status in (N.RUN_CRASHED, N.RUN_TIMED_OUT):
                console.print(f"round lost: {variant.label}: {result.error}", highlight=False,
                              markup=False)
                raise cmp.LostRound(result.error or result.status)    # that round, not the rest
            raise RuntimeError(f"{variant.label}: {result.error}")
        value = result.metrics.get(metric)
        if value is None:
            raise RuntimeError(f"{variant.label}: metric {metric} was not measured")
        return float(value)

    def on_progress(p):
        tag = "warm-up" if p.entry.is_warmup else f"round {p.entry.round}"
        done = f"[{p.done}/{p.total}]" if p.total else f"[{p.done}]"
        console.print(f"{done} {tag}: {p.variant.label}: {metric} = {p.value:,.4g}",
                      highlight=False)

    sc = next(iter(loaded.values()))
    busy = sc.load.producers + sc.bus.workers
    with sigterm_as_interrupt(), runs:
        try:
            result = cmp.run_comparison(variants, repeat, run_once, metric, on_progress,
                                        busy_threads=busy,
                                        cores=os.cpu_count(), environment=environment(sc.to_dict()),
                                        plan=plan, warmup=warmup, drop_spoiled=drop_spoiled,
                                        metric_description=METRICS[metric].description,
                                        noise={"pin": pin})
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except RuntimeError as e:
            err.print(f"[bold red]error:[/] {e}")
            sys.exit(EXIT_ERROR)
    console.print(compare_report.render_table(result))     # its caption carries the warnings
    for line in compare_report.describe_lines(result):
        console.print(line, highlight=False)
    if json_path:
        write_atomic(json_path, json.dumps(result.to_dict(), indent=1) + "\n")
    if markdown:
        write_atomic(markdown, compare_report.render_markdown(result))
    if plot:
        compare_report.render_plot(result, plot)
        console.print(f"plot: {plot}")
    if html_path:
        from .first_hour import write_html_report
        labels = [v.label for v in variants if v.label in last_records]
        console.print(f"report: {write_html_report(html_path, [last_records[k] for k in labels], labels, result.to_dict())}")
    if result.lost_rounds:
        err.print(f"{len(result.lost_rounds)} round(s) lost to a run that crashed or hung "
                  f"(listed above); exit 3", markup=False, highlight=False)
        sys.exit(EXIT_ERROR)


def _precision_plan(precision_text, max_time):
    from ..verdicts.precision import SequentialPlan
    from ..common.units import UnitError, parse_duration, parse_percent
    try:
        asked = parse_percent(precision_text)
    except ValueError as e:
        raise UsageProblem(f"--precision: {e}") from None
    if not 0 < asked < 1:
        raise UsageProblem(f"--precision: give a half-width between 0% and 100%, e.g. 5%; got {precision_text}")
    try:
        budget_s = parse_duration(max_time) / 1e9
    except (UnitError, ValueError) as e:
        raise UsageProblem(f"--max-time: {e}") from None
    return SequentialPlan(precision=asked, max_time_s=budget_s)


@click.command(name="compare-records")
@click.option("--baseline", "baseline", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False), help="Reference run record(s).")
@click.option("--candidate", "candidate", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False), help="Run record(s) to compare.")
@click.option("--metric", default="throughput", show_default=True,
              help="throughput, ingest_rate or cpu_per_event (and its producer/worker parts).")
@click.option("--allow-incomparable", is_flag=True,
              help="Compare even when CPU, cores or scenario differ (warned).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison as JSON.")
def compare_records(baseline, candidate, metric, allow_incomparable, json_path):
    """Compare run records (each may hold several runs, see run --repeat) run against
    run, after checking they are comparable (same CPU, cores, scenario)."""
    from ..verdicts import gating
    from ..reports import write_atomic
    try:
        gating.check_metric(metric)
        reference = gating.load_records(baseline, "--baseline")
        others = gating.load_records(candidate, "--candidate")
        found = None
        for path, environment in zip(others.paths, others.environments):
            found = gating.guard(reference, environment, allow_incomparable,
                                 names=("baseline", f"candidate {path}"))
    except gating.BaselineError as e:
        raise UsageProblem(str(e)) from None
    except gating.IncomparableError as e:
        raise UsageProblem(str(e)) from None
    out = gating.compare_records(reference, others, metric)
    out["comparability"] = found.to_dict() if found else None
    console = stdout_console()
    console.print(f"{metric}: {out['description']}", highlight=False)
    console.print(f"({len(out['reference_runs'])} baseline run(s), {len(out['candidate_runs'])} "
                  f"candidate run(s); {out['estimate']['method']})", highlight=False)
    for w in (found.refusals + found.warnings) if found else ():
        console.print(f"[yellow]warning:[/] {w}")
    if json_path:
        write_atomic(json_path, json.dumps(out, indent=1) + "\n")


COMMANDS = (compare, compare_records,)
