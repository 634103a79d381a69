"""A comparison as people read it: a rich table, Markdown, a plot.

Pure functions of the one ``verdicts.compare.ComparisonResult``: the comparison
decides, these only say it (hyperfine's export files)."""
from __future__ import annotations

import math

from rich.table import Table

from ..verdicts import precision, stats
from ..verdicts.compare import ComparisonResult


class PlotUnavailable(RuntimeError):
    """Plotting was asked for but matplotlib is not installed."""



def _versus_baseline(result: ComparisonResult, index: int) -> tuple[str, str]:
    """``("1.98x [1.95-2.02]", verdict)`` for a variant; the baseline says so."""
    comparison = result.comparison_for(index)
    if comparison is None:
        return "baseline", ""
    if math.isnan(comparison.low):
        return f"{comparison.ratio:.2f}x [no interval]", comparison.verdict
    return (f"{comparison.ratio:.2f}x [{comparison.low:.2f}-{comparison.high:.2f}]",
            comparison.verdict)


def _medians_text(result: ComparisonResult, index: int) -> str:
    comparison = result.comparison_for(index)
    if comparison is None:
        return "-"
    if math.isnan(comparison.medians_low):
        return f"{comparison.medians_ratio:.2f}x"
    return (f"{comparison.medians_ratio:.2f}x "
            f"[{comparison.medians_low:.2f}-{comparison.medians_high:.2f}]")


def _resolution_text(result: ComparisonResult, index: int) -> str:
    comparison = result.comparison_for(index)
    if comparison is None:
        return ""
    return "-" if math.isnan(comparison.resolution) else f"±{comparison.resolution:.1%}"


def _rows(result: ComparisonResult) -> list[tuple[str, ...]]:
    """One row of text cells per variant, shared by the table and the Markdown."""
    rows = []
    for index, (variant, summary) in enumerate(zip(result.variants, result.summaries)):
        ratio_text, verdict_text = _versus_baseline(result, index)
        rows.append((variant.label, str(summary.n), stats.format_si(summary.median),
                     stats.format_si(summary.min), stats.format_si(summary.max),
                     stats.format_cv(summary), ratio_text, _resolution_text(result, index),
                     verdict_text, _medians_text(result, index)))
    return rows


#: the columns holding text (left-aligned); the verdict's position
_TEXT_COLUMNS = (0, 8)
_VERDICT_COLUMN = 8


def _headers(result: ComparisonResult) -> tuple[str, ...]:
    level = f"{result.confidence:.0%}"
    return ("variant", "n", f"median {result.metric}", "min", "max", "CV",
            f"paired vs baseline ({level} CI)", "resolution", "verdict",
            "ratio of medians [bootstrap CI]")


def _run_line(result: ComparisonResult) -> str:
    """How the rounds were run and why they stopped."""
    warm = (f"{result.warmup_rounds} warm-up round(s) discarded"
            + ("" if result.warmup_settled is None
               else " (settled)" if result.warmup_settled else " (did not settle)"))
    text = f"{result.repeat} interleaved rounds, {warm}"
    if result.stopping:
        reasons = sorted(set(result.stopping["stopped_by"].values()))
        why = {"precision": f"precision ±{result.stopping['precision']:.1%} reached (projected "
                            "from the rounds' spread; the resolution column is the interval's own)",
               "significant": "a significant difference found",
               "budget": f"time budget {result.stopping['max_time_s']:g} s spent"}
        text += f"; stopped: {', '.join(why[r] for r in reasons)} after {result.stopping['elapsed_s']:.0f} s"
    return text


def describe_lines(result: ComparisonResult) -> list[str]:
    """One sentence per comparison: the verdict and the smallest change it could see."""
    lines = []
    for c in result.comparisons:
        lines.append(f"{result.variants[c.variant_index].label} vs "
                     f"{result.variants[c.baseline_index].label}: {c.description}")
    metric = result.metric + (f" ({result.metric_description})" if result.metric_description else "")
    lines.append(f"metric: {metric}; estimate: {precision.PAIRED_METHOD}; "
                 f"resolution: {precision.RESOLUTION_METHOD}.")
    return lines


