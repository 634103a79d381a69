"""``busbench check RECORDS``: re-evaluate the checks of run records, without running.
"""
from __future__ import annotations

import sys

import click

from ..common.names import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .shared import (err, stdout_console)


@click.command(name="check")
@click.argument("records", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check_cmd(records):
    """Re-evaluate the checks of run RECORDS from the records alone (nothing runs).

    Exit 0 when every check of every record comes out as declared, 1 when one
    does not, 2 when a record cannot be read or re-evaluated.
    """
    from rich.table import Table
    from rich.text import Text

    from ..evidence.result import SCHEMA_VERSION
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
    console = stdout_console()
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
        if r.converted_from is not None:
            console.print(f"[dim]note: record schema {r.converted_from}, read as schema "
                          f"{SCHEMA_VERSION} (fields it did not record yet taken as unknown)[/]")
        if r.incomplete:
            console.print(f"[yellow]note:[/] the run did not complete (status {r.incomplete}): "
                          "the checks of steps it did not reach and its end checks were never "
                          "evaluated")
        if not r.ok:
            exit_code = EXIT_FAILED
    sys.exit(exit_code)


COMMANDS = (check_cmd,)
