"""Releases side by side: every check's verdict per release, and what each cost.

``busbench matrix scenarios/net-mesh/*.yaml --versions 0.34.0..0.45.1`` runs
each scenario against each release of net-mesh in one process (each release's
library loaded by path from the wheel cache, see targets/netmesh/releases.py),
rounds interleaved so that machine drift falls on every release alike, and
tabulates which promise holds in which release and the throughput against the
newest: the table a bus's maintainers paste into a release note.

Like ``compare``, this module knows nothing of how a run is done: it is handed
``run_once(scenario_file, version) -> RunOutcome``. A release that cannot be
driven (a symbol missing, a library that will not load) is "not comparable"
in its cells, with the reason, never a crash of the whole matrix.
"""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Optional, Sequence

from ..common.names import NOT_EVALUABLE, NOT_OBSERVABLE

_VERSION = re.compile(r"\d+\.\d+\.\d+")
NOT_COMPARABLE = "not_comparable"


class MatrixUsageError(ValueError):
    """A ``--versions`` spec the user must fix (exit code 2)."""


def version_key(version: str) -> tuple:
    return tuple(int(x) for x in version.split("."))


def parse_versions(spec: str, available: Callable[[], Sequence[str]]) -> list[str]:
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
            raise MatrixUsageError(f"no release of net-mesh in {spec} is known (offline? fill the "
                                   f"cache with `busbench releases fetch VERSION`)")
        return chosen
    versions = [v.strip() for v in spec.split(",") if v.strip()]
    bad = [v for v in versions if not _VERSION.fullmatch(v)]
    if bad or not versions:
        raise MatrixUsageError(f"expected releases like 0.40.0,0.45.1 or a range like "
                               f"0.34.0..0.45.1, got {spec!r}")
    return sorted(dict.fromkeys(versions), key=version_key)


