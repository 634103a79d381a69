"""busbench's command line: run, validate, list, compare, lab.

Exit codes (PRODUCT.md): 0 every check passed; 1 a check or threshold failed;
2 usage or scenario error; 3 the run could not complete; 130 interrupted.
A user's mistake gets a message naming what to fix, never a traceback.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from . import __version__

from .names import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

# soft_wrap: an error line (FILE:LINE: key: ...) is never split, whatever the width.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    # Not a terminal (a CI log, a pipe): rich would assume 80 columns and cut
    # labels and evidence short; a log can afford long lines.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class UsageProblem(click.ClickException):
    exit_code = EXIT_USAGE

    def show(self, file=None):
        err.print(f"[bold red]error:[/] {self.message}", markup=True, highlight=False)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a CI runner cancelling the job) is handled like Ctrl-C: the
    run stops, joins its threads and still writes its record."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _load_all(files, overrides=(), seed=None):
    """Validate every scenario before anything runs; exit 2 on the first bad one(s)."""
    from .scenario import ScenarioError, load_scenario
    scenarios, problems = [], []
    for f in files:
        try:
            scenarios.append((f, load_scenario(f, overrides=overrides, seed=seed)))
        except ScenarioError as e:
            problems.append(e.format())
        except OSError as e:
            problems.append(f"{f}: cannot read: {e.strerror or e}")
    if problems:
        for p in problems:
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)
    return scenarios


def _parse_percent(text: str) -> float:
    from .units import parse_percent
    try:
        return parse_percent(text)
    except ValueError as e:
        raise UsageProblem(f"--max-regression: {e}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="busbench")
def main():
    """Load-test, benchmark and check sharded in-process event buses.

    \b
    busbench run scenarios/quickstart.yaml      run a scenario, check its invariants
    busbench compare S.yaml --vary bus.counters=padded,packed
    busbench validate scenarios/*.yaml          check scenario files without running
    busbench check results/run.json             re-evaluate a record's checks, no run
    busbench list scenarios/                    what each shipped scenario does
    busbench lab false-sharing                  the cache-line microbenchmark

    Exit codes: 0 all checks passed, 1 a check or threshold failed, 2 usage or
    scenario error, 3 the run could not complete, 130 interrupted.
    """


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a scenario field by dotted path; VALUE is read as YAML "
                   "(--set bus.shards=8 --set bus.mutations=[flush_single_window]).")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="Where run records (JSON) are written.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write JUnit XML (one test case per check).")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write a Markdown summary.")
@click.option("--live/--no-live", default=None,
              help="Live dashboard (default: on when stdout is a terminal).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; the summary still prints.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False),
              help="A previous run record: fail when throughput regressed (see --max-regression).")
@click.option("--max-regression", default="10%", show_default=True,
              help="With --baseline: the largest throughput loss tolerated.")
def run(files, overrides, seed, out_dir, junit, markdown, live, quiet, baseline, max_regression):
    """Run scenario FILES in order, evaluate their checks, write their records.

    Every file is validated before the first one runs. Each run writes
    OUT/<scenario>-<timestamp>.json (also when interrupted, marked so).
    """
    from .dashboard import default_mode
    from .reports import check_writable

    scenarios = _load_all(files, overrides, seed)
    max_reg = _parse_percent(max_regression)
    base_samples = _baseline_samples(baseline) if baseline else None
    for path in [p for p in (junit, markdown) if p]:
        try:
            check_writable(path)
        except OSError as e:
            raise UsageProblem(f"cannot write {path}: {e}") from None
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        check_writable(Path(out_dir) / "probe.json")
    except OSError as e:
        raise UsageProblem(f"--out {out_dir}: {e}") from None

    console = _out()
    mode = default_mode(sys.stdout.isatty(), quiet, live)
    results, exit_code = [], EXIT_OK
    with _sigterm_as_interrupt():
        try:
            exit_code = _run_all(scenarios, mode, console, out_dir, base_samples, max_reg, results)
        except KeyboardInterrupt:
            # Interrupted outside a run (e.g. while compiling): every run that
            # started has already written its record.
            err.print("interrupted")
            exit_code = EXIT_INTERRUPTED
    _write_reports(results, junit, markdown)
    sys.exit(exit_code)


def _run_all(scenarios, mode, console, out_dir, base_samples, max_reg, results) -> int:
    from .dashboard import make_progress
    from .reports import json_report, write_atomic
    from .reports import summary
    from .runner import Runner
    exit_code = EXIT_OK
    for source, scenario in scenarios:
        from .targets.errors import TargetError
        progress = make_progress(mode, console=console)
        say = (lambda m: None) if mode == "quiet" else (
            lambda m: err.print(m, markup=False, highlight=False))
        try:
            with progress:
                result = Runner(scenario, source, progress=progress, say=say).run()
        except TargetError as e:       # the user can fix it: no record, exit 2
            err.print(f"{source}: {e}", markup=False, highlight=False)
            exit_code = max(exit_code, e.exit_code)
            continue
        if base_samples is not None and result.status == "passed":
            _apply_gate(result, base_samples, max_reg)
        record = write_atomic(json_report.new_record_path(out_dir, result),
                              json_report.render(result))
        results.append(result)
        console.print(summary.render(result))
        if result.gate:
            console.print(f"regression gate: [bold]{result.gate['status']}[/] — {result.gate['message']}")
        console.print(f"record: {record}")
        exit_code = max(exit_code, result.exit_code) if result.exit_code != EXIT_INTERRUPTED else EXIT_INTERRUPTED
        if result.status == "interrupted":
            break
    return exit_code


def _write_reports(results, junit, markdown):
    from .reports import junit as junit_report
    from .reports import markdown as md_report
    from .reports import write_atomic
    if not results:
        return
    if junit:
        write_atomic(junit, junit_report.render(results))
    if markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
        text = md_report.render(results)
        if markdown:
            write_atomic(markdown, text)
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            try:
                with open(summary_path, "a", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:       # the run's verdict stands; say why the summary is missing
                err.print(f"warning: could not append to $GITHUB_STEP_SUMMARY ({summary_path}): "
                          f"{e.strerror or e}")


def _baseline_samples(path):
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        samples = record.get("throughput_samples")
    except (OSError, ValueError) as e:
        raise UsageProblem(f"--baseline {path}: not a busbench run record ({e})") from None
    if not isinstance(samples, list) or not samples:
        raise UsageProblem(f"--baseline {path}: the record has no throughput samples")
    return samples


def _apply_gate(result, base_samples, max_reg):
    from .stats import GATE_FAIL, regression_gate
    current = result.throughput_samples
    if len(current) < 2:
        result.gate = {"status": "inconclusive", "message": "the run was too short to sample "
                       "its throughput more than once"}
        return
    gate = regression_gate(base_samples, current, max_reg)
    result.gate = gate.to_dict()
    if gate.status == GATE_FAIL:
        result.status = "failed"


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for run.")
def validate(files, overrides):
    """Check scenario FILES without running them (exit 2 on the first error)."""
    scenarios = _load_all(files, overrides)
    for f, sc in scenarios:
        click.echo(f"ok  {f}  ({sc.name}: {len(sc.steps)} steps, {len(sc.checks)} checks)")


@main.command(name="check")
@click.argument("records", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check_cmd(records):
    """Re-evaluate the checks of run RECORDS from the records alone (nothing runs).

    Exit 0 when every check of every record comes out as declared, 1 when one
    does not, 2 when a record cannot be read or re-evaluated.
    """
    from rich.table import Table
    from rich.text import Text

    from .recheck import RecordError, recheck
    results, problems = [], []
    for path in records:
        try:
            results.append(recheck(path))
        except RecordError as e:
            problems.append(str(e))
    if problems:
        for p in problems:
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)
    console = _out()
    exit_code = EXIT_OK
    for r in results:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False,
                      title=f"{r.scenario_name}  ({r.path})", title_justify="left")
        table.add_column("")
        table.add_column("check")
        table.add_column("verdict")
        table.add_column("evidence", overflow="fold")
        for v in r.verdicts:
            verdict = v.outcome_words
            if v.expect == "fail" and v.outcome in ("passed", "failed"):
                verdict += " (expected to fail)"
            table.add_row(Text("✓", "green") if v.ok else Text("✗", "bold red"),
                          v.name if v.at == "end" else f"{v.name} ({v.at})", verdict, v.evidence)
        console.print(table)
        for name, before, now in r.disagreements:
            console.print(f"[yellow]note:[/] {name}: the record says {before or 'nothing'}, "
                          f"re-evaluated {now}")
        if not r.ok:
            exit_code = EXIT_FAILED
    sys.exit(exit_code)


@main.command(name="list")
@click.argument("directory", default="scenarios", type=click.Path(file_okay=False))
def list_cmd(directory):
    """Name and description of each scenario under DIRECTORY (default: scenarios)."""
    from rich.table import Table

    from .scenario import list_scenarios
    if not Path(directory).is_dir():
        raise UsageProblem(f"{directory} is not a directory")
    entries = list_scenarios(directory)
    console = _out()
    if not console.is_terminal:
        # A CI log: whole names and paths, one scenario per paragraph, no table
        # (rich would assume 80 columns and cut names short).
        for e in entries:
            click.echo(f"{e.name or '(invalid)'}  {e.path}")
            click.echo(f"    {' '.join(str(e.description).split())}")
    else:
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("scenario", no_wrap=True)
        table.add_column("file", no_wrap=True)
        table.add_column("description", overflow="fold")
        for e in entries:
            desc = " ".join(str(e.description).split())
            table.add_row(e.name or "[red](invalid)[/]", str(e.path),
                          desc if e.name else f"[red]{desc}[/]")
        console.print(table)
    if not entries:
        err.print(f"no scenario files under {directory}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--vary", "vary", multiple=True, required=True, metavar="KEY=V1,V2",
              help="A field and the values to compare (repeatable: the product is run).")
@click.option("--repeat", default=7, show_default=True, type=click.IntRange(2, 1000),
              help="Measured runs of each variant (after one warm-up run each).")
@click.option("--metric", default="throughput", show_default=True,
              help="The metric compared (any threshold metric, e.g. latency.p99).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the comparison as Markdown.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a plot (needs busbench[plot]).")
def compare(file, vary, repeat, metric, overrides, json_path, markdown, plot):
    """Run variants of a scenario interleaved and compare a metric with
    bootstrap confidence intervals (e.g. --vary bus.counters=padded,packed)."""
    from . import compare as cmp
    from .reports import check_writable, write_atomic
    from .result import environment
    from .runner import Runner
    from .scenario import ScenarioError, load_scenario
    from .thresholds import METRICS

    if metric not in METRICS:
        from difflib import get_close_matches
        near = get_close_matches(metric, list(METRICS), n=1)
        raise UsageProblem(f"--metric: unknown metric {metric!r}"
                           + (f"; did you mean {near[0]!r}?" if near else ""))
    try:
        variants = cmp.variants(list(vary))
    except cmp.CompareUsageError as e:
        raise UsageProblem(f"--vary: {e}") from None
    for path in [p for p in (json_path, markdown, plot) if p]:
        try:
            check_writable(path)
        except OSError as e:
            raise UsageProblem(f"cannot write {path}: {e}") from None
    if plot:
        try:
            cmp.ensure_plot_available()
        except cmp.PlotUnavailable as e:
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
    if problems:
        for p in dict.fromkeys(problems):
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)

    console = _out()
    higher_is_better = metric in ("throughput", "ingest_rate", "mean_batch_size")

    def run_once(variant):
        result = Runner(loaded[variant.label], file).run()
        if result.status in ("error", "interrupted"):
            if result.status == "interrupted":
                raise KeyboardInterrupt
            raise RuntimeError(f"{variant.label}: {result.error}")
        value = result.metrics.get(metric)
        if value is None:
            raise RuntimeError(f"{variant.label}: metric {metric} was not measured")
        return float(value)

    def on_progress(p):
        tag = "warm-up" if p.entry.is_warmup else f"round {p.entry.round}"
        console.print(f"[{p.done}/{p.total}] {tag}: {p.variant.label}: {metric} = {p.value:,.4g}",
                      highlight=False)

    sc = next(iter(loaded.values()))
    busy = sc.load.producers + sc.bus.workers
    with _sigterm_as_interrupt():
        try:
            result = cmp.run_comparison(variants, repeat, run_once, metric, on_progress,
                                        higher_is_better=higher_is_better, busy_threads=busy,
                                        cores=os.cpu_count(), environment=environment())
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except RuntimeError as e:
            err.print(f"[bold red]error:[/] {e}")
            sys.exit(EXIT_ERROR)
    console.print(cmp.render_table(result))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if json_path:
        write_atomic(json_path, json.dumps(result.to_dict(), indent=1) + "\n")
    if markdown:
        write_atomic(markdown, cmp.render_markdown(result))
    if plot:
        cmp.render_plot(result, plot)
        console.print(f"plot: {plot}")


@main.group()
def lab():
    """Microbenchmarks that explain what the bus measures."""


@lab.command(name="false-sharing")
@click.option("--strides", default="8,64,128,256", show_default=True,
              help="Distances between the threads' counters, in bytes.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 256))
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--op", type=click.Choice(["store", "add"]), default="store", show_default=True,
              help="store: a plain (volatile) increment, as in JMH's sample and the striped "
                   "layout; add: an atomic fetch_add, as the bus's shared counters.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results as JSON.")
def false_sharing(strides, threads, repeats, op, json_path):
    """Threads increment their own counters, STRIDE bytes apart: how much
    does sharing a cache line cost? (JMH's FalseSharing sample, in Numba.)"""
    from .lab import LabUsageError, render_lab_table, run_false_sharing
    from .reports import write_atomic
    try:
        values = [int(s) for s in strides.split(",") if s.strip()]
    except ValueError:
        raise UsageProblem(f"--strides: expected byte counts like 8,64,128,256, got {strides!r}") from None
    try:
        with _sigterm_as_interrupt():
            result = run_false_sharing(values, threads=threads, repeats=repeats, op=op)
    except LabUsageError as e:
        raise UsageProblem(str(e)) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    console = _out()
    console.print(render_lab_table(result))     # its caption carries the interpretation and warnings
    if json_path:
        write_atomic(json_path, json.dumps(result.to_dict(), indent=1) + "\n")


if __name__ == "__main__":
    main()
