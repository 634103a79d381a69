"""Precision: how small a change a comparison can see, and intervals that mean what they say.

Three estimates, each an ``Estimate`` (criterion's typed estimate: point, low,
high, level) that also carries its *resolution*, the smallest change it could
have told apart from no change:

* ``paired_ratio``: the primary estimate of ``compare``. Rounds run A and B
  back to back, so each round gives one ratio B/A in which the VM's slow drift
  and its placement of the process cancel. The estimate is the median of the
  per-round ratios; the interval is the distribution-free (sign test,
  binomial order statistics) interval of that median, exact whatever the
  shape of the ratios' distribution: it assumes only that rounds are
  independent. It needs 6 rounds for a 95% interval (with 5, even "all five
  on one side" happens 1 time in 16 by chance).
* ``runs_ratio``: the regression gate. A baseline is several runs, the
  candidate is several runs, and whole runs differ far more than the 100 ms
  samples inside one run (issue 12: three runs of identical code gave 1.05x,
  1.45x and 1.67x against one baseline). Each run is summarised by one value
  (its figure: events dispatched / seconds of load), and the ratio of the two sides'
  geometric means gets a Welch t interval on the log scale: its variation is
  the between-run variation, measured, so its false-alarm rate is the
  advertised one (tests/test_precision.py checks it on simulated runs whose
  run-to-run spread dwarfs the in-run spread, and shows the old in-run
  bootstrap failing the same test). One run on either side gives no interval.
* ``SequentialPlan``: ``--precision 5% --max-time 120s``. Keep adding rounds
  until the interval is that narrow, or the budget runs out. See its
  docstring for why stopping early does not inflate false alarms.

Resolution. For an interval ``[low, high]`` of a ratio, the half-width on the
log scale ``h = (ln high - ln low) / 2``, reported as ``exp(h) - 1`` ("±4.8%"):
a true change of that size puts the interval's near end at 1, so it is called
significant about half the time; a change about 1.4 times as large (the
normal approximation's (z_0.975 + z_0.80) / z_0.975) is called significant
80% of the time. A verdict of "no significant difference" therefore reads
"no difference larger than the interval's ends; the smallest change this
comparison could see is ±h".

Pure functions over numbers; nothing here runs a benchmark. No scipy: the
binomial and Student t distributions are computed here (checked against
tabulated values in the tests).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: what the verdicts say (the same words as ``stats``)
from ..scenario.thresholds import higher_is_better as metric_higher_is_better
from .stats import (
    FASTER,
    GATE_FAIL,
    GATE_INCONCLUSIVE,
    GATE_PASS,
    NO_DIFFERENCE,
    SLOWER,
)

#: power of a change 1.4x the resolution, in the normal approximation
POWER_FACTOR_80 = (1.959964 + 0.841621) / 1.959964

PAIRED_METHOD = ("median of per-round ratios B/A; distribution-free interval of that median "
                 "(sign test: binomial order statistics of the per-round ratios)")
RUNS_METHOD = ("ratio of geometric means of whole runs (each run summarised by its own figure, "
               "e.g. events dispatched / seconds of load); Welch t interval on the log scale, so "
               "run-to-run variation is in it")
RESOLUTION_METHOD = ("half-width of the interval on the log scale, exp(h) - 1: a true change "
                     "this large is called significant about half the time, 1.4x as large "
                     "about 80% of the time")


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    """A ratio (new / reference) with its interval at ``level``; nan bounds when unknown."""
    point: float
    low: float
    high: float
    level: float           # the interval's confidence, e.g. 0.95 (the actual one, see ``exact_level``)
    method: str
    n: int                 # rounds (paired) or runs on the smaller side (runs)
    exact_level: float = math.nan   # the order-statistic interval's exact coverage, when known
    reason: str = ""       # why there is no interval, when there is none

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def resolution(self) -> float:
        """The smallest change this estimate could see (see the module docstring); nan without an interval."""
        if not self.has_interval or self.low <= 0:
            return math.nan
        return math.exp((math.log(self.high) - math.log(self.low)) / 2.0) - 1.0

    def excludes(self, value: float = 1.0) -> bool:
        return self.has_interval and (self.low > value or self.high < value)

    def to_dict(self) -> dict:
        num = _json_number
        return {"point": num(self.point), "low": num(self.low), "high": num(self.high),
                "level": self.level, "exact_level": num(self.exact_level), "n": self.n,
                "method": self.method, "resolution": num(self.resolution),
                "resolution_80": num(self.resolution * POWER_FACTOR_80),
                "resolution_method": RESOLUTION_METHOD, "reason": self.reason or None}


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _positive(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must hold positive, finite values: {array.tolist()}")
    return array


# ---------------------------------------------------------------- the sign-test interval


def _binom_cdf_half(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k), exactly (as a float)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2.0 ** n


@functools.lru_cache(maxsize=4096)
def sign_interval_rank(n: int, confidence: float) -> tuple[int, float]:
    """``(k, exact_coverage)``: the interval ``[x_(k), x_(n-k+1)]`` (1-based order
    statistics) covers the median with probability ``exact_coverage >= confidence``,
    for any continuous distribution. ``k = 0`` when ``n`` is too small for ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    best_k, best_cover = 0, 1.0
    for k in range(1, n // 2 + 1):
        miss = 2.0 * _binom_cdf_half(k - 1, n)      # median below x_(k) or above x_(n-k+1)
        if miss <= 1.0 - confidence + 1e-12:
            best_k, best_cover = k, 1.0 - miss
        else:
            break
    return best_k, (best_cover if best_k else math.nan)


def min_rounds(confidence: float) -> int:
    """The fewest rounds for which a sign-test interval at ``confidence`` exists."""
    n = 1
    while sign_interval_rank(n, confidence)[0] == 0:
        n += 1
    return n


def median_interval(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """``(median, low, high, exact_coverage)`` of ``values`` by the sign test; nan bounds when too few."""
    array = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = array.size
    median = float(np.median(array))
    k, cover = sign_interval_rank(n, confidence)
    if k == 0:
        return median, math.nan, math.nan, math.nan
    return median, float(array[k - 1]), float(array[n - k]), cover


def paired_ratio(reference, new, confidence: float = 0.95) -> Estimate:
    """Per-round ratios ``new[i] / reference[i]``: their median and sign-test interval."""
    a = _positive(reference, "reference")
    b = _positive(new, "new")
    if a.size != b.size:
        raise ValueError(f"paired samples need one value per round on each side: "
                         f"{a.size} reference and {b.size} new")
    ratios = np.log(b / a)
    median, low, high, cover = median_interval(ratios, confidence)
    reason = ""
    if not math.isfinite(low):
        reason = (f"{a.size} round(s): a {confidence:.0%} distribution-free interval needs at "
                  f"least {min_rounds(confidence)}")
    return Estimate(point=math.exp(median), low=math.exp(low), high=math.exp(high),
                    level=confidence, exact_level=cover, method=PAIRED_METHOD, n=int(a.size),
                    reason=reason)


def verdict(estimate: Estimate, higher_is_better: bool = True) -> str:
    """FASTER / SLOWER when the whole interval is on one side of 1, else NO_DIFFERENCE."""
    if not estimate.has_interval:
        return NO_DIFFERENCE
    if estimate.low > 1.0:
        return FASTER if higher_is_better else SLOWER
    if estimate.high < 1.0:
        return SLOWER if higher_is_better else FASTER
    return NO_DIFFERENCE


def describe(estimate: Estimate, higher_is_better: bool = True) -> str:
    """One sentence a reader can act on: the verdict and what it could have seen."""
    v = verdict(estimate, higher_is_better)
    if not estimate.has_interval:
        return f"{estimate.point:.3f}x, no interval ({estimate.reason}); nothing can be concluded"
    level = f"{estimate.level:.0%}"
    interval = f"{estimate.point:.3f}x ({level} CI {estimate.low:.3f}-{estimate.high:.3f})"
    res = f"±{estimate.resolution:.1%}"
    if v == NO_DIFFERENCE:
        down, up = 1.0 - estimate.low, estimate.high - 1.0
        return (f"{interval}: no difference larger than -{down:.1%}/+{up:.1%}; "
                f"the smallest change this comparison could see is {res}")
    return f"{interval}: {v} (resolution {res})"


# ---------------------------------------------------------------- dropping spoiled rounds

#: a round is spoiled when its log ratio is this many robust SDs from the median ...
SPOILED_DEVIATIONS = 5.0
#: ... and at most this share of the rounds (the most extreme first) is ever dropped
SPOILED_MAX_SHARE = 0.10
#: and only with at least this many rounds (fewer cannot tell an outlier from the spread)
SPOILED_MIN_ROUNDS = 10


def spoiled_rounds(reference, new) -> list[int]:
    """Indices of rounds a placement change spoiled, by the documented rule.

    A placement change between the A and B runs of one round (the VM moved the
    process: BUS.md measured 4x between placements) shows as a per-round ratio
    far from every other round's. Rule: with at least 10 rounds, a round whose
    log ratio lies more than 5 robust SDs (1.4826 x the median absolute
    deviation) from the median log ratio is spoiled; at most 10% of the rounds
    are dropped, the most extreme first. The rule is symmetric (it never
    favours one side of 1), and every dropped round is reported.
    """
    a = _positive(reference, "reference")
    b = _positive(new, "new")
    n = a.size
    if n < SPOILED_MIN_ROUNDS:
        return []
    logs = np.log(b / a)
    centre = np.median(logs)
    spread = 1.4826 * np.median(np.abs(logs - centre))
    if spread <= 0:
        return []
    distance = np.abs(logs - centre) / spread
    candidates = [int(i) for i in np.argsort(-distance) if distance[i] > SPOILED_DEVIATIONS]
    return sorted(candidates[:int(n * SPOILED_MAX_SHARE)])


# ---------------------------------------------------------------- Student t (for the gate)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (df may be fractional)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on ``t_cdf``; plenty fast for a verdict)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# ---------------------------------------------------------------- runs (the gate)


def run_value(samples) -> float:
    """One run's figure: the median of its in-run samples."""
    return float(np.median(_positive(samples, "a run's samples")))


def runs_ratio(reference_runs, new_runs, confidence: float = 0.95) -> Estimate:
    """Ratio of geometric means of whole-run values (new / reference), Welch t interval on logs."""
    a = np.log(_positive(reference_runs, "reference runs"))
    b = np.log(_positive(new_runs, "new runs"))
    point = math.exp(float(b.mean() - a.mean()))
    n = int(min(a.size, b.size))
    if a.size < 2 or b.size < 2:
        reason = (f"{a.size} baseline run(s) and {b.size} candidate run(s): whole runs differ "
                  "far more than the samples inside one run, so an interval needs at least 2 "
                  "runs on each side (3 or more to be useful)")
        return Estimate(point, math.nan, math.nan, confidence, RUNS_METHOD, n, reason=reason)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se < 1e-12:          # no spread at all (runs copied and scaled): rounding noise only
        return Estimate(point, point, point, confidence, RUNS_METHOD, n)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    if not math.isfinite(df):
        df = float(min(a.size, b.size) - 1)   # Welch's fallback: the smaller side's df
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    centre = float(b.mean() - a.mean())
    return Estimate(point, math.exp(centre - half), math.exp(centre + half), confidence,
                    RUNS_METHOD, n)


@dataclass(frozen=True)
class GateVerdict:
    status: str            # GATE_PASS | GATE_FAIL | GATE_INCONCLUSIVE
    estimate: Estimate
    metric: str
    higher_is_better: bool
    max_regression: float
    baseline_runs: int
    candidate_runs: int
    message: str
    warnings: tuple = ()

    def to_dict(self) -> dict:
        e = self.estimate
        return {"status": self.status, "metric": self.metric,
                "higher_is_better": self.higher_is_better,
                "ratio": _json_number(e.point), "ci_low": _json_number(e.low),
                "ci_high": _json_number(e.high), "confidence": e.level,
                "max_regression": self.max_regression,
                "baseline_runs": self.baseline_runs, "candidate_runs": self.candidate_runs,
                "resolution": _json_number(e.resolution), "estimate": e.to_dict(),
                "message": self.message, "warnings": list(self.warnings)}


def gate(baseline_runs, candidate_runs, max_regression: float, *, metric: str = "throughput",
         confidence: float = 0.95) -> GateVerdict:
    """Did the candidate regress by more than ``max_regression``? Judged on whole runs.

    Which direction is a regression, the metric says (``MetricInfo.better``):
    for a higher-is-better metric the limit is ``1 - max_regression`` (0.90x
    for 10%), for a lower-is-better one (CPU per event) ``1 + max_regression``.
    FAIL when the whole interval is beyond the limit, PASS when the whole
    interval is on the good side of it, INCONCLUSIVE otherwise and whenever a
    side has one run. The false-failure rate when nothing changed is at most
    (1 - confidence) / 2.
    """
    if not 0.0 <= max_regression < 1.0:
        raise ValueError(f"max_regression is a fraction from 0 to 1 (0.10 = 10%), got {max_regression}")
    higher_is_better = metric_higher_is_better(metric)
    estimate = runs_ratio(baseline_runs, candidate_runs, confidence)
    limit = 1.0 - max_regression if higher_is_better else 1.0 + max_regression
    nb, nc = len(baseline_runs), len(candidate_runs)
    allowed = f"the allowed {limit:.2f}x (max regression {max_regression:.0%} of {metric})"
    common = {"estimate": estimate, "metric": metric, "higher_is_better": higher_is_better,
                  "max_regression": max_regression, "baseline_runs": nb, "candidate_runs": nc}
    if not estimate.has_interval:
        return GateVerdict(GATE_INCONCLUSIVE, message=(
            f"Inconclusive: candidate is {estimate.point:.2f}x the baseline but {estimate.reason}."),
            **common)
    measured = (f"candidate is {estimate.point:.2f}x the baseline ({estimate.level:.0%} CI "
                f"{estimate.low:.2f}-{estimate.high:.2f} over {nb} baseline and {nc} candidate "
                f"runs; resolution ±{estimate.resolution:.1%})")
    bad_side = estimate.high < limit if higher_is_better else estimate.low > limit
    good_side = estimate.low > limit if higher_is_better else estimate.high < limit
    if bad_side:
        return GateVerdict(GATE_FAIL, message=f"Fail: {measured}, entirely beyond {allowed}.", **common)
    if good_side:
        return GateVerdict(GATE_PASS, message=f"Pass: {measured}, entirely on the good side of "
                           f"{allowed}.", **common)
    return GateVerdict(GATE_INCONCLUSIVE, message=(
        f"Inconclusive: {measured} straddles {allowed}; too few runs or too noisy to tell: "
        "more runs on each side (--repeat, more baseline records) narrow it."), **common)


# ---------------------------------------------------------------- sequential: --precision


def _looks(first: int, ratio: float = 1.4, limit: int = 100_000) -> list[int]:
    out, n = [], first
    while n <= limit:
        out.append(n)
        n = max(n + 1, math.ceil(n * ratio))
    return out


@dataclass
class SequentialPlan:
    """When to stop adding rounds for ``--precision P --max-time T``, and at what level to judge.

    Why stopping early does not inflate false alarms. Under "no difference"
    (A and B exchangeable within a round) each per-round log ratio is
    symmetric about 0, so given their absolute values the signs are
    independent fair coins, and the sign test's level is exact for any number
    of rounds chosen *from the absolute values alone*. The main stopping rule
    looks only at those (the projected half-width: the absolute log ratio the
    interval's end would sit at if the signs were balanced) and at the clock,
    never at which side of 1 the rounds fall, so the final verdict at level
    ``alpha_final`` keeps its false-alarm rate exactly.

    A large real change inflates the absolute values, so that rule alone would
    never call a 30% change precise. A second rule stops as soon as the
    interval at a much stricter level excludes 1 and is already as narrow as
    asked; it is tried only at a fixed schedule of looks (6, 9, 13, 19, ...
    rounds, 1.4x apart), look j at level ``alpha_early / 2**j``, so under "no
    difference" all its looks together raise a false alarm with probability at
    most ``alpha_early`` (a union bound). The total is at most
    ``alpha_final + alpha_early`` = 4% + 1% = 5% for a 95% comparison.
    ``tests/test_precision.py`` simulates it on normal, heavy-tailed and
    two-placement null data, and shows the naive rule (stop when the 95%
    interval is narrow enough) exceeding 5%.
    """
    precision: float                  # the half-width asked for, as a fraction (0.05 = ±5%)
    max_time_s: float
    confidence: float = 0.95
    early_share: float = 0.2          # of alpha, spent on the early (strict) looks
    min_rounds: int = field(default=0)

    def __post_init__(self):
        if not 0.0 < self.precision < 1.0:
            raise ValueError(f"precision must be a fraction between 0 and 1, got {self.precision}")
        if self.max_time_s <= 0:
            raise ValueError(f"the time budget must be positive, got {self.max_time_s}")
        if not self.min_rounds:
            self.min_rounds = min_rounds(self.final_confidence)
        self.looks = _looks(self.min_rounds)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def alpha_early(self) -> float:
        return self.alpha * self.early_share

    @property
    def final_confidence(self) -> float:
        return 1.0 - self.alpha * (1.0 - self.early_share)

    def early_confidence(self, n: int) -> float | None:
        """The strict level of the early rule at a scheduled look, None between looks."""
        if n not in self.looks:
            return None
        j = self.looks.index(n) + 1
        return 1.0 - self.alpha_early / 2.0 ** j

    def projected_precision(self, log_ratios: Sequence[float]) -> float:
        """From the absolute values only: the interval's half-width if the signs were balanced."""
        magnitudes = np.sort(np.abs(np.asarray(log_ratios, dtype=np.float64)))
        n = magnitudes.size
        k, _ = sign_interval_rank(n, self.final_confidence)
        if k == 0:
            return math.inf
        # balanced signs: the interval [x_(k), x_(n-k+1)] holds n - 2k + ... points around 0,
        # its ends sit near the (n - 2k + 1)-th smallest absolute value
        return math.exp(float(magnitudes[n - 2 * k])) - 1.0

    def decide(self, reference, new, elapsed_s: float, round_s: float = 0.0) -> str | None:
        """None to go on; else why to stop: "precision", "significant", "budget"."""
        a = _positive(reference, "reference")
        b = _positive(new, "new")
        n = a.size
        if n >= self.min_rounds:
            logs = np.log(b / a)
            if self.projected_precision(logs) <= self.precision:
                return "precision"
            strict = self.early_confidence(n)
            if strict is not None:
                estimate = paired_ratio(a, b, strict)
                if estimate.excludes(1.0) and estimate.resolution <= self.precision:
                    return "significant"
        if elapsed_s + round_s > self.max_time_s:
            return "budget"
        return None

    def final_estimate(self, reference, new, stopped_by: str) -> Estimate:
        """The estimate to report: at the strict level when the early rule stopped, else final."""
        n = len(reference)
        if stopped_by == "significant":
            return paired_ratio(reference, new, self.early_confidence(n))
        return paired_ratio(reference, new, self.final_confidence)

    def to_dict(self) -> dict:
        return {"precision": self.precision, "max_time_s": self.max_time_s,
                "confidence": self.confidence, "final_confidence": self.final_confidence,
                "alpha_early": self.alpha_early, "min_rounds": self.min_rounds,
                "early_looks": self.looks[:12]}
