"""Compare variants of a scenario: which settings are faster, and is it real?

This module knows nothing of how a run is done. It turns ``--vary KEY=V1,V2``
options into variants (each a set of ``--set KEY=VALUE`` overrides), decides
the order of runs, calls a ``run_once(variant) -> float`` it is handed, and
turns the samples into summaries, bootstrap intervals and verdicts (pyperf's
rule: say "significant" or "not significant", never a bare ratio). The
renderers are pure functions of the one ``ComparisonResult``.

Run order: one warm-up run of every variant first (compiles kernels, warms
caches and the CPU clock; its figure is kept apart and never counted), then
``repeat`` rounds in which every variant runs once. Rounds alternate their
order (A B, B A, A B, ...) so that neither variant always runs first or last
in a round: a drift in the machine (thermal, a neighbour on the VM) or a cost
carried from one run into the next falls on both sides alike.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional, Sequence, Union

from rich.table import Table

from . import stats

SCHEMA_VERSION = 1

#: the round number of the warm-up runs in a schedule
WARMUP_ROUND = 0

_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_OPENERS = {"{": "}", "[": "]"}


class CompareUsageError(ValueError):
    """A ``--vary`` option or compare argument the user must fix (exit code 2)."""


class PlotUnavailable(RuntimeError):
    """Plotting was asked for but matplotlib is not installed."""


@dataclass(frozen=True)
class Variant:
    label: str  # "bus.counters=padded, load.producers=1"
    overrides: tuple[str, ...]  # ("bus.counters=padded", "load.producers=1"), as --set takes them

    @property
    def settings(self) -> tuple[tuple[str, str], ...]:
        """The overrides as ``(key, value)`` pairs."""
        return tuple(tuple(override.split("=", 1)) for override in self.overrides)


class ScheduleEntry(NamedTuple):
    round: int  # WARMUP_ROUND for the warm-up run, then 1..repeat
    variant_index: int

    @property
    def is_warmup(self) -> bool:
        return self.round == WARMUP_ROUND


@dataclass(frozen=True)
class Progress:
    """Handed to ``on_progress`` after each run."""
    done: int  # runs finished, warm-ups included
    total: int
    entry: ScheduleEntry
    variant: Variant
    value: float


@dataclass(frozen=True)
class Comparison:
    variant_index: int
    baseline_index: int
    ratio: float  # median(variant) / median(baseline)
    low: float  # bootstrap interval of the ratio; nan with a single sample
    high: float
    verdict: str  # stats.FASTER | stats.SLOWER | stats.NO_DIFFERENCE


@dataclass(frozen=True)
class ComparisonResult:
    metric: str
    higher_is_better: bool
    repeat: int
    confidence: float
    variants: tuple[Variant, ...]
    samples: tuple[tuple[float, ...], ...]  # per variant, counted rounds in order
    warmup_samples: tuple[float, ...]  # per variant, the discarded warm-up figure
    summaries: tuple[stats.Summary, ...]
    median_intervals: tuple[tuple[float, float], ...]  # per variant, bootstrap CI of its median
    comparisons: tuple[Comparison, ...]  # every variant but the first, against the first
    warnings: tuple[str, ...]
    cpu_governor: Optional[str] = None
    environment: dict = field(default_factory=dict)

    @property
    def varied_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.variants[0].settings)

    def comparison_for(self, variant_index: int) -> Optional[Comparison]:
        for comparison in self.comparisons:
            if comparison.variant_index == variant_index:
                return comparison
        return None

    def to_dict(self) -> dict:
        num = stats.json_number
        variants = []
        for index, variant in enumerate(self.variants):
            low, high = self.median_intervals[index]
            variants.append({
                "label": variant.label,
                "overrides": list(variant.overrides),
                "samples": list(self.samples[index]),
                "warmup": num(self.warmup_samples[index]),
                "summary": self.summaries[index].to_dict(),
                "median_ci": [num(low), num(high)],
            })
        comparisons = [{
            "variant": self.variants[c.variant_index].label,
            "baseline": self.variants[c.baseline_index].label,
            "ratio": num(c.ratio),
            "ci_low": num(c.low),
            "ci_high": num(c.high),
            "verdict": c.verdict,
        } for c in self.comparisons]
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "comparison",
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "repeat": self.repeat,
            "confidence": self.confidence,
            "varied_keys": list(self.varied_keys),
            "variants": variants,
            "comparisons": comparisons,
            "warnings": list(self.warnings),
            "cpu_governor": self.cpu_governor or "unknown",
            "environment": dict(self.environment),
        }


# ---------------------------------------------------------------- variants


def _split_values(text: str, spec: str) -> list[str]:
    """Split on commas outside ``{}``/``[]`` and quotes, so YAML flow values survive:
    ``load.keys=uniform,{hot: {shard: 0, share: 0.9}}`` gives two values."""
    values, current, closers, quote = [], [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _OPENERS:
            closers.append(_OPENERS[char])
        elif char in "}]":
            if not closers or closers.pop() != char:
                raise CompareUsageError(f"--vary {spec!r}: unbalanced {char!r} in the values")
        elif char == "," and not closers:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quote or closers:
        raise CompareUsageError(f"--vary {spec!r}: unclosed quote or bracket in the values")
    values.append("".join(current).strip())
    return values


def parse_vary(spec: str) -> tuple[str, list[str]]:
    """``"bus.counters=padded,packed"`` -> ``("bus.counters", ["padded", "packed"])``.

    Values stay strings; the scenario loader parses each as YAML, as for ``--set``.
    """
    if "=" not in spec:
        raise CompareUsageError(
            f"--vary {spec!r} has no '=': write KEY=VALUE1,VALUE2, e.g. bus.counters=padded,packed")
    key, _, value_text = spec.partition("=")
    key = key.strip()
    if not key:
        raise CompareUsageError(
            f"--vary {spec!r} has an empty key: write KEY=VALUE1,VALUE2, e.g. load.producers=1,2")
    if not _KEY_PATTERN.fullmatch(key):
        raise CompareUsageError(
            f"--vary {spec!r}: {key!r} is not a dotted key such as bus.counters or load.producers")
    if not value_text.strip():
        raise CompareUsageError(f"--vary {spec!r} lists no values: give one or more after '='")
    values = _split_values(value_text, spec)
    if any(not value for value in values):
        raise CompareUsageError(f"--vary {spec!r} has an empty value (two commas in a row, "
                                "or a comma at either end)")
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise CompareUsageError(f"--vary {spec!r} lists {', '.join(duplicates)} more than once")
    return key, values


def variants(vary_specs: Sequence[Union[str, tuple[str, Sequence[str]]]]) -> list[Variant]:
    """Every combination of the ``--vary`` values, the first value of each key first.

    Each spec is a ``--vary`` string or an already parsed ``(key, values)`` pair.
    """
    parsed = [parse_vary(spec) if isinstance(spec, str) else (spec[0], list(spec[1]))
              for spec in vary_specs]
    if not parsed:
        raise CompareUsageError("compare needs at least one --vary KEY=VALUE1,VALUE2")
    keys = [key for key, _ in parsed]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise CompareUsageError(f"--vary given more than once for {', '.join(repeated)}: "
                                "list all its values in one option, e.g. KEY=V1,V2,V3")
    result = []
    for combination in itertools.product(*(values for _, values in parsed)):
        overrides = tuple(f"{key}={value}" for key, value in zip(keys, combination))
        result.append(Variant(label=", ".join(overrides), overrides=overrides))
    if len(result) < 2:
        raise CompareUsageError(
            f"only one variant ({result[0].label}): give a --vary key two or more values")
    return result


def schedule(variants: Sequence[Variant], repeat: int) -> list[ScheduleEntry]:
    """Warm-up of every variant, then ``repeat`` rounds alternating A B / B A order."""
    if repeat < 1:
        raise CompareUsageError(f"--repeat must be at least 1, got {repeat}")
    if not variants:
        raise CompareUsageError("nothing to schedule: no variants")
    forward = list(range(len(variants)))
    entries = [ScheduleEntry(WARMUP_ROUND, index) for index in forward]
    for round_number in range(1, repeat + 1):
        order = forward if round_number % 2 == 1 else forward[::-1]
        entries.extend(ScheduleEntry(round_number, index) for index in order)
    return entries


# ---------------------------------------------------------------- running


def run_comparison(variants: Sequence[Variant], repeat: int,
                   run_once: Callable[[Variant], float], metric_name: str,
                   on_progress: Optional[Callable[[Progress], None]] = None, *,
                   higher_is_better: bool = True, confidence: float = 0.95,
                   busy_threads: Optional[int] = None, cores: Optional[int] = None,
                   environment: Optional[dict] = None, seed: int = 0) -> ComparisonResult:
    """Run the schedule, then summarise each variant and compare it with the first.

    ``busy_threads`` (threads a run keeps busy) feeds the "more threads than
    cores" warning; ``cores`` defaults to this machine's count.
    """
    variants = tuple(variants)
    entries = schedule(variants, repeat)
    samples: list[list[float]] = [[] for _ in variants]
    warmups = [math.nan] * len(variants)
    for done, entry in enumerate(entries, start=1):
        variant = variants[entry.variant_index]
        value = float(run_once(variant))
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{metric_name} of {variant.label} came out as {value}: "
                             "a sample must be a positive, finite number")
        if entry.is_warmup:
            warmups[entry.variant_index] = value
        else:
            samples[entry.variant_index].append(value)
        if on_progress is not None:
            on_progress(Progress(done, len(entries), entry, variant, value))

    summaries = tuple(stats.summarize(values) for values in samples)
    median_intervals = tuple(
        stats.bootstrap_median_ci(values, confidence=confidence, seed=seed)[1:]
        for values in samples)
    comparisons = []
    for index in range(1, len(variants)):
        ratio, low, high = stats.bootstrap_ratio_ci(samples[0], samples[index],
                                                    confidence=confidence, seed=seed)
        comparisons.append(Comparison(index, 0, ratio, low, high,
                                      stats.verdict(low, high, higher_is_better)))
    warnings = stats.noise_warnings(
        {variant.label: summary for variant, summary in zip(variants, summaries)},
        busy_threads, cores if cores is not None else os.cpu_count())
    governor_warning = stats.cpu_governor_warning()
    if governor_warning:
        warnings.append(governor_warning)
    return ComparisonResult(
        metric=metric_name, higher_is_better=higher_is_better, repeat=repeat,
        confidence=confidence, variants=variants,
        samples=tuple(tuple(values) for values in samples), warmup_samples=tuple(warmups),
        summaries=summaries, median_intervals=median_intervals,
        comparisons=tuple(comparisons), warnings=tuple(warnings),
        cpu_governor=stats.read_cpu_governor(), environment=dict(environment or {}))


# ---------------------------------------------------------------- renderers


def _versus_baseline(result: ComparisonResult, index: int) -> tuple[str, str]:
    """``("1.98x [1.95-2.02]", verdict)`` for a variant; the baseline says so."""
    comparison = result.comparison_for(index)
    if comparison is None:
        return "baseline", ""
    if math.isnan(comparison.low):
        return f"{comparison.ratio:.2f}x [no interval]", comparison.verdict
    return (f"{comparison.ratio:.2f}x [{comparison.low:.2f}-{comparison.high:.2f}]",
            comparison.verdict)


def _rows(result: ComparisonResult) -> list[tuple[str, ...]]:
    """One row of text cells per variant, shared by the table and the Markdown."""
    rows = []
    for index, (variant, summary) in enumerate(zip(result.variants, result.summaries)):
        ratio_text, verdict_text = _versus_baseline(result, index)
        rows.append((variant.label, str(summary.n), stats.format_si(summary.median),
                     stats.format_si(summary.min), stats.format_si(summary.max),
                     stats.format_cv(summary), ratio_text, verdict_text))
    return rows


def _headers(result: ComparisonResult) -> tuple[str, ...]:
    level = f"{result.confidence:.0%}"
    return ("variant", "n", f"median {result.metric}", "min", "max", "CV",
            f"vs baseline ({level} CI)", "verdict")


_VERDICT_STYLES = {stats.FASTER: "green", stats.SLOWER: "red", stats.NO_DIFFERENCE: "dim"}


def render_table(result: ComparisonResult) -> Table:
    """A rich table: one row per variant, the first being the baseline."""
    table = Table(title=f"{result.metric}: {result.repeat} interleaved rounds, warm-up discarded",
                  caption="\n".join(result.warnings) or None, caption_style="yellow")
    for position, header in enumerate(_headers(result)):
        table.add_column(header, justify="left" if position in (0, 7) else "right")
    for summary, row in zip(result.summaries, _rows(result)):
        cells = list(row)
        if summary.cv > stats.CV_WARNING_THRESHOLD:
            cells[5] = f"[yellow]{cells[5]}[/yellow]"
        style = _VERDICT_STYLES.get(cells[7])
        if style:
            cells[7] = f"[{style}]{cells[7]}[/{style}]"
        table.add_row(*cells)
    return table


def render_markdown(result: ComparisonResult) -> str:
    """The comparison as a Markdown section: a table, then any warnings."""
    headers = _headers(result)
    lines = [
        f"## Comparison: {result.metric}",
        "",
        f"{result.repeat} rounds, variants interleaved (order alternating each round), "
        "one warm-up run each discarded. Ratios are medians against the first variant, "
        f"with a {result.confidence:.0%} bootstrap interval.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i in (0, 7) else "---:" for i in range(len(headers))) + "|",
    ]
    for row in _rows(result):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
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


def _as_number(text: str) -> Optional[float]:
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
