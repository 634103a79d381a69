"""Releases side by side: every check's verdict per release, and what each cost.

``busbench matrix scenarios/net-mesh/*.yaml --versions 0.34.0..0.45.1`` runs
each scenario against each release of a real bus (net-mesh, kafka) in one
process (each release's library loaded by path from the release cache, see
targets/release_cache.py), rounds interleaved so that machine drift falls on
every release alike, and tabulates which promise holds in which release and
the throughput against the newest: the table a bus's maintainers paste into a
release note.

Like ``compare``, this module knows nothing of how a run is done, nor how a
matrix is shown (reports/matrix.py renders it): it is handed
``run_once(scenario_file, version) -> RunOutcome``. A release that cannot be
driven (a symbol missing, a library that will not load) is "not comparable"
in its cells, with the reason, never a crash of the whole matrix.

A matrix that outgrows one machine fans out over a CI system's own matrix
(docs/ci-matrix.md): :func:`plan_jobs` splits the scenarios into at most N
jobs, each one scenario (or several) across *all* its releases, so every
ratio is still measured inside one process; :func:`plan_include` is the
GitHub Actions ``strategy.matrix`` the jobs run from; each job writes a part
(:func:`part_record`); :func:`merge_parts` joins them, and refuses to put
ratios from two machines, or two runs, in one row.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Optional, Sequence

from ..common.names import NOT_EVALUABLE

_VERSION = re.compile(r"\d+\.\d+\.\d+")
NOT_COMPARABLE = "not_comparable"


class MatrixUsageError(ValueError):
    """A ``--versions`` spec the user must fix (exit code 2)."""


def version_key(version: str) -> tuple:
    return tuple(int(x) for x in version.split("."))


def parse_versions(spec: str, available: Callable[[], Sequence[str]],
                   target: str = "net-mesh") -> list[str]:
    """``0.40.0,0.45.1`` as given, or ``0.34.0..0.45.1``: every release in that
    range that ``available()`` lists (oldest first)."""
    spec = spec.strip()
    if ".." in spec:
        low, _, high = spec.partition("..")
        for v in (low, high):
            if not _VERSION.fullmatch(v.strip()):
                raise MatrixUsageError(f"expected a range like 0.34.0..0.45.1, got {spec!r}")
        lo, hi = version_key(low.strip()), version_key(high.strip())
        if lo > hi:
            raise MatrixUsageError(f"the range {spec!r} is empty: {low} is newer than {high}")
        chosen = sorted({v for v in available() if lo <= version_key(v) <= hi}, key=version_key)
        if not chosen:
            raise MatrixUsageError(f"no release of {target} in {spec} is known (offline? fill the "
                                   f"cache with `busbench releases fetch {target} VERSION`)")
        return chosen
    versions = [v.strip() for v in spec.split(",") if v.strip()]
    bad = [v for v in versions if not _VERSION.fullmatch(v)]
    if bad or not versions:
        raise MatrixUsageError(f"expected releases like 0.40.0,0.45.1 or a range like "
                               f"0.34.0..0.45.1, got {spec!r}")
    return sorted(dict.fromkeys(versions), key=version_key)


def index_versions(target: str = "net-mesh", timeout_s: float = 60.0) -> list[str]:
    """Releases the package index lists for ``target`` from its oldest drivable one
    (``pip index versions``); [] when offline."""
    from ..targets.release_cache import index_versions as listed
    return listed(target, timeout_s)


@dataclass(frozen=True)
class RunOutcome:
    """What the matrix keeps of one run."""
    verdicts: dict                  # check label -> outcome (passed/failed/not_evaluable/...)
    expected: dict                  # check label -> "pass" | "fail" (the scenario's declaration)
    throughput: Optional[float]
    status: str                     # passed | failed | error | timed_out | crashed ...
    error: Optional[str] = None
    crash: Optional[str] = None     # "crashed (SIGSEGV)", "hung (killed)": the cell says so

    def as_dict(self) -> dict:
        return {"verdicts": self.verdicts, "expected": self.expected,
                "throughput": self.throughput, "status": self.status, "error": self.error,
                "crash": self.crash}


def crash_text(status: str, crash: Optional[dict]) -> Optional[str]:
    """How a run the supervisor recorded as crashed or killed shows in its cell."""
    if status == "crashed":
        crash = crash or {}
        if crash.get("out_of_memory"):
            return "crashed (out of memory)"
        if crash.get("signal"):
            return f"crashed ({crash['signal']})"
        return f"crashed (exit code {crash.get('exit_code')})"
    if status == "timed_out" and crash:
        return "hung (killed)"
    return None


@dataclass
class Cell:
    scenario: str
    version: str
    runs: list = field(default_factory=list)          # RunOutcome per round
    not_comparable: Optional[str] = None              # why this release could not be driven

    def verdict(self, check: str) -> str:
        """The check's outcome over the rounds: one word when they agree, else 'k/n failed'."""
        if self.not_comparable is not None:
            return NOT_COMPARABLE
        crashes = [r.crash for r in self.runs if r.crash]
        outcomes = [r.verdicts.get(check) for r in self.runs if check in r.verdicts and not r.crash]
        if crashes and not outcomes:
            return crashes[0] if len(set(crashes)) == 1 and len(crashes) == 1 else \
                f"{len(crashes)}/{len(self.runs)} {crashes[0]}"
        if crashes:
            return f"{len(crashes)}/{len(self.runs)} {crashes[0]}"
        if not outcomes:
            return NOT_EVALUABLE
        if len(set(outcomes)) == 1:
            return outcomes[0]
        failed = sum(o == "failed" for o in outcomes)
        return f"{failed}/{len(outcomes)} failed"

    @property
    def throughputs(self) -> list:
        return [r.throughput for r in self.runs if r.throughput is not None]


