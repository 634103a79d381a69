"""What every command of busbench's command line shares: the consoles, the usage
error (exit 2, one line, never a traceback), SIGTERM as Ctrl-C, and reading
scenario files and option values.
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

import click
from rich.console import Console
from rich.markup import escape as rich_escape

from ..common.names import EXIT_USAGE


# soft_wrap: an error line (FILE:LINE: key: ...) is never split, whatever the width.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    # Not a terminal (a CI log, a pipe): rich would assume 80 columns and cut
    # labels and evidence short; a log can afford long lines.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class UsageProblem(click.ClickException):
    exit_code = EXIT_USAGE

    def show(self, file=None):
        # escaped: a message such as "pip install 'busbench[plot]'" is text, not markup
        err.print(f"[bold red]error:[/] {rich_escape(self.message)}", markup=True, highlight=False)


@contextmanager
def sigterm_as_interrupt():
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


def load_all(files, overrides=(), seed=None):
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


def parse_timeout(text):
    from ..common.units import UnitError, parse_duration
    if text is None:
        return None
    try:
        return parse_duration(text) / 1e9
    except (UnitError, ValueError) as e:
        raise UsageProblem(f"--timeout: {e}") from None


def parse_percent(text: str) -> float:
    from ..common.units import parse_percent
    try:
        return parse_percent(text)
    except ValueError as e:
        raise UsageProblem(f"--max-regression: {e}") from None


def prepare_lines(mode, console):
    """Where a target's prepare lines go (e.g. "compiling Numba kernels"): the
    progress output (above the live dashboard), or stderr under --quiet, so a
    long first run is never silent."""
    target = err if mode == "quiet" else console
    return lambda line: target.print(line, markup=False, highlight=False)


def parse_memory(text):
    """--memory-limit SIZE -> bytes (None when not given); a bad size is exit 2."""
    from ..common.units import UnitError
    from ..common.units import parse_memory as parse
    if text is None:
        return None
    try:
        return parse(text)
    except UnitError as e:
        raise UsageProblem(f"--memory-limit: {e}") from None


def isolation_options(command):
    """--memory-limit and --isolate/--no-isolate (run, compare, matrix)."""
    command = click.option(
        "--isolate/--no-isolate", default=True, show_default=True,
        help="Run in a supervised child process (busbench/run/supervisor.py), so that a bus "
             "that crashes, hangs holding the GIL or eats memory ends as a recorded verdict; "
             "--no-isolate runs in this process (for gdb, perf, py-spy): a crash then takes "
             "busbench with it.")(command)
    return click.option(
        "--memory-limit", "memory_limit", default=None, metavar="SIZE",
        help="Run under this data-size limit (e.g. 2G; wins over a scenario's limits.memory); "
             "past it the run is recorded crashed, out of memory, exit 3.")(command)


def session(isolate: bool, memory_text, say=lambda line: None):
    """The supervised child(ren) a command's runs execute in (``Session``)."""
    from ..run.supervisor import Session
    memory = parse_memory(memory_text)
    if memory is not None and not isolate:
        raise UsageProblem("--memory-limit needs a supervised child; drop --no-isolate")
    return Session(isolate=isolate, memory_limit=memory, say=say)
