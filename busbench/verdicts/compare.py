"""Compare variants of a scenario: which settings are faster, and is it real?

This module knows nothing of how a run is done. It turns ``--vary KEY=V1,V2``
options into variants (each a set of ``--set KEY=VALUE`` overrides), decides
the order of runs, calls a ``run_once(variant) -> float`` it is handed, and
turns the samples into summaries, bootstrap intervals and verdicts (pyperf's
rule: say "significant" or "not significant", never a bare ratio). The
renderers (reports/compare.py) are pure functions of the one ``ComparisonResult``.

Run order: one warm-up run of every variant first (compiles kernels, warms
caches and the CPU clock; its figure is kept apart and never counted), then
``repeat`` rounds in which every variant runs once. Rounds alternate their
order (A B, B A, A B, ...) so that neither variant always runs first or last
in a round: a drift in the machine (thermal, a neighbour on the VM) or a cost
carried from one run into the next falls on both sides alike.

The primary estimate is paired (``precision.paired_ratio``): the median of
the per-round ratios B/A with a distribution-free interval, because a round's
two runs share the machine's state of the moment. The ratio of medians with
its bootstrap interval is reported beside it. Every comparison carries its
resolution, the smallest change it could have seen. With a ``SequentialPlan``
(``--precision 5% --max-time 120s``) rounds are added until the interval is
that narrow or the budget is spent (``precision.SequentialPlan`` says why that
keeps the false-alarm rate). Warm-up can run until the rate settles
(``warmup="settle"``), and rounds a placement change spoiled can be dropped by
``precision.spoiled_rounds``' rule, always reported.
"""
from __future__ import annotations

import itertools
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from . import precision, stats
from ..scenario.thresholds import METRICS

SCHEMA_VERSION = 2

#: warm-up "settle": rounds of warm-up until each variant's last two warm-up
#: figures are within this fraction of each other ...
SETTLE_TOLERANCE = 0.05
#: ... or this many warm-up rounds have run (then the comparison says it did not settle)
MAX_WARMUP_ROUNDS = 6
WARMUP_MODES = ("once", "settle")

#: the round number of the warm-up runs in a schedule
WARMUP_ROUND = 0

_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_OPENERS = {"{": "}", "[": "]"}


class CompareUsageError(ValueError):
    """A ``--vary`` option or compare argument the user must fix (exit code 2)."""



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
    total: int | None  # None when rounds are added until a precision is reached
    entry: ScheduleEntry
    variant: Variant
    value: float


@dataclass(frozen=True)
class Comparison:
    variant_index: int
    baseline_index: int
    ratio: float  # the primary (paired) estimate: median of per-round ratios variant / baseline
    low: float  # its distribution-free interval; nan with too few rounds
    high: float
    verdict: str  # stats.FASTER | stats.SLOWER | stats.NO_DIFFERENCE
    estimate: precision.Estimate | None = None  # the paired estimate, with its resolution
    medians_ratio: float = math.nan  # median(variant) / median(baseline), the secondary view
    medians_low: float = math.nan  # its bootstrap interval
    medians_high: float = math.nan
    dropped_rounds: tuple[int, ...] = ()  # 1-based rounds dropped as spoiled (never silently)
    description: str = ""  # the verdict in words, with the resolution

    @property
    def resolution(self) -> float:
        return self.estimate.resolution if self.estimate is not None else math.nan


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
    cpu_governor: str | None = None
    environment: dict = field(default_factory=dict)
    metric_description: str = ""
    warmup_rounds: int = 1
    warmup_settled: bool | None = None  # None: one fixed warm-up round ("once")
    stopping: dict | None = None  # --precision: the plan, why it stopped, time spent
    noise: dict = field(default_factory=dict)  # the noise-reduction switches used
    # rounds lost to a run that ended without a figure (a crash, a hang): each with its reason
    lost_rounds: tuple = ()

    @property
    def varied_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.variants[0].settings)

    def comparison_for(self, variant_index: int) -> Comparison | None:
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
            "resolution": num(c.resolution),
            "description": c.description,
            "paired": c.estimate.to_dict() if c.estimate is not None else None,
            "ratio_of_medians": {"ratio": num(c.medians_ratio), "ci_low": num(c.medians_low),
                                 "ci_high": num(c.medians_high),
                                 "method": "median(variant) / median(baseline), percentile "
                                           "bootstrap resampling each side independently"},
            "dropped_rounds": list(c.dropped_rounds),
        } for c in self.comparisons]
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "comparison",
            "metric": self.metric,
            "metric_description": self.metric_description,
            "higher_is_better": self.higher_is_better,
            "repeat": self.repeat,
            "confidence": self.confidence,
            "warmup_rounds": self.warmup_rounds,
            "lost_rounds": [dict(r) for r in self.lost_rounds],
            "warmup_settled": self.warmup_settled,
            "stopping": self.stopping,
            "noise_reduction": dict(self.noise),
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


