"""Commands for a user's first hour: report, schema, init, completion.

``cli.main`` adds these with ``add_command``, as it does every group's. Same rules: a user's mistake is
one line and exit 2, never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .completion import SHELLS, record_files


def _usage(message: str):
    from .shared import UsageProblem
    return UsageProblem(message)


def write_html_report(path, records: list[dict], labels=None, comparison=None) -> Path:
    from ..reports import write_atomic
    from ..reports.html import render
    return write_atomic(path, render(records, labels=labels, comparison=comparison))


@click.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=record_files)
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the HTML report here (default: next to the first record, .html).")
@click.option("--png", "png_dir", type=click.Path(file_okay=False),
              help="Also write the charts as PNG files into this folder (needs busbench[plot]).")
def report(records, html_path, png_dir):
    """A picture of one or several runs, from their RECORDS (results/*.json).

    One self-contained HTML file (no network needed to view it): throughput
    over time with the steps marked, ring fill per shard, latency percentiles,
    the checks with their evidence, the scenario and the environment. Several
    records (a baseline and a candidate, say) are overlaid.
    """
    from ..reports import check_writable
    from ..reports.html import RecordError, load_record
    from ..reports.png import PlotUnavailable, ensure_available, write_pngs
    loaded = []
    for path in records:
        try:
            loaded.append(load_record(path))
        except RecordError as e:
            raise _usage(str(e)) from None
    if png_dir:
        try:
            ensure_available()
        except PlotUnavailable as e:
            raise _usage(str(e)) from None
    html_path = html_path or str(Path(records[0]).with_suffix(".html"))
    try:
        check_writable(html_path)
    except OSError as e:
        raise _usage(f"--html {html_path}: {e}") from None
    written = write_html_report(html_path, loaded)
    click.echo(f"report: {written}")
    if png_dir:
        for png in write_pngs(loaded, png_dir):
            click.echo(f"chart: {png}")


@click.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write the schema to this file instead of printing it.")
def schema(output):
    """Print the JSON Schema of scenario files, for editors.

    \b
    Editors with the YAML language server (VS Code's YAML extension, JetBrains
    IDEs) complete and check a scenario whose first line is
      # yaml-language-server: $schema=scenario.schema.json
    after: busbench schema -o scenario.schema.json
    """
    from ..scenario.jsonschema import scenario_json_schema
    text = json.dumps(scenario_json_schema(), indent=1, ensure_ascii=False) + "\n"
    if output:
        from ..reports import write_atomic
        click.echo(f"schema: {write_atomic(output, text)}")
    else:
        click.echo(text, nl=False)


@click.command()
@click.argument("name", default="my_scenario")
@click.option("--from", "origin", default="quickstart", show_default=True,
              help="A built-in starter (quickstart) or a scenario file to copy.")
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False),
              help="Where to write it.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name, origin, directory, force):
    """Write a commented starter scenario NAME.yaml that validates and runs
    (and scenario.schema.json beside it, for editor completion)."""
    from ..scenario.scaffold import ScaffoldError, write_starter
    try:
        written = write_starter(name, origin, directory, force)
    except ScaffoldError as e:
        raise _usage(str(e)) from None
    except OSError as e:
        raise _usage(f"cannot write into {directory}: {e.strerror or e}") from None
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: busbench validate {written[0]} && busbench run {written[0]}")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell):
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(busbench completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(busbench completion zsh)"       (in ~/.zshrc)
    fish:  busbench completion fish > ~/.config/fish/completions/busbench.fish
    """
    from .completion import script
    click.echo(script(shell, click.get_current_context().find_root().command), nl=False)


COMMANDS = (report, schema, init, completion)
