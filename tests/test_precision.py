"""The statistics of precision, on synthetic samples with known answers (never timings).

Coverage of the intervals, the false-alarm rate of the stopping rule and of the
gate on simulated null data, and the cases where the old designs fail those
same tests (so that the tests can fail).
"""
import math

import numpy as np
import pytest

from busbench.verdicts import precision as P
from busbench.verdicts.stats import (
    FASTER,
    GATE_FAIL,
    GATE_INCONCLUSIVE,
    GATE_PASS,
    NO_DIFFERENCE,
    SLOWER,
    regression_gate,
)

RNG_SEED = 20261129


def _null_generators(rng):
    """Per-round log ratios under "no difference": symmetric about 0, three shapes."""
    return {
        "normal": lambda n: rng.normal(0.0, 0.10, n),
        "heavy-tailed (t3)": lambda n: 0.06 * rng.standard_t(3, n),
        "two placements": lambda n: np.where(rng.random(n) < 0.15, rng.normal(0, 0.5, n),
                                             rng.normal(0, 0.05, n)),
    }


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize("p, df, expected", [(0.975, 1, 12.7062), (0.975, 4, 2.7764),
                                             (0.975, 10, 2.2281), (0.95, 30, 1.6973),
                                             (0.975, 2.5, 3.5747)])
def test_t_quantile_matches_the_tables(p, df, expected):
    assert P.t_quantile(p, df) == pytest.approx(expected, rel=2e-4)


def test_sign_interval_ranks_and_exact_coverage_match_the_binomial():
    assert P.sign_interval_rank(5, 0.95) == (0, pytest.approx(math.nan, nan_ok=True))
    k, cover = P.sign_interval_rank(6, 0.95)
    assert k == 1 and cover == pytest.approx(1 - 2 / 64)
    k, cover = P.sign_interval_rank(20, 0.95)   # the textbook: [x(6), x(15)], 95.86%
    assert k == 6 and cover == pytest.approx(0.9586, abs=1e-4)
    assert P.min_rounds(0.95) == 6


# ---------------------------------------------------------------- paired estimate


def test_paired_ratio_of_a_known_ten_percent_slowdown():
    rng = np.random.default_rng(RNG_SEED)
    a = rng.lognormal(np.log(5e6), 0.3, 15)        # the machine moves between rounds ...
    b = a * 0.9 * rng.lognormal(0, 0.01, 15)       # ... but B/A stays near 0.9 within one
    estimate = P.paired_ratio(a, b)
    assert estimate.low < 0.9 < estimate.high
    assert P.verdict(estimate) == SLOWER
    assert estimate.resolution < 0.02              # the pairs cancel the 30% round-to-round noise
    assert P.verdict(estimate, higher_is_better=False) == FASTER


def test_paired_interval_covers_the_true_ratio_at_least_as_often_as_it_claims():
    rng = np.random.default_rng(RNG_SEED)
    true_ratio, trials, covered = 0.93, 2000, 0
    claimed = P.paired_ratio(np.ones(9), np.ones(9) * 2).exact_level
    assert claimed == pytest.approx(1 - 2 * 10 / 512)   # [x(2), x(8)] of 9: 96.1%
    for _ in range(trials):
        a = rng.lognormal(15, 0.4, 9)
        b = a * true_ratio * np.exp(0.08 * rng.standard_t(3, 9))
        estimate = P.paired_ratio(a, b)
        covered += estimate.low <= true_ratio <= estimate.high
    # Monte Carlo SD 0.4%: three of them below the exact coverage would be a defect
    assert covered / trials >= claimed - 0.013


def test_too_few_rounds_give_no_interval_and_say_why():
    estimate = P.paired_ratio([1, 2, 3, 4, 5], [1, 2, 3, 4, 6])
    assert not estimate.has_interval and math.isnan(estimate.resolution)
    assert "at least 6" in estimate.reason
    assert P.verdict(estimate) == NO_DIFFERENCE
    assert "nothing can be concluded" in P.describe(estimate)


