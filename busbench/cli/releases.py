"""``busbench releases`` (the release cache, keyed by target: net-mesh, kafka) and
``busbench matrix`` (every check's verdict per release: on one machine, as a CI
plan, as one CI job, and the merge of the jobs' parts).

Which bus a release belongs to is the scenario's target (busbench/targets/release_cache.py);
the matrix logic is busbench/verdicts/matrix.py (its renderers busbench/reports/matrix.py). A user's mistake is one line and
exit 2, never a traceback.
"""
from __future__ import annotations

import json
import sys

import click

from ..common import names as N
from ..common.names import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .completion import scenario_files
from .shared import (UsageProblem, err, isolation_options, prepare_lines, session,
                     sigterm_as_interrupt, stdout_console)


def _usage(message: str):
    return UsageProblem(message)


def _fail(problems) -> None:
    for p in dict.fromkeys(problems):
        err.print(p, markup=False, highlight=False)
    raise SystemExit(EXIT_USAGE)


def releases_missing(file, scenarios) -> list[str]:
    """One message per release a scenario asks for (``target.<bus>.version``) that is
    neither installed nor cached (checked before any run: a miss is the user's to
    fix, exit 2, naming ``busbench releases fetch <bus> <version>``)."""
    from ..targets.release_cache import ReleaseError, unavailable, version_asked
    problems = []
    for sc in scenarios:
        asked = version_asked(sc)
        if asked is None:
            continue
        kind, version = asked
        try:
            why = unavailable(kind, version)
        except ReleaseError as e:
            why = str(e)
        if why:
            problems.append(f"{file}: target.{kind.target}.version: {why}")
    return problems


# --- releases ------------------------------------------------------------------------


@click.group()
def releases():
    """Releases of a real bus in busbench's cache, several loadable side by side in
    one process: net-mesh (its wheel's C ABI) and kafka (the librdkafka a
    confluent-kafka wheel bundles). busbench releases fetch kafka 2.0.2 2.16.1"""


def _target_and_versions(words) -> tuple:
    """``TARGET VERSION...``; the old spelling ``VERSION...`` still means net-mesh."""
    from ..targets import release_cache as RC
    first, rest = words[0], list(words[1:])
    if first in RC.KINDS:
        if not rest:
            k = RC.KINDS[first]
            raise _usage(f"releases fetch {first}: name the releases, e.g. "
                         f"`busbench releases fetch {first} {k.example}`")
        return RC.KINDS[first], rest
    if RC.VERSION.fullmatch(first):
        err.print(f"note: `busbench releases fetch {' '.join(words)}` is the old spelling and "
                         f"fetches net-mesh; write `busbench releases fetch net-mesh {' '.join(words)}`",
                         markup=False, highlight=False)
        return RC.NET_MESH, list(words)
    from difflib import get_close_matches
    near = get_close_matches(first, list(RC.KINDS), n=1)
    raise _usage(f"releases fetch: {first!r} is not a target ({', '.join(RC.KINDS)}"
                 + (f"; did you mean {near[0]!r}?" if near else "")
                 + f"), nor a release (expected a net-mesh release like {RC.NET_MESH.example}); "
                 f"e.g. busbench releases fetch kafka {RC.KAFKA.example}")


@releases.command(name="fetch")
@click.argument("words", nargs=-1, required=True, metavar="TARGET VERSION...")
def releases_fetch(words):
    """Download TARGET's releases with pip (wheels for this Python and platform) into
    the cache, check each wheel's own version and C symbols, and keep its library
    (with the libraries it bundles). TARGET: net-mesh or kafka."""
    from ..targets import release_cache as RC
    kind, versions = _target_and_versions(words)
    out = stdout_console()
    for version in versions:
        try:
            rel = RC.release(kind, version)
        except RC.ReleaseError as e:
            err.print(f"error: {e}", markup=False, highlight=False)
            sys.exit(e.exit_code)
        gaps = f"; lacks {', '.join(rel.missing)}" if rel.missing else ""
        says = (f" (says {rel.library_version})" if rel.library_version
                and rel.library_version != rel.version else "")
        out.print(f"{kind.target} {rel.version}: {rel.library}{says}{gaps}", markup=False,
                  highlight=False)
    out.print(f"cache: {RC.cache_root(kind)}", markup=False, highlight=False)