def variants(vary_specs: Sequence[str | tuple[str, Sequence[str]]]) -> list[Variant]:
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


def round_order(variant_count: int, round_number: int) -> list[int]:
    """The order of variants in a counted round: forward in odd rounds, reversed in even ones."""
    forward = list(range(variant_count))
    return forward if round_number % 2 == 1 else forward[::-1]


def _settled(warmups: Sequence[Sequence[float]]) -> bool:
    """Each variant's last two warm-up figures within SETTLE_TOLERANCE of each other."""
    for values in warmups:
        if len(values) < 2:
            return False
        last, before = values[-1], values[-2]
        if abs(last - before) / max(last, before) > SETTLE_TOLERANCE:
            return False
    return True


def _compare_pair(reference: Sequence[float], values: Sequence[float], index: int,
                  confidence: float, higher_is_better: bool, seed: int, drop_spoiled: bool,
                  estimate: precision.Estimate | None = None) -> Comparison:
    dropped: list[int] = []
    if drop_spoiled:
        dropped = precision.spoiled_rounds(reference, values)
    kept_a = [v for i, v in enumerate(reference) if i not in dropped]
    kept_b = [v for i, v in enumerate(values) if i not in dropped]
    if estimate is None or dropped:
        estimate = precision.paired_ratio(kept_a, kept_b, confidence)
    ratio, low, high = stats.bootstrap_ratio_ci(kept_a, kept_b, confidence=confidence, seed=seed)
    return Comparison(index, 0, estimate.point, estimate.low, estimate.high,
                      precision.verdict(estimate, higher_is_better), estimate=estimate,
                      medians_ratio=ratio, medians_low=low, medians_high=high,
                      dropped_rounds=tuple(i + 1 for i in dropped),
                      description=precision.describe(estimate, higher_is_better))


class LostRound(Exception):
    """A run ended without a figure through no fault of the comparison (the bus
    crashed, or hung and was killed): its round is dropped for every variant, so
    that the rounds left stay paired, and listed with this reason."""


#: a comparison gives up when this many rounds were lost (at least, and at least ``repeat``)
MIN_LOST_TO_GIVE_UP = 3