@dataclass
class MatrixResult:
    scenarios: list                 # scenario names, in the order given
    versions: list                  # oldest first
    cells: dict                     # (scenario, version) -> Cell
    checks: dict                    # scenario -> [check labels]
    repeat: int
    target: str = "net-mesh"
    provenance: dict = field(default_factory=dict)    # scenario -> where its row was measured
    notes: list = field(default_factory=list)         # what a reader of a merged matrix must know

    @property
    def newest(self) -> str:
        return self.versions[-1]

    def ratio(self, scenario: str, version: str):
        """Median throughput of a release over the newest's, with a paired view
        (per-round ratios), or None when either side has no figure."""
        a = self.cells[(scenario, version)].throughputs
        b = self.cells[(scenario, self.newest)].throughputs
        if not a or not b:
            return None
        ratio = median(a) / median(b) if median(b) else None
        paired = [x / y for x, y in zip(a, b) if y]
        return {"ratio_of_medians": ratio,
                "paired_median": median(paired) if paired else None,
                "paired_min": min(paired) if paired else None,
                "paired_max": max(paired) if paired else None, "rounds": len(paired)}

    def to_dict(self) -> dict:
        rows = []
        for sc in self.scenarios:
            for v in self.versions:
                cell = self.cells[(sc, v)]
                rows.append({
                    "scenario": sc, "version": v, "not_comparable": cell.not_comparable,
                    "verdicts": {c: cell.verdict(c) for c in self.checks.get(sc, [])},
                    "throughputs": cell.throughputs, "vs_newest": self.ratio(sc, v),
                    "statuses": [r.status for r in cell.runs],
                    "crashes": [r.crash for r in cell.runs if r.crash],
                    "errors": [r.error for r in cell.runs if r.error],
                    "runs": [r.as_dict() for r in cell.runs]})
        data = {"schema_version": 1, "kind": "matrix", "target": self.target,
                "versions": self.versions, "newest": self.newest, "repeat": self.repeat,
                "scenarios": self.scenarios, "checks": self.checks, "rows": rows}
        if self.provenance:
            data["provenance"] = self.provenance
        if self.notes:
            data["notes"] = self.notes
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MatrixResult:
        """The matrix a ``to_dict`` wrote (a part of a fanned-out matrix, read back)."""
        versions = list(data["versions"])
        scenarios = list(data["scenarios"])
        cells = {(s, v): Cell(s, v) for s in scenarios for v in versions}
        for row in data["rows"]:
            cell = cells[(row["scenario"], row["version"])]
            cell.not_comparable = row.get("not_comparable")
            cell.runs = [RunOutcome(r["verdicts"], r["expected"], r["throughput"], r["status"],
                                    r.get("error"), r.get("crash")) for r in row["runs"]]
        return cls(scenarios, versions, cells, {k: list(v) for k, v in data["checks"].items()},
                   int(data["repeat"]), data.get("target", "net-mesh"),
                   dict(data.get("provenance") or {}), list(data.get("notes") or []))