@releases.command(name="list")
@click.argument("target", required=False, metavar="[TARGET]")
def releases_list(target):
    """The releases in the cache (of TARGET, else of every bus)."""
    from ..targets import release_cache as RC
    try:
        kinds = [RC.kind(target)] if target else list(RC.KINDS.values())
    except RC.ReleaseError as e:
        raise _usage(f"releases list: {e}") from None
    out = stdout_console()
    for k in kinds:
        found = RC.cached_versions(k)
        if not found:
            out.print(f"no {k.target} release cached in {RC.cache_root(k)}; fill it with "
                      f"`{RC.fetch_command(k, k.example)}`", markup=False, highlight=False)
            continue
        for rel in found:
            gaps = f"  (lacks {', '.join(rel.missing)})" if rel.missing else ""
            out.print(f"{k.target} {rel.version}  {rel.library}{gaps}", markup=False, highlight=False)


# --- matrix --------------------------------------------------------------------------


def _load_scenarios(files) -> tuple:
    """(scenarios by file, the release kind they share); exit 2 on any problem."""
    from ..scenario import ScenarioError, load_scenario
    from ..targets.release_cache import version_asked
    problems, loaded, kinds = [], {}, {}
    for file in files:                     # validate every scenario before running any
        try:
            sc = load_scenario(file)
        except ScenarioError as e:
            problems.append(e.format())
            continue
        except OSError as e:
            problems.append(f"{file}: cannot read: {e.strerror or e}")
            continue
        asked = version_asked(sc)
        if asked is None:
            driver = getattr(sc.target, "driver", None)
            problems.append(f"{file}: target: matrix compares releases of a real bus; this "
                            f"scenario's target is {sc.target_name}"
                            + (f" (driver {driver})" if sc.target_name == "net-mesh" else "")
                            + "; expected target: {net-mesh: {driver: c-abi}} or {kafka: {...}}")
            continue
        loaded[file] = sc
        kinds.setdefault(asked[0].target, []).append(file)
    if len(kinds) > 1:
        problems.append("a matrix compares releases of one bus; these scenarios target "
                        + " and ".join(f"{t} ({', '.join(fs)})" for t, fs in kinds.items())
                        + ": run one matrix per target")
    names = [sc.name for sc in loaded.values()]
    if len(set(names)) != len(names):
        problems.append("two scenarios share a name; the matrix's rows are named by scenario")
    if problems:
        _fail(problems)
    from ..targets.release_cache import kind
    return loaded, kind(next(iter(kinds)))


def _probe(kind, version: str) -> dict:
    """Load the release's library by path (RTLD_LOCAL) and describe it; raises
    ReleaseError or the target's error when it cannot be driven."""
    from ..targets import release_cache as RC
    if kind.target == "net-mesh":
        from ..targets.netmesh import abi
        rel = RC.resolve(kind, version)
        lib = abi.load(None if rel.source == "installed" else rel.library, version,
                       known_version=version)
        return lib.describe()
    return RC.resolve(kind, version).as_dict()


def _read_part(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as e:
        raise _usage(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise _usage(f"{path}: not JSON ({e}); expected a part written by "
                     f"busbench matrix ... --job K --of N --json FILE") from None


def _write_outputs(result, data, json_path, markdown, html_path, command) -> None:
    from ..reports import matrix as MR
    from ..reports import write_atomic
    console = stdout_console()
    if json_path:
        write_atomic(json_path, json.dumps(data, indent=1) + "\n")
        console.print(f"json: {json_path}", highlight=False)
    if markdown:
        write_atomic(markdown, MR.render_markdown(result))
        console.print(f"markdown: {markdown}", highlight=False)
    if html_path:
        write_atomic(html_path, MR.render_html(result, command))
        console.print(f"html: {html_path}", highlight=False)


def _merge(files, json_path, markdown, html_path) -> None:
    from ..reports import matrix as MR
    from ..verdicts import matrix as M
    parts = [(f, _read_part(f)) for f in files]
    try:
        result = M.merge_parts(parts)
    except M.MatrixMergeError as e:
        raise _usage(f"--merge: {e}") from None
    console = stdout_console()
    console.print(MR.render_table(result))
    for sc in result.scenarios:
        console.print(f"{sc}: measured by {result.provenance[sc]}", markup=False, highlight=False)
    data = result.to_dict()
    data["libraries"] = {}
    for _, part in parts:
        data["libraries"].update({f"{v} ({part['part']['environment'].get('hostname', '?')})": d
                                  for v, d in (part.get("libraries") or {}).items()})
    data["parts"] = [{"file": f, **{k: p["part"].get(k) for k in ("job", "of", "plan", "scenarios",
                                                                    "environment", "ci")}}
                     for f, p in parts]
    data["command"] = "busbench matrix --merge " + " ".join(files)
    _write_outputs(result, data, json_path, markdown, html_path, data["command"])


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False),
                shell_complete=scenario_files)
