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
from rich.markup import escape as rich_escape

from .. import __version__
from .completion import scenario_files, set_keys
from ..common import names as N

from ..common.names import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

# soft_wrap: an error line (FILE:LINE: key: ...) is never split, whatever the width.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    # Not a terminal (a CI log, a pipe): rich would assume 80 columns and cut
    # labels and evidence short; a log can afford long lines.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class UsageProblem(click.ClickException):
    exit_code = EXIT_USAGE

    def show(self, file=None):
        # escaped: a message such as "pip install 'busbench[plot]'" is text, not markup
        err.print(f"[bold red]error:[/] {rich_escape(self.message)}", markup=True, highlight=False)


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
    from ..scenario import ScenarioError, load_scenario
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
    for f, sc in scenarios:
        if sc.checks_nothing:
            err.print(f"{f}: warning: checks: [] and no check step: this scenario checks nothing; "
                      f"its exit code 0 says only that it ran", markup=False, highlight=False)
    return scenarios


def _parse_timeout(text):
    from ..common.units import UnitError, parse_duration
    if text is None:
        return None
    try:
        return parse_duration(text) / 1e9
    except (UnitError, ValueError) as e:
        raise UsageProblem(f"--timeout: {e}") from None


def _parse_memory(text):
    from ..common.units import UnitError, parse_memory
    if text is None:
        return None
    try:
        return parse_memory(text)
    except UnitError as e:
        raise UsageProblem(f"--memory-limit: {e}") from None


