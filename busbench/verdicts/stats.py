"""Statistics a reader can trust: summaries, bootstrap intervals, verdicts, noise.

Benchmarks on a shared VM are noisy (BUS.md measured two vCPU placements whose
cache-line round trips differ 4x), so a bare ratio of two medians says little.
Following pyperf, every comparison here comes with a percentile-bootstrap
interval and a verdict that only says "significant" when the whole interval
is on one side of 1. Pure functions over numpy arrays; nothing here runs a
benchmark or prints.
"""
from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

FASTER = "significantly faster"
SLOWER = "significantly slower"
NO_DIFFERENCE = "no significant difference"

GATE_PASS = "pass"
GATE_FAIL = "fail"
GATE_INCONCLUSIVE = "inconclusive"

#: run-to-run variation above which a variant's figures are called noisy
CV_WARNING_THRESHOLD = 0.10

#: a bootstrap needs at least this many samples on each side to say anything
MIN_BOOTSTRAP_SAMPLES = 2

# Cap on the resample matrix held at once (elements), so 10 000 resamples of a
# long sample list do not allocate gigabytes.
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000

_GOVERNOR_GLOB = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    min: float
    max: float
    mean: float
    cv: float  # sample stdev / mean; nan with fewer than two samples

    def to_dict(self) -> dict:
        return {name: json_number(getattr(self, name))
                for name in ("n", "median", "min", "max", "mean", "cv")}


@dataclass(frozen=True)
class GateResult:
    status: str  # GATE_PASS | GATE_FAIL | GATE_INCONCLUSIVE
    ratio: float  # median(current) / median(baseline)
    low: float  # nan when there were too few samples to bootstrap
    high: float
    message: str  # one sentence: which, and why

    def to_dict(self) -> dict:
        return {"status": self.status, "ratio": json_number(self.ratio),
                "ci_low": json_number(self.low), "ci_high": json_number(self.high),
                "message": self.message}


def json_number(value):
    """``value`` for JSON: a nan or infinity becomes None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_samples(samples, name: str = "samples") -> np.ndarray:
    values = np.asarray(samples, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"{name} is empty: need at least one measurement")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds a nan or infinite value: {values.tolist()}")
    return values


def summarize(samples) -> Summary:
    """Count, median, extremes, mean and coefficient of variation of ``samples``."""
    values = _as_samples(samples)
    mean = float(values.mean())
    if values.size >= 2 and mean != 0.0:
        cv = float(values.std(ddof=1) / abs(mean))
    else:
        cv = math.nan
    return Summary(n=int(values.size), median=float(np.median(values)),
                   min=float(values.min()), max=float(values.max()), mean=mean, cv=cv)


def _bootstrap_medians(values: np.ndarray, resamples: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` resamples (with replacement) of ``values``."""
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // values.size)
    medians = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - start)
        picks = rng.integers(0, values.size, size=(rows, values.size))
        medians[start:start + rows] = np.median(values[picks], axis=1)
    return medians