def run_matrix(scenarios: Sequence[str], versions: Sequence[str], repeat: int,
               run_once: Callable[[str, str], RunOutcome],
               on_progress: Callable[[str, str, int, RunOutcome], None] = lambda *a: None,
               not_comparable: Callable[[str], Optional[str]] = lambda v: None,
               target: str = "net-mesh") -> MatrixResult:
    """Every scenario against every release, ``repeat`` rounds, releases
    interleaved within a round and their order reversed every other round."""
    versions = sorted(dict.fromkeys(versions), key=version_key)
    cells = {(s, v): Cell(s, v) for s in scenarios for v in versions}
    for v in versions:
        reason = not_comparable(v)
        if reason:
            for s in scenarios:
                cells[(s, v)].not_comparable = reason
    checks: dict = {}
    for rnd in range(1, repeat + 1):
        order = versions if rnd % 2 else list(reversed(versions))
        for s in scenarios:
            for v in order:
                cell = cells[(s, v)]
                if cell.not_comparable is not None:
                    continue
                outcome = run_once(s, v)
                cell.runs.append(outcome)
                known = checks.setdefault(s, [])
                known.extend(c for c in outcome.verdicts if c not in known)
                on_progress(s, v, rnd, outcome)
    return MatrixResult(list(scenarios), list(versions), cells, checks, repeat, target)


# --- fanning out over a CI system's matrix -------------------------------------------


class MatrixMergeError(ValueError):
    """Parts that cannot be joined into one matrix (exit code 2), with the reason."""


@dataclass(frozen=True)
class Job:
    index: int                      # 1-based, as --job K takes it
    of: int                         # the number of jobs in the plan
    scenarios: tuple                # scenario names, each run across every release
    estimate_s: float               # planned time of its runs (rounds x releases x each run's plan)


def plan_jobs(estimates: dict, versions: Sequence[str], repeat: int, n: int) -> list[Job]:
    """Split scenarios (name -> planned seconds of one run) into at most ``n`` jobs,
    each scenario whole (across all ``versions``: its ratios are measured in one
    process). Longest first onto the least loaded job; deterministic for the same
    scenarios whatever order they were given in, so ``--job K --of N`` finds the
    job ``--plan N`` described."""
    if n < 1:
        raise MatrixUsageError(f"a plan needs at least one job, got {n}")
    if not estimates:
        raise MatrixUsageError("a plan needs at least one scenario")
    count = min(n, len(estimates))
    per_run = {name: max(float(s), 0.0) * len(versions) * repeat for name, s in estimates.items()}
    loads = [0.0] * count
    members: list = [[] for _ in range(count)]
    for name in sorted(per_run, key=lambda k: (-per_run[k], k)):
        j = min(range(count), key=lambda i: (loads[i], i))
        members[j].append(name)
        loads[j] += per_run[name]
    return [Job(i + 1, count, tuple(sorted(members[i])), round(loads[i], 1)) for i in range(count)]


def plan_fingerprint(scenario_hashes: dict, versions: Sequence[str], of: int) -> str:
    """What every part of one plan shares: the scenarios as written, the releases, N."""
    text = json.dumps({"scenarios": sorted(scenario_hashes.items()), "versions": list(versions),
                       "of": of}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_include(jobs: Sequence[Job], versions: Sequence[str], repeat: int, target: str,
                 fingerprint: str) -> dict:
    """The plan as GitHub Actions takes it: ``strategy: {matrix: ${{ fromJSON(plan) }}}``.
    Only ``include`` at the top (any other key would become a matrix dimension)."""
    return {"include": [{"job": j.index, "of": j.of, "scenarios": " ".join(j.scenarios),
                         "versions": ",".join(versions), "repeat": repeat, "target": target,
                         "cells": len(j.scenarios) * len(versions), "estimate_s": j.estimate_s,
                         "plan": fingerprint} for j in jobs]}


def select_job(jobs: Sequence[Job], k: int, n: int) -> Job:
    """Job ``k`` of ``n`` (``--job K --of N``), or a usage error saying what the plan has."""
    if not jobs:
        raise MatrixUsageError("no scenario to run")
    actual = jobs[0].of
    if n != actual:
        raise MatrixUsageError(f"--of {n}: these {sum(len(j.scenarios) for j in jobs)} scenario(s) "
                               f"split into {actual} job(s) (at most one per scenario); "
                               f"use the plan's \"of\" value, --of {actual}")
    if not 1 <= k <= actual:
        raise MatrixUsageError(f"--job {k}: expected 1..{actual}")
    return jobs[k - 1]


CI_VARIABLES = ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB",
                "RUNNER_NAME", "RUNNER_OS", "RUNNER_ARCH", "CI_JOB_ID", "CI_RUNNER_DESCRIPTION")


