"""``busbench run``, ``validate`` and ``list``: run scenario files, check them without
running, say what each does.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..common import names as N
from ..common.names import EXIT_INTERRUPTED, EXIT_OK
from .completion import scenario_files, set_keys
from .shared import (UsageProblem, err, isolation_options, load_all, parse_percent, parse_timeout,
                     prepare_lines, session, sigterm_as_interrupt, stdout_console)


@click.command()
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
@isolation_options
def run(files, overrides, seed, out_dir, junit, markdown, html_path, live, quiet, baseline,
        max_regression, repeat, gate_metric, pin, allow_incomparable, timeout, isolate,
        memory_limit):
    """Run scenario FILES in order, evaluate their checks, write their records.

    Every file is validated before the first one runs. Each run writes
    OUT/<scenario>-<timestamp>.json (also when interrupted, marked so).
    """
    from ..reports.dashboard import default_mode
    from ..reports import check_writable

    timeout_s = parse_timeout(timeout)
    runs = session(isolate, memory_limit)
    runs.prestart()          # the child imports the runner while this process validates
    try:
        scenarios = load_all(files, overrides, seed)
        max_reg = parse_percent(max_regression)
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

        console = stdout_console()
        mode = default_mode(sys.stdout.isatty(), quiet, live)
        results, exit_code = [], EXIT_OK
        with sigterm_as_interrupt():
            try:
                exit_code = _run_all(scenarios, mode, console, out_dir, gates, max_reg, results,
                                     repeat=repeat, pin=pin, metric=gate_metric,
                                     overrides=overrides, seed=seed,
                                     timeout_s=timeout_s, timeout=timeout, isolate=isolate,
                                     memory_text=memory_limit, session=runs)
            except KeyboardInterrupt:
                # Interrupted outside a run (e.g. while compiling): every run that
                # started has already written its record.
                err.print("interrupted")
                exit_code = EXIT_INTERRUPTED
        _write_reports(results, junit, markdown)
        if html_path and results:
            from .first_hour import write_html_report
            console.print(f"report: {write_html_report(html_path, [r.to_dict() for r in results])}")
    finally:
        runs.close()
    sys.exit(exit_code)


def _run_all(scenarios, mode, console, out_dir, gates, max_reg, results, *, repeat=1, pin=False,
             metric="throughput", overrides=(), seed=None, timeout_s=None,
             timeout=None, isolate=False, memory_text=None, session=None) -> int:
    from ..verdicts import gating
    from ..reports.dashboard import make_progress
    from ..reports import json_report, write_atomic
    from ..reports import summary
    from ..run import repeat as repeats
    from ..run.supervisor import Job
    say = prepare_lines(mode, console)
    if session is not None:
        session.say = say
    exit_code = EXIT_OK
    for source, scenario in scenarios:
        from ..targets.errors import TargetError

        def run_once(scenario=scenario, source=source):
            progress = make_progress(mode, console=console)
            with progress:
                if session is None or not isolate:
                    from ..run.runner import Runner      # Numba: imported where the run is
                    return Runner(scenario, source, progress=progress, say=say,
                                  pin_threads=pin, timeout_s=timeout_s).run()
                # one fresh supervised child per scenario (busbench/run/supervisor.py)
                return session.run(scenario, Job(source, tuple(overrides), seed, timeout_s, pin),
                                   progress, fresh=True)

        def run_isolated(source=source):
            extra = ["--memory-limit", memory_text] if memory_text else []
            if not isolate:
                extra.append("--no-isolate")
            return repeats.run_isolated(source, overrides, seed, pin, Path(out_dir) / "repeats",
                                        timeout=timeout, extra_args=extra)
        try:
            result = repeats.run_repeated(run_once, repeat, run_isolated)
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


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=scenario_files)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for run.",
              shell_complete=set_keys)
def validate(files, overrides):
    """Check scenario FILES without running them (exit 2 on the first error)."""
    scenarios = load_all(files, overrides)
    for f, sc in scenarios:
        click.echo(f"ok  {f}  ({sc.name}: {len(sc.steps)} steps, {len(sc.checks)} checks)")




@click.command(name="list")
@click.argument("directory", default="scenarios", type=click.Path(file_okay=False))
def list_cmd(directory):
    """Name and description of each scenario under DIRECTORY (default: scenarios)."""
    from rich.table import Table

    from ..scenario import list_scenarios
    if not Path(directory).is_dir():
        raise UsageProblem(f"{directory} is not a directory")
    entries = list_scenarios(directory)
    console = stdout_console()
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


COMMANDS = (run, validate, list_cmd,)