def index_versions(package: str = "net-mesh", timeout_s: float = 60.0) -> list[str]:
    """Releases the package index lists (``pip index versions``); [] when offline."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package,
                               "--disable-pip-version-check"], capture_output=True, text=True,
                              timeout=timeout_s)
    except (subprocess.TimeoutExpired, OSError):
        return []
    for line in done.stdout.splitlines():
        if line.strip().startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",")
                    if _VERSION.fullmatch(v.strip())]
    return []


@dataclass(frozen=True)
class RunOutcome:
    """What the matrix keeps of one run."""
    verdicts: dict                  # check label -> outcome (passed/failed/not_evaluable/...)
    expected: dict                  # check label -> "pass" | "fail" (the scenario's declaration)
    throughput: Optional[float]
    status: str                     # passed | failed | error | timed_out | crashed ...
    error: Optional[str] = None
    crash: Optional[str] = None     # "crashed (SIGSEGV)", "timed out (killed)": the cell says so


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
                    "errors": [r.error for r in cell.runs if r.error]})
        return {"schema_version": 1, "kind": "matrix", "versions": self.versions,
                "newest": self.newest, "repeat": self.repeat, "scenarios": self.scenarios,
                "checks": self.checks, "rows": rows}


def run_matrix(scenarios: Sequence[str], versions: Sequence[str], repeat: int,
               run_once: Callable[[str, str], RunOutcome],
               on_progress: Callable[[str, str, int, RunOutcome], None] = lambda *a: None,
               not_comparable: Callable[[str], Optional[str]] = lambda v: None) -> MatrixResult:
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
    return MatrixResult(list(scenarios), list(versions), cells, checks, repeat)


_SYMBOL = {"passed": "pass", "failed": "FAIL", NOT_EVALUABLE: "n/e", NOT_OBSERVABLE: "n/o",
           NOT_COMPARABLE: "n/c"}


def _cell_text(result: MatrixResult, scenario: str, version: str, check: str) -> str:
    word = result.cells[(scenario, version)].verdict(check)
    return _SYMBOL.get(word, word)


def _ratio_text(result: MatrixResult, scenario: str, version: str) -> str:
    r = result.ratio(scenario, version)
    if r is None or r["ratio_of_medians"] is None:
        crashes = [run.crash for run in result.cells[(scenario, version)].runs if run.crash]
        return crashes[0] if crashes else "-"
    if version == result.newest:
        return "1.00x"
    return f"{r['ratio_of_medians']:.2f}x (paired {r['paired_min']:.2f}-{r['paired_max']:.2f})"


def render_markdown(result: MatrixResult) -> str:
    lines = [f"# net-mesh releases side by side ({', '.join(result.versions)})", "",
             f"{result.repeat} interleaved round(s) per release in one process; throughput "
             f"against {result.newest}. pass / FAIL / n/o (not observable on this release) / "
             f"n/e (not evaluable) / n/c (not comparable: the release cannot be driven).", ""]
    for sc in result.scenarios:
        checks = result.checks.get(sc, [])
        lines += [f"## {sc}", "", "| check | " + " | ".join(result.versions) + " |",
                  "|---|" + "---|" * len(result.versions)]
        for c in checks:
            lines.append(f"| {c} | " + " | ".join(_cell_text(result, sc, v, c)
                                                   for v in result.versions) + " |")
        lines.append("| throughput vs newest | " + " | ".join(
            _ratio_text(result, sc, v) for v in result.versions) + " |")
        declared = sorted({c for v in result.versions for r in result.cells[(sc, v)].runs
                           for c, e in r.expected.items() if e == "fail"})
        if declared:
            lines.append(f"\nDeclared `expect: fail` by the scenario (a known finding: FAIL is the "
                         f"expected outcome): {', '.join(declared)}")
        reasons = {v: result.cells[(sc, v)].not_comparable for v in result.versions
                   if result.cells[(sc, v)].not_comparable}
        for v, why in reasons.items():
            lines.append(f"\n{v} not comparable: {why}")
        lines.append("")
    return "\n".join(lines) + "\n"


_CELL_CLASS = {"pass": "ok", "FAIL": "bad", "n/o": "warn", "n/e": "warn", "n/c": "muted"}


def render_html(result: MatrixResult, command: str = "") -> str:
    """The matrix as one self-contained HTML page (the run report's style, no script)."""
    from html import escape

    from .html import CSS
    parts = [f"<h1>net-mesh releases side by side ({escape(', '.join(result.versions))})</h1>",
             f'<p class="muted">{result.repeat} interleaved round(s) per release in one process; '
             f"throughput against {escape(result.newest)}. pass / FAIL / n/o not observable / "
             "n/e not evaluable / n/c not comparable (the release cannot be driven).</p>"]
    if command:
        parts.append(f"<pre>{escape(command)}</pre>")
    head = "<tr><th>check</th>" + "".join(f"<th>{escape(v)}</th>" for v in result.versions) + "</tr>"
    for sc in result.scenarios:
        declared = sorted({c for v in result.versions for r in result.cells[(sc, v)].runs
                           for c, e in r.expected.items() if e == "fail"})
        rows = []
        for c in result.checks.get(sc, []):
            label = escape(c) + (' <span class="muted">(expect: fail)</span>' if c in declared else "")
            cells = []
            for v in result.versions:
                text = _cell_text(result, sc, v, c)
                cells.append(f'<td class="{_CELL_CLASS.get(text, "")}">{escape(text)}</td>')
            rows.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
        rows.append("<tr><td>throughput vs newest</td>" + "".join(
            f'<td class="num">{escape(_ratio_text(result, sc, v))}</td>' for v in result.versions) + "</tr>")
        parts.append(f"<h2>{escape(sc)}</h2><table>{head}{''.join(rows)}</table>")
        for v in result.versions:
            why = result.cells[(sc, v)].not_comparable
            if why:
                parts.append(f'<p class="muted">{escape(v)} not comparable: {escape(why)}</p>')
    title = "busbench: net-mesh releases side by side"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{CSS}</style></head>\n<body>\n{''.join(parts)}\n"
            "</body></html>\n")


def render_table(result: MatrixResult):
    from rich.table import Table
    table = Table(title=f"net-mesh releases ({result.repeat} interleaved rounds; "
                        f"throughput vs {result.newest})")
    table.add_column("scenario")
    table.add_column("check")
    for v in result.versions:
        table.add_column(v, justify="center")
    for sc in result.scenarios:
        for c in result.checks.get(sc, []):
            table.add_row(sc, c, *[_cell_text(result, sc, v, c) for v in result.versions])
        table.add_row(sc, "throughput", *[_ratio_text(result, sc, v) for v in result.versions],
                      end_section=True)
    return table