@click.option("--versions", "versions_spec", metavar="V1,V2|LOW..HIGH",
              help="Releases: a list (0.44.1,0.45.1) or a range (0.34.0..0.45.1: every release "
                   "the package index, or with --no-fetch the cache, lists in it).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Interleaved rounds of every scenario on every release.")
@click.option("--fetch/--no-fetch", default=True, show_default=True,
              help="Download missing releases into the cache first (--no-fetch: say which "
                   "command would, exit 2).")
@click.option("--plan", "plan_n", type=click.IntRange(1, 256), metavar="N",
              help="Run nothing: split the cells into at most N CI jobs (each scenario across all "
                   "its releases in one job) and write the GitHub Actions matrix to --json.")
@click.option("--job", "job_k", type=click.IntRange(1, 256), metavar="K",
              help="Run job K of the plan (with --of N) and write its part to --json.")
@click.option("--of", "of_n", type=click.IntRange(1, 256), metavar="N", help="With --job: the plan's job count.")
@click.option("--merge", is_flag=True,
              help="FILES are parts written by --job: join them into one matrix (refused when a "
                   "scenario's row would hold ratios from two machines or two runs).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the matrix (the plan with --plan, the part with --job) as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write the matrix as Markdown.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write the matrix as a self-contained HTML page.")