def _parse_percent(text: str) -> float:
    from ..common.units import parse_percent
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
    busbench report results/quickstart-*.json   a picture of a run (HTML)
    busbench init my_bus                        a commented starter scenario

    Exit codes: 0 all checks passed, 1 a check or threshold failed, 2 usage or
    scenario error, 3 the run could not complete, 130 interrupted.
    """


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=scenario_files)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", shell_complete=set_keys,
              help="Override a scenario field by dotted path; VALUE is read as YAML "
                   "(--set bus.shards=8 --set bus.mutations=[flush_single_window]).")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="Where run records (JSON) are written.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write JUnit XML (one test case per check).")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write a Markdown summary.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write an HTML report of the run(s) (see `busbench report`).")
@click.option("--live/--no-live", default=None,
              help="Live dashboard (default: on when stdout is a terminal).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; the summary still prints.")
@click.option("--baseline", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Previous run record(s) of the same scenario (repeatable; each may hold "
                   "several runs, see --repeat): fail when the metric regressed beyond "
                   "--max-regression, judged over whole runs.")
@click.option("--max-regression", default="10%", show_default=True,
              help="With --baseline: the largest loss tolerated.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Run each scenario N times, each run after the first in a process of its "
                   "own (whole processes differ more than runs inside one); the record keeps "
                   "every run's figures. The gate needs 2 or more runs on each side.")
@click.option("--metric", "gate_metric", default="throughput", show_default=True,
              help="With --baseline: the metric gated (throughput, or cpu_per_event: the bus "
                   "threads' CPU time per event, quieter on a shared machine).")
@click.option("--pin", is_flag=True, help="Pin producer and worker threads to CPUs where allowed.")
@click.option("--allow-incomparable", is_flag=True,
              help="With --baseline: compare even when CPU, cores or scenario differ (warned).")
@click.option("--timeout", "timeout", default=None, metavar="DURATION",
              help="Deadline of each run (e.g. 10m); past it the run stops, is recorded as "
                   "timed_out and exits 3. Default: the scenario's timeout, else twice its "
                   "planned time plus a minute.")
@click.option("--memory-limit", "memory_limit", default=None, metavar="SIZE",
              help="Run under this address-space/data limit (e.g. 2G; wins over the "
                   "scenario's limits.memory); past it the run is recorded crashed, out of "
                   "memory, and exits 3.")
@click.option("--isolate/--no-isolate", default=True, show_default=True,
              help="Run each scenario in a supervised child process, so that a bus that "
                   "crashes, hangs holding the GIL or eats memory ends as a recorded verdict. "
                   "--no-isolate runs in this process (for gdb, perf, py-spy): a crash then "
                   "takes busbench with it.")
def run(files, overrides, seed, out_dir, junit, markdown, html_path, live, quiet, baseline,
        max_regression, repeat, gate_metric, pin, allow_incomparable, timeout, memory_limit,
        isolate):
    """Run scenario FILES in order, evaluate their checks, write their records.

    Every file is validated before the first one runs. Each run writes
    OUT/<scenario>-<timestamp>.json (also when interrupted, marked so).
    """
    from ..reports.dashboard import default_mode
    from ..reports import check_writable

    timeout_s = _parse_timeout(timeout)
    memory = _parse_memory(memory_limit)
    if memory is not None and not isolate:
        raise UsageProblem("--memory-limit needs a supervised child; drop --no-isolate")
    from ..run.supervisor import Session
    session = Session(isolate=isolate, memory_limit=memory)
    session.prestart()          # the child imports while this process validates
    try:
        scenarios = _load_all(files, overrides, seed)
        max_reg = _parse_percent(max_regression)
        gates = _prepare_gates(scenarios, baseline, gate_metric, allow_incomparable) if baseline else None
        for path in [p for p in (junit, markdown, html_path) if p]:
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
                exit_code = _run_all(scenarios, mode, console, out_dir, gates, max_reg, results,
                                     repeat=repeat, pin=pin, metric=gate_metric,
                                     overrides=overrides, seed=seed,
                                     timeout_s=timeout_s, timeout=timeout, isolate=isolate,
                                     memory_text=memory_limit, session=session)
            except KeyboardInterrupt:
                # Interrupted outside a run (e.g. while compiling): every run that
                # started has already written its record.
                err.print("interrupted")
                exit_code = EXIT_INTERRUPTED
        _write_reports(results, junit, markdown)
        if html_path and results:
            from .extra import write_html_report
            console.print(f"report: {write_html_report(html_path, [r.to_dict() for r in results])}")
    finally:
        session.close()
    sys.exit(exit_code)


def _say(mode, console):
    """Where a target's prepare lines go (e.g. "compiling Numba kernels"): the
    progress output (above the live dashboard), or stderr under --quiet, so a
    long first run is never silent."""
    target = err if mode == "quiet" else console
    return lambda line: target.print(line, markup=False, highlight=False)


def _run_all(scenarios, mode, console, out_dir, gates, max_reg, results, *, repeat=1, pin=False,
             metric="throughput", overrides=(), seed=None, timeout_s=None,
             timeout=None, isolate=True, memory_text=None, session=None) -> int:
    from ..verdicts import gating
    from ..reports.dashboard import make_progress
    from ..reports import json_report, write_atomic
    from ..reports import summary
    say = _say(mode, console)
    if session is not None:
        session.say = say
    exit_code = EXIT_OK
    for source, scenario in scenarios:
        from ..targets.errors import TargetError

        def run_once(scenario=scenario, source=source):
            progress = make_progress(mode, console=console)
            with progress:
                if not isolate:
                    from ..run.runner import Runner      # numba: imported where the run is
                    return Runner(scenario, source, progress=progress, say=say,
                                  pin_threads=pin, timeout_s=timeout_s).run()
                return supervised(session, scenario, source, overrides, seed, pin, timeout_s,
                                  progress)

        def run_isolated(source=source):
            extra = ["--memory-limit", memory_text] if memory_text else []
            return gating.run_isolated(source, overrides, seed, pin, Path(out_dir) / "repeats",
                                       timeout=timeout, extra_args=extra)
        try:
            result = gating.run_repeated(run_once, repeat, run_isolated)
        except TargetError as e:       # the user can fix it (a library, a module): no record, exit 2
            err.print(f"{source}: {e}", markup=False, highlight=False)
            exit_code = max(exit_code, e.exit_code)
            continue
        if gates is not None and result.status == N.RUN_PASSED:
            records, found = gates[scenario.name]
            gating.apply_gate(result, records, max_reg, metric, found)
        record = write_atomic(json_report.new_record_path(out_dir, result),
                              json_report.render(result))
        results.append(result)
        console.print(summary.render(result))
        runs_line = gating.describe_runs(result)
        if runs_line:
            console.print(runs_line, highlight=False)
        if result.gate:
            console.print(f"regression gate: [bold]{result.gate['status']}[/] — {result.gate['message']}")
            for warning in result.gate.get("warnings", []):
                console.print(f"[yellow]warning:[/] {warning}")
        console.print(f"record: {record}")
        exit_code = max(exit_code, result.exit_code) if result.exit_code != EXIT_INTERRUPTED else EXIT_INTERRUPTED
        if result.status == "interrupted":
            break
    return exit_code


def supervised(session, scenario, source, overrides, seed, pin, timeout_s, progress):
    """One run in a supervised child of its own (busbench/run/supervisor.py)."""
    from ..run.supervisor import Job
    return session.run(scenario, Job(source, tuple(overrides), seed, timeout_s, pin), progress,
                       fresh=True)


def isolation_options(command):
    """--memory-limit and --isolate/--no-isolate, as for run."""
    command = click.option(
        "--isolate/--no-isolate", default=True, show_default=True,
        help="Run in a supervised child process (one, kept warm, for the whole command), so "
             "that a bus that crashes, hangs holding the GIL or eats memory costs that run, "
             "not the command; --no-isolate runs in this process (gdb, perf, py-spy).")(command)
    return click.option(
        "--memory-limit", "memory_limit", default=None, metavar="SIZE",
        help="Run under this data-size limit (e.g. 2G); past it the run is recorded "
             "crashed, out of memory.")(command)


def _write_reports(results, junit, markdown):
    from ..reports import junit as junit_report
    from ..reports import markdown as md_report
    from ..reports import write_atomic
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


def _prepare_gates(scenarios, baseline_paths, metric, allow_incomparable):
    """Per scenario: its baseline records (matched by scenario name) and their comparability,
    checked before anything runs (a refusal is exit 2 in a second, not after the run)."""
    from ..verdicts import gating
    from ..evidence.environment import describe
    try:
        gating.check_metric(metric)
        records = gating.load_records(baseline_paths)
    except gating.BaselineError as e:
        raise UsageProblem(str(e)) from None
    gates = {}
    for _source, scenario in scenarios:
        mine = [i for i, r in enumerate(records.records) if r.get("scenario_name") == scenario.name]
        if not mine:
            raise UsageProblem(f"--baseline: no record of scenario {scenario.name!r} among "
                               f"{', '.join(baseline_paths)}")
        subset = gating.Records(paths=[records.paths[i] for i in mine],
                                environments=[records.environments[i] for i in mine],
                                records=[records.records[i] for i in mine])
        try:
            found = gating.guard(subset, describe(scenario.to_dict()), allow_incomparable)
        except gating.IncomparableError as e:
            raise UsageProblem(f"--baseline: {e}") from None
        gates[scenario.name] = (subset, found)
    return gates


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=scenario_files)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for run.",
              shell_complete=set_keys)
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

    from ..verdicts.recheck import RecordError, recheck
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
        if r.incomplete:
            console.print(f"[yellow]note:[/] the run did not complete (status {r.incomplete}): "
                          "the checks of steps it did not reach and its end checks were never "
                          "evaluated")
        if not r.ok:
            exit_code = EXIT_FAILED
    sys.exit(exit_code)


@main.command(name="list")
@click.argument("directory", default="scenarios", type=click.Path(file_okay=False))
def list_cmd(directory):
    """Name and description of each scenario under DIRECTORY (default: scenarios)."""
    from rich.table import Table

    from ..scenario import list_scenarios
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
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=scenario_files)
@click.option("--vary", "vary", multiple=True, required=True, metavar="KEY=V1,V2",
              help="A field and the values to compare (repeatable: the product is run).")
@click.option("--repeat", default=7, show_default=True, type=click.IntRange(2, 1000),
              help="Measured runs of each variant (after one warm-up run each).")
@click.option("--metric", default=None,
              help="The metric compared (any threshold metric, e.g. latency.p99, or "
                   "cpu_per_event: the bus threads' CPU time per event, quieter on a shared machine). "
                   "Default: throughput; ingest_rate on net-mesh, which exports no dispatched count.")
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
    from ..verdicts import compare as cmp
    from ..run.supervisor import Job
    from ..reports import check_writable, write_atomic
    from ..evidence.result import environment
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
    problems += _netmesh_releases_missing(file, loaded.values())
    if not metric_given and loaded and all(sc.target_name == "net-mesh" for sc in loaded.values()):
        metric = "ingest_rate"        # net-mesh exports no dispatched count: throughput is not measured
    if problems:
        for p in dict.fromkeys(problems):
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)

    console = _out()
    higher_is_better = metric in ("throughput", "ingest_rate", "mean_batch_size")

    last_records = {}         # the last run of each variant, for --html
    say = _say("plain", console)     # the first run's compile notice
    session = _session(isolate, memory_limit, say)

    def run_once(variant):
        job = Job(file, tuple(overrides) + tuple(variant.overrides), pin=pin)
        result = session.run(loaded[variant.label], job)
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
    with _sigterm_as_interrupt(), session:
        try:
            result = cmp.run_comparison(variants, repeat, run_once, metric, on_progress,
                                        higher_is_better=higher_is_better, busy_threads=busy,
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
    console.print(cmp.render_table(result))     # its caption carries the warnings
    for line in cmp.describe_lines(result):
        console.print(line, highlight=False)
    if json_path:
        write_atomic(json_path, json.dumps(result.to_dict(), indent=1) + "\n")
    if markdown:
        write_atomic(markdown, cmp.render_markdown(result))
    if plot:
        cmp.render_plot(result, plot)
        console.print(f"plot: {plot}")
    if html_path:
        from .extra import write_html_report
        labels = [v.label for v in variants if v.label in last_records]
        console.print(f"report: {write_html_report(html_path, [last_records[k] for k in labels], labels, result.to_dict())}")
    if result.lost_rounds:
        err.print(f"{len(result.lost_rounds)} round(s) lost to a run that crashed or hung "
                  f"(listed above); exit 3", markup=False, highlight=False)
        sys.exit(EXIT_ERROR)


def _session(isolate, memory_text, say):
    from ..run.supervisor import Session
    memory = _parse_memory(memory_text)
    if memory is not None and not isolate:
        raise UsageProblem("--memory-limit needs a supervised child; drop --no-isolate")
    return Session(isolate=isolate, memory_limit=memory, say=say)


def _netmesh_releases_missing(file, scenarios) -> list[str]:
    """One message per net-mesh release a scenario asks for that is neither installed
    nor cached (checked before any run: a miss is the user's to fix, exit 2)."""
    from ..targets.netmesh.releases import unavailable
    problems = []
    for sc in scenarios:
        if sc.target_name != "net-mesh" or sc.target.driver != "c-abi":
            continue
        why = unavailable(sc.target.version)
        if why:
            problems.append(f"{file}: target.net-mesh.version: {why}")
    return problems


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


@main.command(name="compare-records")
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
    console = _out()
    console.print(f"{metric}: {out['description']}", highlight=False)
    console.print(f"({len(out['reference_runs'])} baseline run(s), {len(out['candidate_runs'])} "
                  f"candidate run(s); {out['estimate']['method']})", highlight=False)
    for w in (found.refusals + found.warnings) if found else ():
        console.print(f"[yellow]warning:[/] {w}")
    if json_path:
        write_atomic(json_path, json.dumps(out, indent=1) + "\n")


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
    from ..run.lab import LabUsageError, render_lab_table, run_false_sharing
    from ..reports import write_atomic
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


@main.group()
def releases():
    """Releases of net-mesh in busbench's wheel cache (several can be loaded side by side)."""


@releases.command(name="fetch")
@click.argument("versions", nargs=-1, required=True)
def releases_fetch(versions):
    """Download net-mesh VERSION... with pip into the cache, check each wheel's own
    version and C symbols, and keep its extension library."""
    from ..targets.netmesh.releases import ReleaseError, cache_root, release
    for version in versions:
        try:
            rel = release(version)
        except ReleaseError as e:
            err.print(f"error: {e}", markup=False, highlight=False)
            sys.exit(e.exit_code)
        gaps = f"; lacks {', '.join(rel.missing)}" if rel.missing else ""
        _out().print(f"net-mesh {rel.version}: {rel.library}{gaps}", markup=False, highlight=False)
    _out().print(f"cache: {cache_root()}", markup=False, highlight=False)


@releases.command(name="list")
def releases_list():
    """The net-mesh releases in the cache."""
    from ..targets.netmesh.releases import cache_root, cached_versions
    found = cached_versions()
    console = _out()
    if not found:
        console.print(f"no net-mesh release cached in {cache_root()}; fill it with "
                      f"`busbench releases fetch 0.45.1`", markup=False, highlight=False)
        return
    for rel in found:
        gaps = f"  (lacks {', '.join(rel.missing)})" if rel.missing else ""
        console.print(f"{rel.version}  {rel.library}{gaps}", markup=False, highlight=False)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=scenario_files)
