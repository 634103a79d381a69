"""A release matrix as people read it: Markdown, a self-contained HTML page, a rich table.

Pure functions of the one ``verdicts.matrix.MatrixResult``."""
from __future__ import annotations

from ..common.names import NOT_EVALUABLE, NOT_OBSERVABLE
from ..verdicts.matrix import NOT_COMPARABLE, MatrixResult

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


def _title(result: MatrixResult) -> str:
    return f"{result.target} releases side by side ({', '.join(result.versions)})"


def _rounds_text(result: MatrixResult) -> str:
    if result.provenance:
        return (f"{result.repeat} interleaved round(s) per release, each scenario's releases in one "
                f"process of one CI job")
    return f"{result.repeat} interleaved round(s) per release in one process"


def render_markdown(result: MatrixResult) -> str:
    lines = [f"# {_title(result)}", "",
             f"{_rounds_text(result)}; throughput "
             f"against {result.newest}. pass / FAIL / n/o (not observable on this release) / "
             f"n/e (not evaluable) / n/c (not comparable: the release cannot be driven).", ""]
    lines += [f"**{n}**" for n in result.notes] + ([""] if result.notes else [])
    for sc in result.scenarios:
        checks = result.checks.get(sc, [])
        lines += [f"## {sc}", ""]
        if sc in result.provenance:
            lines += [f"Measured by {result.provenance[sc]}.", ""]
        lines += ["| check | " + " | ".join(result.versions) + " |",
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
    parts = [f"<h1>{escape(_title(result))}</h1>",
             f'<p class="muted">{escape(_rounds_text(result))}; '
             f"throughput against {escape(result.newest)}. pass / FAIL / n/o not observable / "
             "n/e not evaluable / n/c not comparable (the release cannot be driven).</p>"]
    parts += [f'<p class="bad">{escape(n)}</p>' for n in result.notes]
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
        where = (f'<p class="muted">measured by {escape(result.provenance[sc])}</p>'
                 if sc in result.provenance else "")
        parts.append(f"<h2>{escape(sc)}</h2>{where}<table>{head}{''.join(rows)}</table>")
        for v in result.versions:
            why = result.cells[(sc, v)].not_comparable
            if why:
                parts.append(f'<p class="muted">{escape(v)} not comparable: {escape(why)}</p>')
    title = f"busbench: {result.target} releases side by side"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{''.join(parts)}\n"
            "</body></html>\n")


def render_table(result: MatrixResult):
    from rich.table import Table
    table = Table(title=f"{result.target} releases ({result.repeat} interleaved rounds; "
                        f"throughput vs {result.newest})",
                  caption="\n".join(result.notes) or None)
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
