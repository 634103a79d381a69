"""Statistics on synthetic samples whose answers are known."""
import math

import numpy as np
import pytest

from busbench.verdicts import stats
from busbench.verdicts.stats import (FASTER, GATE_FAIL, GATE_INCONCLUSIVE, GATE_PASS, NO_DIFFERENCE,
                            SLOWER, Summary, bootstrap_ratio_ci, cpu_governor_warning,
                            noise_warnings, read_cpu_governor, regression_gate, summarize,
                            verdict)


def samples(center, spread, n, seed):
    return center + np.random.default_rng(seed).normal(0.0, spread, n)


def test_summarize_gives_count_median_extremes_mean_and_cv():
    summary = summarize([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (summary.n, summary.median, summary.min, summary.max, summary.mean) == (5, 3.0, 1.0, 10.0, 4.0)
    assert summary.cv == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1) / 4.0)


def test_summarize_of_one_sample_has_no_cv():
    assert math.isnan(summarize([5.0]).cv)


def test_summarize_refuses_empty_and_nan():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_identical_distributions_show_no_significant_difference():
    a, b = samples(100, 3, 20, seed=1), samples(100, 3, 20, seed=2)
    ratio, low, high = bootstrap_ratio_ci(a, b)
    assert low < 1.0 < high
    assert verdict(low, high) == NO_DIFFERENCE


def test_doubled_samples_are_significantly_faster_with_ratio_two():
    a = samples(100, 3, 20, seed=3)
    b = 2 * a + np.random.default_rng(4).normal(0.0, 0.5, a.size)
    ratio, low, high = bootstrap_ratio_ci(a, b)
    assert ratio == pytest.approx(2.0, rel=0.02)
    assert low < 2.0 < high
    assert not low <= 1.0 <= high
    assert verdict(low, high) == FASTER


def test_halved_samples_are_significantly_slower():
    a = samples(100, 3, 20, seed=5)
    ratio, low, high = bootstrap_ratio_ci(a, a / 2 + np.random.default_rng(6).normal(0, 0.3, a.size))
    assert ratio == pytest.approx(0.5, rel=0.02)
    assert verdict(low, high) == SLOWER


def test_lower_is_better_swaps_the_verdict():
    assert verdict(1.5, 2.5, higher_is_better=False) == SLOWER
    assert verdict(0.4, 0.6, higher_is_better=False) == FASTER


def test_unknown_interval_is_never_significant():
    assert verdict(math.nan, math.nan) == NO_DIFFERENCE


def test_bootstrap_is_deterministic_with_a_seed():
    a, b = samples(100, 10, 8, seed=7), samples(110, 10, 8, seed=8)
    assert bootstrap_ratio_ci(a, b, seed=42) == bootstrap_ratio_ci(a, b, seed=42)
    assert bootstrap_ratio_ci(a, b, seed=1) != bootstrap_ratio_ci(a, b, seed=2)


def test_bootstrap_with_one_sample_gives_no_interval():
    ratio, low, high = bootstrap_ratio_ci([100.0], [200.0, 210.0])
    assert ratio == pytest.approx(2.05)
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_refuses_a_non_positive_denominator():
    with pytest.raises(ValueError, match="positive"):
        bootstrap_ratio_ci([0.0, 1.0], [1.0, 2.0])


def test_gate_passes_a_clear_non_regression():
    result = regression_gate(samples(100, 1, 10, seed=9), samples(99, 1, 10, seed=10), 0.10)
    assert result.status == GATE_PASS
    assert result.low > 0.90
    assert result.message.startswith("Pass")


def test_gate_fails_a_clear_regression_beyond_the_limit():
    result = regression_gate(samples(100, 1, 10, seed=11), samples(70, 1, 10, seed=12), 0.10)
    assert result.status == GATE_FAIL
    assert result.high < 0.90
    assert "below" in result.message


def test_gate_is_inconclusive_when_too_noisy_to_tell():
    rng = np.random.default_rng(13)  # multiplicative noise of ~40%: positive, very noisy
    baseline, current = 100 * rng.lognormal(0, 0.4, 5), 90 * rng.lognormal(0, 0.4, 5)
    result = regression_gate(baseline, current, 0.10)
    assert result.status == GATE_INCONCLUSIVE
    assert result.low < 0.90 < result.high
    assert "noisy" in result.message


@pytest.mark.parametrize("baseline, current", [([100.0], [150.0, 151.0, 152.0]),
                                               ([100.0, 101.0, 99.0], [150.0]),
                                               ([100.0], [150.0])])
def test_gate_with_a_single_sample_is_inconclusive_never_pass(baseline, current):
    result = regression_gate(baseline, current, 0.10)
    assert result.status == GATE_INCONCLUSIVE
    assert "at least 2" in result.message


def test_gate_refuses_a_regression_limit_outside_zero_to_one():
    with pytest.raises(ValueError):
        regression_gate([1.0, 2.0], [1.0, 2.0], 10)


def test_cv_warning_triggers_over_ten_percent_only():
    noisy = summarize([80.0, 100.0, 120.0])      # CV 20%
    quiet = summarize([99.0, 100.0, 101.0])      # CV 1%
    warnings = noise_warnings({"noisy": noisy, "quiet": quiet}, busy_threads=None, cores=None)
    assert len(warnings) == 1 and warnings[0].startswith("noisy:")


def test_more_busy_threads_than_cores_warns():
    assert noise_warnings({}, busy_threads=2, cores=2) == []
    warnings = noise_warnings({}, busy_threads=5, cores=2)
    assert len(warnings) == 1 and "5 busy threads on 2 cores" in warnings[0]


def test_governor_warning_when_not_performance(tmp_path):
    for cpu, governor in enumerate(["powersave", "powersave"]):
        (tmp_path / f"cpu{cpu}").mkdir()
        (tmp_path / f"cpu{cpu}" / "scaling_governor").write_text(governor + "\n")
    pattern = str(tmp_path / "cpu*" / "scaling_governor")
    assert read_cpu_governor(pattern) == "powersave"
    assert "powersave" in cpu_governor_warning(pattern)


def test_governor_performance_or_unreadable_says_nothing(tmp_path):
    (tmp_path / "cpu0").mkdir()
    (tmp_path / "cpu0" / "scaling_governor").write_text("performance\n")
    assert cpu_governor_warning(str(tmp_path / "cpu*" / "scaling_governor")) is None
    assert read_cpu_governor(str(tmp_path / "nowhere" / "*")) is None
    assert cpu_governor_warning(str(tmp_path / "nowhere" / "*")) is None


def test_format_si_keeps_three_significant_digits():
    assert stats.format_si(640e6) == "640M"
    assert stats.format_si(65.24e6, "/s") == "65.2M/s"
    assert stats.format_si(999.7e6) == "1G"
    assert stats.format_si(float("nan")) == "-"


def test_summary_to_dict_has_no_nan():
    assert Summary(1, 2.0, 2.0, 2.0, 2.0, math.nan).to_dict()["cv"] is None