def test_no_difference_says_how_large_a_change_it_could_have_seen():
    rng = np.random.default_rng(RNG_SEED)
    a = rng.lognormal(15, 0.2, 12)
    b = a * np.exp(rng.normal(0, 0.03, 12))
    estimate = P.paired_ratio(a, b)
    text = P.describe(estimate)
    assert P.verdict(estimate) == NO_DIFFERENCE
    assert f"±{estimate.resolution:.1%}" in text and "smallest change" in text
    d = estimate.to_dict()
    assert d["resolution"] == pytest.approx(estimate.resolution)
    assert d["resolution_80"] == pytest.approx(estimate.resolution * P.POWER_FACTOR_80)


def test_spoiled_rounds_rule_drops_only_far_outliers_at_most_ten_percent():
    rng = np.random.default_rng(RNG_SEED)
    a = rng.lognormal(15, 0.1, 20)
    b = a * np.exp(rng.normal(0, 0.02, 20))
    b[[3, 11, 17]] *= [3.0, 0.3, 2.5]               # three placement changes inside a round
    dropped = P.spoiled_rounds(a, b)
    assert dropped == [3, 11]                       # 10% of 20: the two most extreme only
    assert P.spoiled_rounds(a[:9], b[:9]) == []      # too few rounds to call anything an outlier
    clean = np.exp(rng.normal(0, 0.02, 20))
    assert P.spoiled_rounds(np.ones(20), clean) == []


# ---------------------------------------------------------------- the stopping rule


def _sequential(plan, draw, max_rounds=300):
    logs = draw(max_rounds)
    a, b = np.ones(max_rounds), np.exp(logs)
    n = plan.min_rounds
    while True:
        why = plan.decide(a[:n], b[:n], elapsed_s=n, round_s=1.0)
        if why:
            return plan.final_estimate(a[:n], b[:n], why), why, n
        n += 1


@pytest.mark.parametrize("shape", ["normal", "heavy-tailed (t3)", "two placements"])
def test_stopping_rule_keeps_the_false_alarm_rate_on_null_data(shape):
    rng = np.random.default_rng(RNG_SEED)
    draw = _null_generators(rng)[shape]
    plan = P.SequentialPlan(precision=0.025, max_time_s=300)
    trials = 800
    alarms = sum(_sequential(plan, draw)[0].excludes(1.0) for _ in range(trials))
    # at most 5% by construction; 800 trials: Monte Carlo SD 0.8%
    assert alarms / trials <= 0.05 + 0.015


def test_the_naive_stopping_rule_inflates_false_alarms_which_is_why_it_is_not_used():
    """Stop as soon as the 95% interval is narrower than asked: unbalanced signs
    make the interval narrower, so the rule stops on exactly the rounds that
    lie to one side. The check above would catch a rule like this."""
    rng = np.random.default_rng(RNG_SEED)
    draw = _null_generators(rng)["normal"]
    trials, alarms = 1500, 0
    for _ in range(trials):
        logs = draw(300)
        a, b = np.ones(300), np.exp(logs)
        n = 6
        while True:
            estimate = P.paired_ratio(a[:n], b[:n])
            if estimate.resolution <= 0.025 or n == 300:
                break
            n += 1
        alarms += estimate.excludes(1.0)
    assert alarms / trials > 0.06


def test_a_large_real_change_stops_early_as_significant():
    rng = np.random.default_rng(RNG_SEED)
    plan = P.SequentialPlan(precision=0.05, max_time_s=300)
    estimate, why, n = _sequential(plan, lambda n: np.log(0.7) + rng.normal(0, 0.02, n))
    assert why == "significant" and n <= 20
    assert P.verdict(estimate) == SLOWER and estimate.high < 1.0