def _check_interval_args(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def _percentile_interval(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_median_ci(samples, confidence: float = 0.95, resamples: int = 10_000,
                        seed: int = 0) -> tuple[float, float, float]:
    """``(median, low, high)``: the median with a percentile bootstrap interval.

    With fewer than two samples the interval is unknown: ``low`` and ``high`` are nan.
    """
    _check_interval_args(confidence, resamples)
    values = _as_samples(samples)
    median = float(np.median(values))
    if values.size < MIN_BOOTSTRAP_SAMPLES:
        return median, math.nan, math.nan
    rng = np.random.default_rng(seed)
    return (median, *_percentile_interval(_bootstrap_medians(values, resamples, rng), confidence))


def bootstrap_ratio_ci(a, b, confidence: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float, float]:
    """``(ratio, low, high)`` for ``median(b) / median(a)`` with a percentile bootstrap.

    ``a`` and ``b`` are resampled independently (they are separate runs, not
    pairs). Deterministic for a given ``seed``. With fewer than two samples on
    either side no interval can be drawn: ``low`` and ``high`` are nan, which
    ``verdict`` reads as "no significant difference".
    """
    _check_interval_args(confidence, resamples)
    a_values = _as_samples(a, "a")
    b_values = _as_samples(b, "b")
    if np.any(a_values <= 0):
        raise ValueError("a (the denominator) must hold positive values only, "
                         f"got {a_values.tolist()}")
    ratio = float(np.median(b_values) / np.median(a_values))
    if min(a_values.size, b_values.size) < MIN_BOOTSTRAP_SAMPLES:
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(seed)
    a_medians = _bootstrap_medians(a_values, resamples, rng)
    b_medians = _bootstrap_medians(b_values, resamples, rng)
    return (ratio, *_percentile_interval(b_medians / a_medians, confidence))


def verdict(low: float, high: float, higher_is_better: bool = True) -> str:
    """FASTER, SLOWER or NO_DIFFERENCE for an interval of ``new / baseline``.

    Significant only when the whole interval lies on one side of 1; an unknown
    (nan) interval is never significant.
    """
    if low > 1.0:
        return FASTER if higher_is_better else SLOWER
    if high < 1.0:
        return SLOWER if higher_is_better else FASTER
    return NO_DIFFERENCE


def regression_gate(baseline_samples, current_samples, max_regression: float,
                    confidence: float = 0.95, seed: int = 0) -> GateResult:
    """Did a higher-is-better metric (throughput) regress by more than allowed?

    With ``floor = 1 - max_regression`` and the bootstrap interval of
    ``median(current) / median(baseline)``: FAIL when the whole interval is
    below the floor, PASS when the whole interval is above it, INCONCLUSIVE
    otherwise (too noisy to tell) and whenever a side has a single sample.
    """
    if not 0.0 <= max_regression < 1.0:
        raise ValueError(f"max_regression is a fraction from 0 to 1 (0.10 = 10%), got {max_regression}")
    baseline = _as_samples(baseline_samples, "baseline_samples")
    current = _as_samples(current_samples, "current_samples")
    ratio, low, high = bootstrap_ratio_ci(baseline, current, confidence=confidence, seed=seed)
    floor = 1.0 - max_regression
    allowed = f"the allowed {floor:.2f}x (max regression {max_regression:.0%})"
    level = f"{confidence:.0%}"
    if math.isnan(low):
        message = (f"Inconclusive: {baseline.size} baseline and {current.size} current sample(s) "
                   f"give a ratio of {ratio:.2f}x but no interval; a bootstrap needs at least "
                   f"{MIN_BOOTSTRAP_SAMPLES} samples on each side.")
        return GateResult(GATE_INCONCLUSIVE, ratio, low, high, message)
    measured = f"current is {ratio:.2f}x the baseline ({level} CI {low:.2f}-{high:.2f})"
    if high < floor:
        return GateResult(GATE_FAIL, ratio, low, high,
                          f"Fail: {measured}, entirely below {allowed}.")
    if low > floor:
        return GateResult(GATE_PASS, ratio, low, high,
                          f"Pass: {measured}, entirely above {allowed}.")
    return GateResult(GATE_INCONCLUSIVE, ratio, low, high,
                      f"Inconclusive: {measured} straddles {allowed}, too noisy to tell; "
                      "rerun with more repeats or on a quieter machine.")


def noise_warnings(summaries: Mapping[str, Summary], busy_threads: Optional[int],
                   cores: Optional[int]) -> list[str]:
    """One line per reason the figures may be noisy: a variant's CV over 10%,
    more busy threads than cores. ``summaries`` maps a label to its Summary;
    an unknown ``busy_threads`` or ``cores`` (None) says nothing."""
    warnings = []
    for label, summary in summaries.items():
        if summary.cv > CV_WARNING_THRESHOLD:  # nan (one sample) compares False
            warnings.append(
                f"{label}: run-to-run variation is {summary.cv:.1%} "
                f"(over {CV_WARNING_THRESHOLD:.0%}); its figures are noisy.")
    if busy_threads is not None and cores is not None and busy_threads > cores:
        warnings.append(
            f"{busy_threads} busy threads on {cores} cores: threads wait for a core, "
            "so the figures measure the scheduler as much as the code.")
    return warnings


def read_cpu_governor(pattern: str = _GOVERNOR_GLOB) -> Optional[str]:
    """The CPU frequency governor: one name, ``"mixed: a, b"``, or None when unreadable."""
    governors = set()
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="ascii") as handle:
                governors.add(handle.read().strip())
        except OSError:
            continue
    governors.discard("")
    if not governors:
        return None
    if len(governors) == 1:
        return governors.pop()
    return "mixed: " + ", ".join(sorted(governors))


def cpu_governor_warning(pattern: str = _GOVERNOR_GLOB) -> Optional[str]:
    """A warning when the governor is readable and not "performance"; else None."""
    governor = read_cpu_governor(pattern)
    if governor is None or governor == "performance":
        return None
    return (f"CPU frequency governor is '{governor}', not 'performance': "
            "clock speed may change during the run and add noise.")


def format_cv(summary: Summary) -> str:
    """``'4.2%'``, or ``'-'`` when there is no CV (a single sample)."""
    return "-" if math.isnan(summary.cv) else f"{summary.cv:.1%}"


_SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_si(value: float, unit: str = "") -> str:
    """``640e6 -> '640M'``, ``65.2e6 -> '65.2M'``, ``1234 -> '1.23k'``: three significant digits."""
    if value is None or not math.isfinite(value):
        return "-"
    value = float(f"{value:.3g}")  # round first, so 999.7M shows as 1G, not 1e+03M
    for scale, prefix in _SI_PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"
