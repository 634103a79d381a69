"""busbench's command line: one module per command group, each with its COMMANDS.

run.py (run, validate, list), check.py, compare.py (compare, compare-records),
lab.py, releases.py (releases, matrix), first_hour.py (report, schema, init,
completion); shared.py holds what they share. This module builds the ``main``
group from them (the ``busbench`` entry point).

Exit codes (PRODUCT.md): 0 every check passed; 1 a check or threshold failed;
2 usage or scenario error; 3 the run could not complete; 130 interrupted.
A user's mistake gets a message naming what to fix, never a traceback.
"""
from __future__ import annotations

import click

from .. import __version__
from . import check, compare, first_hour, lab, releases, run


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


for _group in (run, check, compare, lab, releases, first_hour):
    for _command in _group.COMMANDS:
        main.add_command(_command)
