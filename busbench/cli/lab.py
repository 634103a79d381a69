"""``busbench lab``: microbenchmarks that explain what the bus measures.
"""
from __future__ import annotations

import json
import sys

import click

from ..common.names import EXIT_INTERRUPTED
from .shared import (UsageProblem, err, sigterm_as_interrupt, stdout_console)


@click.group()
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
        with sigterm_as_interrupt():
            result = run_false_sharing(values, threads=threads, repeats=repeats, op=op)
    except LabUsageError as e:
        raise UsageProblem(str(e)) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    console = stdout_console()
    console.print(render_lab_table(result))     # its caption carries the interpretation and warnings
    if json_path:
        write_atomic(json_path, json.dumps(result.to_dict(), indent=1) + "\n")


COMMANDS = (lab,)