def run_comparison(variants: Sequence[Variant], repeat: int,
                   run_once: Callable[[Variant], float], metric_name: str,
                   on_progress: Callable[[Progress], None] | None = None, *,
                   confidence: float = 0.95,
                   busy_threads: int | None = None, cores: int | None = None,
                   environment: dict | None = None, seed: int = 0,
                   plan: precision.SequentialPlan | None = None, warmup: str = "once",
                   drop_spoiled: bool = False, metric_description: str = "",
                   noise: dict | None = None,
                   clock: Callable[[], float] = time.monotonic) -> ComparisonResult:
    """Run the rounds, then compare every variant with the first.

    Fixed mode: ``repeat`` rounds. With a ``plan`` (``--precision``), rounds
    are added until every comparison has stopped by the plan's rule or the
    budget is spent; ``repeat`` is then unused (the plan has its own minimum).
    ``busy_threads`` (threads a run keeps busy) feeds the "more threads than
    cores" warning; ``cores`` defaults to this machine's count.
    """
    variants = tuple(variants)
    if metric_name not in METRICS:
        raise CompareUsageError(f"unknown metric {metric_name!r}: choose one of {', '.join(METRICS)}")
    higher_is_better = METRICS[metric_name].higher_is_better   # MetricInfo.better decides
    if warmup not in WARMUP_MODES:
        raise CompareUsageError(f"warm-up mode must be one of {', '.join(WARMUP_MODES)}, got {warmup!r}")
    if plan is None:
        schedule(variants, repeat)              # validates repeat and variants
    elif not variants:
        raise CompareUsageError("nothing to schedule: no variants")
    started = clock()
    total = None if plan is not None else len(variants) * (repeat + 1)
    done = 0
    samples: list[list[float]] = [[] for _ in variants]
    warmup_values: list[list[float]] = [[] for _ in variants]

    def measure(entry: ScheduleEntry) -> float:
        nonlocal done
        variant = variants[entry.variant_index]
        value = float(run_once(variant))
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{metric_name} of {variant.label} came out as {value}: "
                             "a sample must be a positive, finite number")
        done += 1
        if on_progress is not None:
            on_progress(Progress(done, total, entry, variant, value))
        return value

    lost: list[dict] = []

    def give_up_if_lost_too_much():
        if len(lost) >= max(MIN_LOST_TO_GIVE_UP, repeat if plan is None else 0):
            raise RuntimeError(f"{len(lost)} rounds lost, the comparison gives up: "
                               + "; ".join(f"round {r['round']}, {r['variant']}: {r['reason']}"
                                           for r in lost[:3]))

    # Warm-up: once, or until every variant's rate settles (bounded).
    warmup_rounds, settled = 0, None
    while True:
        warmup_rounds += 1
        for index in round_order(len(variants), warmup_rounds):
            try:
                warmup_values[index].append(measure(ScheduleEntry(WARMUP_ROUND, index)))
            except LostRound as exc:
                lost.append({"round": "warm-up", "variant": variants[index].label,
                             "reason": str(exc)})
                give_up_if_lost_too_much()
        if warmup == "once":
            break
        settled = _settled(warmup_values)
        if settled or warmup_rounds >= MAX_WARMUP_ROUNDS:
            break

    stopped_by: dict[int, str] = {}
    round_number, round_s, attempt = 0, 0.0, 0
    while True:
        round_number += 1
        attempt += 1
        round_started = clock()
        taken: dict[int, float] = {}
        try:
            for index in round_order(len(variants), round_number):
                taken[index] = measure(ScheduleEntry(round_number, index))
        except LostRound as exc:
            # the round is lost for every variant: the rounds kept stay paired
            lost.append({"round": attempt, "variant": variants[index].label, "reason": str(exc)})
            round_number -= 1
            give_up_if_lost_too_much()
            continue
        for index, value in taken.items():
            samples[index].append(value)
        round_s = clock() - round_started
        if plan is None:
            if round_number >= repeat:
                break
            continue
        elapsed = clock() - started
        for index in range(1, len(variants)):
            if index not in stopped_by:
                why = plan.decide(samples[0], samples[index], elapsed, round_s)
                if why in ("precision", "significant"):
                    stopped_by[index] = why
                elif why == "budget":
                    stopped_by = {i: stopped_by.get(i, "budget") for i in range(1, len(variants))}
        if len(stopped_by) == len(variants) - 1:
            break

    summaries = tuple(stats.summarize(values) for values in samples)
    median_intervals = tuple(
        stats.bootstrap_median_ci(values, confidence=confidence, seed=seed)[1:]
        for values in samples)
    comparisons = []
    for index in range(1, len(variants)):
        estimate, level = None, confidence
        if plan is not None:
            estimate = plan.final_estimate(samples[0], samples[index], stopped_by[index])
            level = estimate.level
        comparisons.append(_compare_pair(samples[0], samples[index], index, level,
                                         higher_is_better, seed, drop_spoiled, estimate))
    warnings = stats.noise_warnings(
        {variant.label: summary for variant, summary in zip(variants, summaries)},
        busy_threads, cores if cores is not None else os.cpu_count())
    governor_warning = stats.cpu_governor_warning()
    if governor_warning:
        warnings.append(governor_warning)
    if settled is False:
        warnings.append(f"warm-up did not settle within {MAX_WARMUP_ROUNDS} rounds (last two "
                        f"figures more than {SETTLE_TOLERANCE:.0%} apart): the machine is drifting.")
    for r in lost:
        warnings.append(f"round {r['round']} lost ({r['variant']}): {r['reason']}; the other "
                        f"variants' runs of that round were dropped with it.")
    for c in comparisons:
        if c.dropped_rounds:
            warnings.append(f"{variants[c.variant_index].label}: rounds {list(c.dropped_rounds)} "
                            "dropped as spoiled by a placement change (ratio over 5 robust SDs "
                            "from the median; at most 10% of rounds).")
    stopping = None
    if plan is not None:
        elapsed = clock() - started
        stopping = {**plan.to_dict(), "rounds": round_number, "elapsed_s": round(elapsed, 3),
                    "stopped_by": {variants[i].label: why for i, why in sorted(stopped_by.items())},
                    "reached": {variants[c.variant_index].label: stats.json_number(c.resolution)
                                for c in comparisons}}
        for c in comparisons:
            label = variants[c.variant_index].label
            if stopped_by[c.variant_index] == "budget":
                warnings.append(f"{label}: the time budget ({plan.max_time_s:g} s) ran out after "
                                f"{round_number} rounds at a resolution of ±{c.resolution:.1%}, "
                                f"not the ±{plan.precision:.1%} asked for.")
    return ComparisonResult(
        metric=metric_name, higher_is_better=higher_is_better, repeat=round_number,
        confidence=confidence, variants=variants,
        samples=tuple(tuple(values) for values in samples),
        warmup_samples=tuple(values[-1] if values else math.nan for values in warmup_values),
        summaries=summaries, median_intervals=median_intervals,
        comparisons=tuple(comparisons), warnings=tuple(warnings),
        cpu_governor=stats.read_cpu_governor(), environment=dict(environment or {}),
        metric_description=metric_description, warmup_rounds=warmup_rounds,
        warmup_settled=settled, stopping=stopping,
        noise={"warmup": warmup, "drop_spoiled": drop_spoiled, **(noise or {})},
        lost_rounds=tuple(lost))