def test_the_budget_stops_the_rounds_and_says_so():
    plan = P.SequentialPlan(precision=0.001, max_time_s=10)
    rng = np.random.default_rng(RNG_SEED)
    a, b = np.ones(12), np.exp(rng.normal(0, 0.1, 12))
    assert plan.decide(a[:8], b[:8], elapsed_s=8.0, round_s=1.0) is None
    assert plan.decide(a, b, elapsed_s=9.5, round_s=1.0) == "budget"


def test_plan_levels_add_up_to_the_advertised_alpha():
    plan = P.SequentialPlan(precision=0.05, max_time_s=60)
    early = sum(1 - plan.early_confidence(n) for n in plan.looks)
    assert (1 - plan.final_confidence) + early <= 0.05 + 1e-12
    with pytest.raises(ValueError):
        P.SequentialPlan(precision=0, max_time_s=60)


# ---------------------------------------------------------------- the gate


def _simulated_runs(rng, runs, samples=15, between=0.20, within=0.03, scale=1.0):
    """Runs of the same code: each run has its own level (the VM's placement of
    the process), its in-run samples scatter a little around it."""
    levels = 5e6 * scale * np.exp(rng.normal(0, between, runs))
    return [list(level * np.exp(rng.normal(0, within, samples))) for level in levels]


def test_gate_false_failures_on_identical_code_stay_below_the_advertised_rate():
    rng = np.random.default_rng(RNG_SEED)
    trials, failures, confident_wrong = 2000, 0, 0
    for _ in range(trials):
        base = [P.run_value(r) for r in _simulated_runs(rng, 4)]
        cand = [P.run_value(r) for r in _simulated_runs(rng, 4)]
        verdict = P.gate(base, cand, 0.10)
        failures += verdict.status == GATE_FAIL
        confident_wrong += verdict.estimate.excludes(1.0)
    assert failures / trials <= 0.025 + 0.01         # one-sided: at most 2.5%
    assert confident_wrong / trials <= 0.05 + 0.015  # the interval covers the truth (1.0)


def test_the_old_in_run_bootstrap_gate_fails_the_same_test():
    """Why the gate changed: its interval came from the samples inside one run
    each, which say nothing about how much whole runs differ."""
    rng = np.random.default_rng(RNG_SEED)
    trials, failures = 300, 0
    for _ in range(trials):
        (base,), (cand,) = _simulated_runs(rng, 1), _simulated_runs(rng, 1)
        failures += regression_gate(base, cand, 0.10, seed=1).status == GATE_FAIL
    assert failures / trials > 0.15


def test_gate_detects_a_real_regression_and_passes_a_real_non_regression():
    rng = np.random.default_rng(RNG_SEED)
    base = [P.run_value(r) for r in _simulated_runs(rng, 6, between=0.03)]
    slow = [P.run_value(r) for r in _simulated_runs(rng, 6, between=0.03, scale=0.7)]
    same = [P.run_value(r) for r in _simulated_runs(rng, 6, between=0.03)]
    assert P.gate(base, slow, 0.10).status == GATE_FAIL
    assert P.gate(base, same, 0.10).status == GATE_PASS
    lower_better = P.gate(base, slow, 0.10, metric="cpu_per_event")
    assert lower_better.status == GATE_PASS         # less CPU per event is no regression


def test_gate_with_one_run_on_a_side_is_inconclusive_with_the_reason():
    verdict = P.gate([5e6], [4e6, 4.1e6, 4.05e6], 0.10)
    assert verdict.status == GATE_INCONCLUSIVE
    assert "1 baseline run(s)" in verdict.message and "at least 2 runs" in verdict.message
    assert verdict.to_dict()["resolution"] is None


def test_runs_scaled_copies_have_a_zero_width_interval_not_a_missing_one():
    base = [3.1e7, 2.2e7, 4.4e7]
    estimate = P.runs_ratio(base, [v * 0.25 for v in base])
    assert estimate.has_interval and estimate.point == pytest.approx(0.25)
    assert P.verdict(estimate) == SLOWER