@click.option("--versions", "versions_spec", required=True, metavar="V1,V2|LOW..HIGH",
              help="net-mesh releases: a list (0.44.1,0.45.1) or a range (0.34.0..0.45.1: every "
                   "release the package index, or with --no-fetch the cache, lists in it).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Interleaved rounds of every scenario on every release.")
@click.option("--fetch/--no-fetch", default=True, show_default=True,
              help="Download missing releases into the cache first (--no-fetch: say which "
                   "command would, exit 2).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the matrix as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the matrix as Markdown.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the matrix as a self-contained HTML page.")
@isolation_options
def matrix(files, versions_spec, repeat, fetch, json_path, markdown, html_path, isolate,
           memory_limit):
    """Every check's verdict per net-mesh release, and throughput against the newest:
    SCENARIOS run against each release in one process, rounds interleaved
    (e.g. busbench matrix scenarios/net-mesh/*.yaml --versions 0.34.0..0.45.1).
    Exit 0 when it ran (verdicts are findings), 2 usage, 3 could not run or a run
    crashed (that cell says so; the others go on)."""
    from ..reports import matrix as M
    from ..run.supervisor import Job
    from ..reports import check_writable, write_atomic
    from ..scenario import ScenarioError, load_scenario
    from ..targets.errors import ReleaseError
    from ..targets.netmesh import abi
    from ..targets.netmesh import releases as R

    for path in [p for p in (json_path, markdown, html_path) if p]:
        try:
            check_writable(path)
        except OSError as e:
            raise UsageProblem(f"cannot write {path}: {e}") from None
    problems, loaded = [], {}
    for file in files:                     # validate every scenario before running any
        try:
            sc = load_scenario(file)
        except ScenarioError as e:
            problems.append(e.format())
            continue
        except OSError as e:
            problems.append(f"{file}: cannot read: {e.strerror or e}")
            continue
        if sc.target_name != "net-mesh" or sc.target.driver != "c-abi":
            problems.append(f"{file}: target: matrix compares releases of net-mesh driven through "
                            f"its C ABI; this scenario's target is {sc.target_name}"
                            + (f" (driver {sc.target.driver})" if sc.target_name == "net-mesh" else "")
                            + "; expected target: {net-mesh: {driver: c-abi}}")
            continue
        loaded[file] = sc
    names = [sc.name for sc in loaded.values()]
    if len(set(names)) != len(names):
        problems.append("two scenarios share a name; the matrix's rows are named by scenario")
    if problems:
        for p in dict.fromkeys(problems):
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)

    def available():
        known = [r.version for r in R.cached_versions()]
        if R.installed_version():
            known.append(R.installed_version())
        return known + (M.index_versions() if fetch else [])

    try:
        versions = M.parse_versions(versions_spec, available)
    except M.MatrixUsageError as e:
        raise UsageProblem(f"--versions: {e}") from None
    console = _out()
    libraries, reasons = {}, {}
    for v in versions:                     # fill the cache (or say which command would)
        why = R.unavailable(v)
        if why and not fetch:
            problems.append(f"--no-fetch: {why}")
            continue
        try:
            if why:
                console.print(f"fetching net-mesh {v} into {R.cache_root()}", highlight=False)
                R.release(v)
            lib = abi.load(None if R.installed_version() == v else R.release(v, download=False).library,
                           v, known_version=v)
            libraries[v] = lib.describe()
            if lib.missing:
                console.print(f"net-mesh {v} lacks {', '.join(lib.missing)}: not comparable on "
                              f"what those give", highlight=False)
        except ReleaseError as e:
            if e.exit_code == EXIT_USAGE:
                problems.append(str(e))
            else:
                reasons[v] = str(e)        # a broken or undrivable release: its column says so
        except abi.NetMeshError as e:
            reasons[v] = str(e)
    if problems:
        for p in dict.fromkeys(problems):
            err.print(p, markup=False, highlight=False)
        raise SystemExit(EXIT_USAGE)

    say = _say("plain", console)
    by_name = {sc.name: f for f, sc in loaded.items()}
    session = _session(isolate, memory_limit, say)

    def run_once(name, version):
        file = by_name[name]
        override = f"target.net-mesh.version={version}"
        sc = load_scenario(file, overrides=[override])
        result = session.run(sc, Job(file, (override,)))
        if result.status == N.RUN_INTERRUPTED:
            raise KeyboardInterrupt
        rec = result.to_dict()
        verdicts, expected = {}, {}
        for c in rec.get("checks", []):
            label = c["name"] + ("" if c.get("at", "end") == "end" else f" @{c['at']}")
            verdicts[label], expected[label] = c["outcome"], c["expect"]
        value = result.metrics.get("throughput", result.metrics.get("ingest_rate"))
        crash = M.crash_text(result.status, result.crash)
        return M.RunOutcome(verdicts, expected, float(value) if value is not None else None,
                            result.status, result.error, crash)

    def on_progress(name, version, rnd, outcome):
        console.print(f"[round {rnd}] {name} on {version}: {outcome.status}"
                      + (f", {outcome.throughput:,.0f} events/s" if outcome.throughput else "")
                      + (f" ({outcome.error})" if outcome.error else ""), highlight=False, markup=False)

    with _sigterm_as_interrupt(), session:
        try:
            result = M.run_matrix(list(by_name), versions, repeat, run_once, on_progress,
                                  not_comparable=lambda v: reasons.get(v))
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
    console.print(M.render_table(result))
    ran = sum(len(c.runs) for c in result.cells.values())
    data = result.to_dict()
    data["libraries"] = libraries
    data["throughput_metric"] = ("throughput (events dispatched per second of load), else ingest_rate "
                                 "(events ingested per second of load: net-mesh exports no dispatched count)")
    data["command"] = "busbench matrix " + " ".join(files) + f" --versions {versions_spec} --repeat {repeat}"
    if json_path:
        write_atomic(json_path, json.dumps(data, indent=1) + "\n")
        console.print(f"json: {json_path}", highlight=False)
    if markdown:
        write_atomic(markdown, M.render_markdown(result))
        console.print(f"markdown: {markdown}", highlight=False)
    if html_path:
        write_atomic(html_path, M.render_html(result, data["command"]))
        console.print(f"html: {html_path}", highlight=False)
    if ran == 0:
        err.print("error: no release could be driven; see the reasons above", markup=False)
        sys.exit(EXIT_ERROR)
    broken = [(c.scenario, c.version, r.crash) for c in result.cells.values() for r in c.runs
              if r.crash]
    if broken:
        err.print(f"{len(broken)} run(s) crashed or hung: "
                  + "; ".join(f"{s} on {v}: {why}" for s, v, why in broken[:3]) + "; exit 3",
                  markup=False, highlight=False)
        sys.exit(EXIT_ERROR)


def _add_first_hour_commands():
    from .extra import COMMANDS
    for command in COMMANDS:
        main.add_command(command)


_add_first_hour_commands()

if __name__ == "__main__":
    main()