@isolation_options
def matrix(files, versions_spec, repeat, fetch, plan_n, job_k, of_n, merge, json_path, markdown,
           html_path, isolate, memory_limit):
    """Every check's verdict per release of a real bus, and throughput against the
    newest: SCENARIOS run against each release in one process, rounds interleaved
    (e.g. busbench matrix scenarios/net-mesh/*.yaml --versions 0.34.0..0.45.1).
    On CI: --plan N, then --job K --of N per CI job, then --merge parts/*.json
    (docs/ci-matrix.md). A run that crashed or hung is its cell's result ("crashed
    (SIGSEGV)"), the others go on, and the exit code is then 3.
    Exit 0 when it ran (verdicts are findings), 2 usage,
    3 could not run."""
    from ..reports import matrix as MR
    from ..verdicts import matrix as M
    from ..reports import check_writable
    from ..targets import release_cache as RC

    for path in [p for p in (json_path, markdown, html_path) if p]:
        try:
            check_writable(path)
        except OSError as e:
            raise _usage(f"cannot write {path}: {e}") from None
    modes = [m for m, on in (("--plan", plan_n), ("--job", job_k), ("--merge", merge)) if on]
    if len(modes) > 1:
        raise _usage(f"{' and '.join(modes)}: choose one (plan the jobs, run one, or merge the parts)")
    if (job_k is None) != (of_n is None):
        raise _usage("--job K and --of N go together (the plan's \"job\" and \"of\" values)")
    if merge:
        if versions_spec:
            raise _usage("--merge: the parts say their releases; drop --versions")
        _merge(files, json_path, markdown, html_path)
        return
    if not versions_spec:
        raise _usage("--versions: required (e.g. --versions 0.44.1,0.45.1 or 0.34.0..0.45.1)")
    if plan_n is not None and not json_path:
        raise _usage("--plan writes the CI matrix: give --json plan.json")
    if job_k is not None and not json_path:
        raise _usage(f"--job writes this job's part: give --json parts/part-{job_k}.json")

    loaded, kind = _load_scenarios(files)

    def available():
        return RC.known_versions(kind) + (RC.index_versions(kind) if fetch else [])

    try:
        versions = M.parse_versions(versions_spec, available, kind.target)
    except M.MatrixUsageError as e:
        raise _usage(f"--versions: {e}") from None
    for v in versions:
        try:
            RC.check_version(kind, v)
        except RC.ReleaseError as e:
            raise _usage(f"--versions: {e}") from None

    from ..evidence.environment import describe, scenario_hash
    by_name = {sc.name: f for f, sc in loaded.items()}
    hashes = {sc.name: scenario_hash(sc.to_dict()) for sc in loaded.values()}
    job = None
    if plan_n is not None or job_k is not None:
        from ..run.watchdog import planned_seconds
        estimates = {sc.name: planned_seconds(sc) for sc in loaded.values()}
        jobs = M.plan_jobs(estimates, versions, repeat, plan_n or of_n)
        fingerprint = M.plan_fingerprint(hashes, versions, jobs[0].of)
        if plan_n is not None:
            from ..reports import write_atomic
            plan = M.plan_include(jobs, versions, repeat, kind.target, fingerprint)
            write_atomic(json_path, json.dumps(plan, indent=1) + "\n")
            out = stdout_console()
            for j in jobs:
                out.print(f"job {j.index}/{j.of}: {', '.join(j.scenarios)} x {len(versions)} "
                          f"release(s) x {repeat} round(s), planned at most ~{j.estimate_s:.0f}s",
                          markup=False, highlight=False)
            out.print(f"plan: {json_path} (GitHub Actions: strategy.matrix: "
                      "${{ fromJSON(needs.plan.outputs.matrix) }}; see docs/ci-matrix.md)",
                      markup=False, highlight=False)
            return
        try:
            job = M.select_job(jobs, job_k, of_n)
        except M.MatrixUsageError as e:
            raise _usage(str(e)) from None
        by_name = {name: by_name[name] for name in job.scenarios}

    console = stdout_console()
    problems, libraries, reasons = [], {}, {}
    for v in versions:                     # fill the cache (or say which command would)
        why = RC.unavailable(kind, v)
        if why and not fetch:
            problems.append(f"--no-fetch: {why}")
            continue
        try:
            if why:
                console.print(f"fetching {kind.target} {v} into {RC.cache_root(kind)}", highlight=False)
                RC.release(kind, v)
            libraries[v] = _probe(kind, v)
            missing = libraries[v].get("missing_symbols") or libraries[v].get("missing") or []
            if missing:
                console.print(f"{kind.target} {v} lacks {', '.join(missing)}: not comparable on "
                              f"what those give", highlight=False)
        except RC.ReleaseError as e:
            if e.exit_code == EXIT_USAGE:
                problems.append(str(e))
            else:
                reasons[v] = str(e)        # a broken or undrivable release: its column says so
        except Exception as e:             # the target's own load error (e.g. NetMeshError)
            from ..targets.errors import TargetError
            if not isinstance(e, TargetError):
                raise
            reasons[v] = str(e)
    if problems:
        _fail(problems)

    from ..run.supervisor import Job
    from ..scenario import load_scenario
    say = prepare_lines("plain", console)
    runs = session(isolate, memory_limit, say)      # one warm supervised child for every cell

    def run_once(name, version):
        file = by_name[name]
        override = f"target.{kind.target}.version={version}"
        sc = load_scenario(file, overrides=[override])
        result = runs.run(sc, Job(file, (override,)))
        if result.status == N.RUN_INTERRUPTED:
            raise KeyboardInterrupt
        rec = result.to_dict()
        verdicts, expected = {}, {}
        for c in rec.get("checks", []):
            label = c["name"] + ("" if c.get("at", "end") == "end" else f" @{c['at']}")
            verdicts[label], expected[label] = c["outcome"], c["expect"]
        value = result.metrics.get("throughput", result.metrics.get("ingest_rate"))
        return M.RunOutcome(verdicts, expected, float(value) if value is not None else None,
                            result.status, result.error, M.crash_text(result.status, result.crash))

    def on_progress(name, version, rnd, outcome):
        console.print(f"[round {rnd}] {name} on {version}: {outcome.status}"
                      + (f", {outcome.throughput:,.0f} events/s" if outcome.throughput else "")
                      + (f" ({outcome.error})" if outcome.error else ""), highlight=False, markup=False)

    if job is not None:
        console.print(f"job {job.index}/{job.of}: {', '.join(job.scenarios)}", highlight=False)
    with sigterm_as_interrupt(), runs:
        try:
            result = M.run_matrix(list(by_name), versions, repeat, run_once, on_progress,
                                  not_comparable=lambda v: reasons.get(v), target=kind.target)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)
    console.print(MR.render_table(result))
    ran = sum(len(c.runs) for c in result.cells.values())
    command = ("busbench matrix " + " ".join(files) + f" --versions {versions_spec} --repeat {repeat}"
               + (f" --job {job.index} --of {job.of}" if job else ""))
    if job is not None:
        data = M.part_record(result, job, fingerprint,
                             describe(None), hashes)
    else:
        data = result.to_dict()
    data["libraries"] = libraries
    data["throughput_metric"] = ("throughput (events dispatched per second of load), else ingest_rate "
                                 "(events ingested per second of load: net-mesh exports no dispatched count)")
    data["command"] = command
    _write_outputs(result, data, json_path, markdown, html_path, command)
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


COMMANDS = (releases, matrix)