_VERDICT_STYLES = {stats.FASTER: "green", stats.SLOWER: "red", stats.NO_DIFFERENCE: "dim"}


def render_table(result: ComparisonResult) -> Table:
    """A rich table: one row per variant, the first being the baseline."""
    table = Table(title=f"{result.metric}: {_run_line(result)}",
                  caption="\n".join(result.warnings) or None, caption_style="yellow")
    for position, header in enumerate(_headers(result)):
        table.add_column(header, justify="left" if position in _TEXT_COLUMNS else "right")
    for summary, row in zip(result.summaries, _rows(result)):
        cells = list(row)
        if summary.cv > stats.CV_WARNING_THRESHOLD:
            cells[5] = f"[yellow]{cells[5]}[/yellow]"
        style = _VERDICT_STYLES.get(cells[_VERDICT_COLUMN])
        if style:
            cells[_VERDICT_COLUMN] = f"[{style}]{cells[_VERDICT_COLUMN]}[/{style}]"
        table.add_row(*cells)
    return table


def render_markdown(result: ComparisonResult) -> str:
    """The comparison as a Markdown section: a table, then any warnings."""
    headers = _headers(result)
    lines = [
        f"## Comparison: {result.metric}",
        "",
        (f"{_run_line(result)}; variants interleaved (order alternating each round). "
         "Primary: the median of per-round ratios against the first variant, with a "
         "distribution-free interval; beside it the ratio of medians with a bootstrap interval."),
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i in _TEXT_COLUMNS else "---:" for i in range(len(headers))) + "|",
    ]
    for row in _rows(result):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += [""] + [f"- {line}" for line in describe_lines(result)]
    if result.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [f"- {warning}" for warning in result.warnings]
    return "\n".join(lines) + "\n"


def ensure_plot_available() -> None:
    """Raise PlotUnavailable now, so a ``--plot`` option fails before a long run."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'busbench[plot]'") from None


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def render_plot(result: ComparisonResult, path) -> None:
    """Medians with their bootstrap intervals as whiskers, written to ``path``.

    One varied key with numeric values: a line over the values. Otherwise bars,
    one per variant.
    """
    ensure_plot_available()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    medians = [summary.median for summary in result.summaries]
    # A missing interval (one sample) draws no whisker rather than failing.
    below = [0.0 if math.isnan(low) else median - low
             for median, (low, _) in zip(medians, result.median_intervals)]
    above = [0.0 if math.isnan(high) else high - median
             for median, (_, high) in zip(medians, result.median_intervals)]
    keys = result.varied_keys
    single_key_values = [variant.settings[0][1] for variant in result.variants]
    numbers = [_as_number(value) for value in single_key_values]

    figure = Figure(figsize=(max(6.0, 1.2 * len(medians)), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(keys) == 1 and all(number is not None for number in numbers):
        axes.errorbar(numbers, medians, yerr=[below, above], marker="o", capsize=4)
        axes.set_xlabel(keys[0])
    else:
        labels = single_key_values if len(keys) == 1 else [v.label for v in result.variants]
        positions = range(len(medians))
        axes.bar(positions, medians, yerr=[below, above], capsize=6, color="#4c72b0")
        axes.set_xticks(list(positions), labels, rotation=0 if len(keys) == 1 else 20,
                        ha="center" if len(keys) == 1 else "right")
        if len(keys) == 1:
            axes.set_xlabel(keys[0])
    axes.set_ylabel(f"median {result.metric}")
    # SI labels (8M, 640M) instead of matplotlib's "1e6" offset, which collides with the title.
    from matplotlib.ticker import FuncFormatter
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: stats.format_si(value)))
    axes.set_title(f"{result.metric}: median of {result.repeat} rounds, "
                   f"{result.confidence:.0%} bootstrap interval")
    axes.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(path)