def part_record(result: MatrixResult, job: Job, fingerprint: str, environment: dict,
                scenario_hashes: dict, env: Optional[dict] = None) -> dict:
    """One job's matrix, with where it ran: the part ``--merge`` joins."""
    env = os.environ if env is None else env
    data = result.to_dict()
    data["part"] = {"job": job.index, "of": job.of, "plan": fingerprint,
                    "scenarios": list(job.scenarios),
                    "scenario_hashes": {k: scenario_hashes[k] for k in job.scenarios},
                    "environment": environment,
                    "ci": {k: env[k] for k in CI_VARIABLES if env.get(k)}}
    return data


def _where(path: str, part: dict) -> str:
    env, ci = part.get("environment") or {}, part.get("ci") or {}
    runner = ci.get("RUNNER_NAME") or ci.get("CI_RUNNER_DESCRIPTION")
    return (f"{path} (job {part.get('job')}/{part.get('of')}, host {env.get('hostname', '?')}"
            + (f", runner {runner}" if runner else "")
            + f", {env.get('cpu_model', '?')}, {env.get('cores_usable', '?')} usable cores)")


def merge_parts(parts: Sequence[tuple]) -> MatrixResult:
    """Join ``(path, part record)`` pairs into one matrix. Refused (MatrixMergeError):
    a file that is no part, parts of different plans, and a scenario present in two
    parts (its row would hold ratios from two machines or two runs). Parts from
    different machines are joined row by row, each row from one part, and the
    result says which part (and machine) each row came from."""
    from ..evidence.environment import check
    if not parts:
        raise MatrixMergeError("no part to merge")
    for path, data in parts:
        if not isinstance(data, dict) or data.get("kind") != "matrix" or "part" not in data:
            raise MatrixMergeError(f"{path}: not a part of a fanned-out matrix (written by "
                                   f"busbench matrix ... --job K --of N --json FILE)")
    first_path, first = parts[0]
    for path, data in parts[1:]:
        for key, what in (("target", "target"), ("versions", "releases")):
            if data.get(key) != first.get(key):
                raise MatrixMergeError(f"{path} and {first_path} measured different {what} "
                                       f"({data.get(key)} vs {first.get(key)}): not one matrix")
        if data["part"].get("plan") != first["part"].get("plan"):
            raise MatrixMergeError(f"{path} and {first_path} come from different plans (plan "
                                   f"{data['part'].get('plan')} vs {first['part'].get('plan')}: "
                                   f"other scenarios, releases or job count); merge the parts "
                                   f"of one plan")
    owner: dict = {}
    for path, data in parts:
        for sc in data["scenarios"]:
            if sc in owner:
                other_path, other = owner[sc]
                verdict = check(other["part"].get("environment") or {},
                                data["part"].get("environment") or {}, other_path, path)
                why = ("they ran on different machines: " + "; ".join(verdict.refusals)
                       if not verdict.comparable else
                       "they are two runs (a row's ratios must be measured inside one job)")
                raise MatrixMergeError(
                    f"scenario {sc} is in {_where(other_path, other['part'])} and in "
                    f"{_where(path, data['part'])}: its row cannot hold ratios from both, "
                    f"{why}; merge one part per job")
            owner[sc] = (path, data)
    versions = list(first["versions"])
    scenarios, cells, checks, provenance, notes = [], {}, {}, {}, []
    repeats = set()
    for path, data in sorted(parts, key=lambda p: p[1]["part"]["job"]):
        one = MatrixResult.from_dict(data)
        repeats.add(one.repeat)
        for sc in one.scenarios:
            scenarios.append(sc)
            checks[sc] = one.checks.get(sc, [])
            provenance[sc] = _where(path, data["part"])
            for v in versions:
                cells[(sc, v)] = one.cells[(sc, v)]
    of = first["part"]["of"]
    present = {data["part"]["job"] for _, data in parts}
    missing = [k for k in range(1, of + 1) if k not in present]
    if missing:
        notes.append(f"incomplete: job(s) {', '.join(map(str, missing))} of {of} are missing; "
                     f"their scenarios are not in this matrix")
    envs = [(path, data["part"].get("environment") or {}) for path, data in parts]
    differing = []
    for path, env in envs[1:]:
        verdict = check(envs[0][1], env, envs[0][0], path)
        differing.extend(r for r in verdict.refusals if not r.startswith("scenario_hash"))
    if differing:
        notes.append("the parts ran on different machines (" + "; ".join(dict.fromkeys(differing))
                     + "): each row's ratios were measured on one machine; do not compare "
                     "ratios across rows")
    if len(repeats) > 1:
        notes.append(f"the parts ran different numbers of rounds ({sorted(repeats)}); each row "
                     f"says how many it has")
    return MatrixResult(scenarios, versions, cells, checks, max(repeats), first.get("target", "net-mesh"),
                        provenance, notes)
