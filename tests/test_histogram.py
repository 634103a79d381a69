"""The latency histogram's promises: accurate percentiles, exact merges, fixed memory."""
import numpy as np
import pytest
from numba import njit

from busbench.native import histogram as hist

QUANTILES = (50, 90, 99, 99.9, 100)


def _synthetic(name):
    rng = np.random.default_rng(12345)
    if name == "uniform":
        return rng.integers(0, 5_000_000, 200_000)
    if name == "lognormal":  # 100 ns .. 10 s, centred (in log) on 1 ms
        data = np.exp(rng.normal(np.log(1e6), 2.5, 200_000))
        return np.clip(data, 100, 10e9).astype(np.int64)
    if name == "bimodal":  # ~20 µs service time, 2 % of events stuck behind a 200 ms stall
        fast = rng.normal(20_000, 3_000, 196_000)
        stall = rng.normal(200e6, 5e6, 4_000)
        return np.concatenate([fast, stall]).astype(np.int64)
    if name == "constant":
        return np.full(10_000, 123_456_789, dtype=np.int64)
    raise ValueError(name)


def _histogram_of(values):
    h = hist.new_histograms(1)[0]
    hist.record_array(h, np.asarray(values, dtype=np.int64))
    return h


@njit
def _record_loop(h, values):
    for v in values:
        hist.record(h, v)


@pytest.mark.parametrize("name", ["uniform", "lognormal", "bimodal", "constant"])
def test_percentiles_match_numpy_nearest_rank_within_1_percent(name):
    data = _synthetic(name)
    h = _histogram_of(data)
    for q in QUANTILES:
        expected = np.percentile(data, q, method="inverted_cdf")
        got = hist.percentile(h, q)
        assert abs(got - expected) <= 0.01 * expected, (name, q, got, expected)


def test_percentile_error_is_within_bucket_resolution():
    # Nearest rank: the answer is the bucket of the exact rank-th value, so the
    # error is at most half a bucket, 1/2048 relative.
    data = _synthetic("lognormal")
    h = _histogram_of(data)
    for q in (1, 25, 50, 75, 90, 99, 99.9, 99.99):
        expected = np.percentile(data, q, method="inverted_cdf")
        assert abs(hist.percentile(h, q) - expected) <= expected / 2048 + 1


def test_every_bucket_maps_back_to_itself_and_buckets_are_contiguous():
    indices = np.arange(hist.COUNTS_LEN)
    values = np.array([hist.bucket_value(i) for i in indices])
    assert [hist.bucket_index(v) for v in values] == list(indices)
    assert np.all(np.diff(values) > 0)
    assert hist.bucket_index(hist.HIGHEST_TRACKABLE) == hist.COUNTS_LEN - 1
    for v in (0, 1, 2047, 2048, 10**6, 10**9, 3_600 * 10**9, hist.HIGHEST_TRACKABLE):
        assert abs(hist.bucket_value(hist.bucket_index(v)) - v) <= v / 2048


def test_small_values_are_exact():
    for v in (0, 1, 2, 999, 2047):
        assert hist.bucket_value(hist.bucket_index(v)) == v


def test_merging_two_histograms_equals_one_histogram_of_the_union():
    data = _synthetic("bimodal")
    a, b = data[: len(data) // 3], data[len(data) // 3:]
    hists = hist.new_histograms(2)
    hist.record_array(hists[0], a)
    hist.record_array(hists[1], b)
    np.testing.assert_array_equal(hist.merge(hists), _histogram_of(data))


def test_merging_an_empty_histogram_changes_nothing():
    h = _histogram_of(_synthetic("uniform"))
    np.testing.assert_array_equal(hist.merge([h, hist.new_histograms(1)[0]]), h)


def test_count_sum_min_max_are_exact():
    data = _synthetic("lognormal")
    h = _histogram_of(data)
    assert h[hist.COUNT] == len(data)
    assert h[hist.SUM] == int(data.sum())
    assert h[hist.MIN] == data.min()
    assert h[hist.MAX] == data.max()
    assert hist.percentile(h, 100) == data.max()
    assert hist.percentile(h, 0) == data.min()


def test_values_above_the_top_are_counted_as_overflow_in_the_top_bucket():
    h = hist.new_histograms(1)[0]
    hist.record(h, 10)
    hist.record_n(h, hist.HIGHEST_TRACKABLE + 1, 3)
    hist.record(h, np.iinfo(np.int64).max)
    assert h[hist.OVERFLOW] == 4
    assert h[hist.COUNT] == 5
    assert h[hist.HEADER_LEN + hist.COUNTS_LEN - 1] == 4
    assert h[hist.MAX] == hist.HIGHEST_TRACKABLE
    assert hist.percentile(h, 100) == hist.HIGHEST_TRACKABLE


def test_negative_values_are_clamped_to_zero_and_counted_as_underflow():
    h = hist.new_histograms(1)[0]
    hist.record(h, -7)
    hist.record(h, 5)
    assert h[hist.UNDERFLOW] == 1
    assert h[hist.MIN] == 0
    assert h[hist.SUM] == 5
    assert h[hist.HEADER_LEN + 0] == 1


def test_recording_in_a_jitted_loop_equals_recording_from_python():
    data = _synthetic("lognormal")[:3_000]
    from_python = hist.new_histograms(1)[0]
    for v in data:
        hist.record(from_python, int(v))
    from_jit = hist.new_histograms(1)[0]
    _record_loop(from_jit, data)
    np.testing.assert_array_equal(from_jit, from_python)


def test_memory_is_fixed_whatever_the_data():
    assert hist.new_histograms(3).shape == (3, hist.HIST_LEN)
    assert hist.HIST_LEN * 8 == 270_464
    assert hist.HIGHEST_TRACKABLE >= 3_600 * 10**9  # one hour in ns
    short, long = _histogram_of([5]), _histogram_of(_synthetic("lognormal"))
    assert short.shape == long.shape == (hist.HIST_LEN,)


def test_summary_of_an_empty_histogram_is_count_zero_and_none():
    s = hist.summary(hist.new_histograms(1)[0])
    assert s == {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None,
                 "max": None, "mean": None, "min": None}
    assert hist.percentile(hist.new_histograms(1)[0], 50) is None


def test_summary_reports_ns_percentiles_and_mean():
    data = _synthetic("constant")
    s = hist.summary(_histogram_of(data))
    assert s == {"count": 10_000, "p50": 123_456_789, "p90": 123_456_789,
                 "p99": 123_456_789, "p999": 123_456_789, "max": 123_456_789,
                 "mean": 123_456_789.0, "min": 123_456_789}


def test_percentile_outside_0_100_is_an_error():
    with pytest.raises(ValueError):
        hist.percentile(_histogram_of([1]), 101)


def test_percentile_is_the_exact_nearest_rank():
    # 1..1000 ns are recorded exactly; rank = ceil(q/100 * n) in exact arithmetic
    # (numpy's inverted_cdf picks rank 1000 for 99.9 % here through float noise).
    h = _histogram_of(np.arange(1, 1001))
    assert [hist.percentile(h, q) for q in (0, 0.1, 50, 90, 99.9, 100)] == [1, 1, 500, 900, 999, 1000]
