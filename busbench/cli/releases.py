"""``busbench releases`` (the wheel cache of net-mesh releases) and ``busbench matrix``
(every check's verdict per release).
"""
from __future__ import annotations

import json
import sys

import click

from ..common import names as N
from ..common.names import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .completion import scenario_files
from .shared import (UsageProblem, err, prepare_lines,
                     sigterm_as_interrupt, stdout_console)


@click.group()
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
        stdout_console().print(f"net-mesh {rel.version}: {rel.library}{gaps}", markup=False, highlight=False)
    stdout_console().print(f"cache: {cache_root()}", markup=False, highlight=False)


@releases.command(name="list")
def releases_list():
    """The net-mesh releases in the cache."""
    from ..targets.netmesh.releases import cache_root, cached_versions
    found = cached_versions()
    console = stdout_console()
    if not found:
        console.print(f"no net-mesh release cached in {cache_root()}; fill it with "
                      f"`busbench releases fetch 0.45.1`", markup=False, highlight=False)
        return
    for rel in found:
        gaps = f"  (lacks {', '.join(rel.missing)})" if rel.missing else ""
        console.print(f"{rel.version}  {rel.library}{gaps}", markup=False, highlight=False)


@click.command()
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
def matrix(files, versions_spec, repeat, fetch, json_path, markdown, html_path):
    """Every check's verdict per net-mesh release, and throughput against the newest:
    SCENARIOS run against each release in one process, rounds interleaved
    (e.g. busbench matrix scenarios/net-mesh/*.yaml --versions 0.34.0..0.45.1).
    Exit 0 when it ran (verdicts are findings), 2 usage, 3 could not run."""
    from ..reports import matrix as M
    from ..reports import check_writable, write_atomic
    from ..run.runner import Runner
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
    console = stdout_console()
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

    say = prepare_lines("plain", console)
    by_name = {sc.name: f for f, sc in loaded.items()}

    def run_once(name, version):
        file = by_name[name]
        sc = load_scenario(file, overrides=[f"target.net-mesh.version={version}"])
        result = Runner(sc, file, say=say).run()
        if result.status == N.RUN_INTERRUPTED:
            raise KeyboardInterrupt
        rec = result.to_dict()
        verdicts, expected = {}, {}
        for c in rec.get("checks", []):
            label = c["name"] + ("" if c.get("at", "end") == "end" else f" @{c['at']}")
            verdicts[label], expected[label] = c["outcome"], c["expect"]
        value = result.metrics.get("throughput", result.metrics.get("ingest_rate"))
        return M.RunOutcome(verdicts, expected, float(value) if value is not None else None,
                            result.status, result.error)

    def on_progress(name, version, rnd, outcome):
        console.print(f"[round {rnd}] {name} on {version}: {outcome.status}"
                      + (f", {outcome.throughput:,.0f} events/s" if outcome.throughput else "")
                      + (f" ({outcome.error})" if outcome.error else ""), highlight=False, markup=False)

    with sigterm_as_interrupt():
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


COMMANDS = (releases, matrix,)
