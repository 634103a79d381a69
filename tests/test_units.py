"""busbench.common.units: values people write (10ms, 2M/s, 10M, 10%) and the text written back."""
import pytest

from busbench.common.units import (UnitError, canonical_duration, canonical_rate, format_count,
                            format_duration, format_rate, parse_count, parse_duration,
                            parse_fraction, parse_percent, parse_rate)


@pytest.mark.parametrize("text, nanoseconds", [
    ("500ns", 500), ("500us", 500_000), ("500µs", 500_000), ("10ms", 10_000_000),
    ("2s", 2_000_000_000), ("1.5s", 1_500_000_000), ("1m", 60_000_000_000),
    ("1h", 3_600_000_000_000), (" 250 ms ", 250_000_000), ("0.5us", 500),
])
def test_durations_are_whole_nanoseconds(text, nanoseconds):
    parsed = parse_duration(text)
    assert parsed == nanoseconds and isinstance(parsed, int)


@pytest.mark.parametrize("bare", [10, 2.5, "10", "0"])
def test_a_duration_without_a_unit_is_refused_with_a_message_asking_for_one(bare):
    with pytest.raises(UnitError, match="needs a unit"):
        parse_duration(bare)


def test_a_negative_duration_is_refused():
    with pytest.raises(UnitError, match="cannot be negative"):
        parse_duration("-5ms")


def test_a_zero_duration_is_refused_unless_allowed():
    with pytest.raises(UnitError, match="greater than zero"):
        parse_duration("0s")
    assert parse_duration("0s", allow_zero=True) == 0


@pytest.mark.parametrize("text", ["10 parsecs", "ms", "", True, None, "1.5ns"])
def test_unreadable_durations_say_what_was_expected(text):
    with pytest.raises(UnitError, match="duration|nanoseconds"):
        parse_duration(text)


def test_lower_case_m_is_a_minute_and_upper_case_m_a_million():
    assert parse_duration("1m") == 60 * 10**9
    assert parse_count("1M") == 1_000_000


@pytest.mark.parametrize("text, per_second", [
    ("2M/s", 2e6), ("500k/s", 5e5), ("500K/s", 5e5), ("5000/s", 5000.0), ("1.5G/s", 1.5e9),
    ("0.5/s", 0.5),
])
def test_rates_are_events_per_second(text, per_second):
    assert parse_rate(text) == per_second


def test_a_rate_without_per_second_is_refused_unless_bare_numbers_are_allowed():
    with pytest.raises(UnitError, match="needs a unit"):
        parse_rate(5000)
    assert parse_rate(5000, allow_bare=True) == 5000.0
    assert parse_rate("5M", allow_bare=True) == 5e6


@pytest.mark.parametrize("text", ["0/s", "-2M/s"])
def test_a_rate_must_be_positive(text):
    with pytest.raises(UnitError, match="greater than zero|negative"):
        parse_rate(text)


@pytest.mark.parametrize("value, count", [
    (10_000_000, 10_000_000), ("10_000_000", 10_000_000), ("10M", 10_000_000), ("5k", 5000),
    ("3G", 3_000_000_000), ("1.5M", 1_500_000), (4096, 4096), (64.0, 64),
])
def test_counts_are_ints(value, count):
    parsed = parse_count(value)
    assert parsed == count and isinstance(parsed, int)


@pytest.mark.parametrize("value, message", [
    (True, "expected a count"), ("ten", "expected a count"), ("1.5", "whole number"),
    (-3, "cannot be negative"),
])
def test_bad_counts_are_refused(value, message):
    with pytest.raises(UnitError, match=message):
        parse_count(value)


def test_a_zero_count_is_refused_when_not_allowed():
    assert parse_count(0) == 0
    with pytest.raises(UnitError, match="greater than zero"):
        parse_count("0", allow_zero=False)


def test_percentages_are_fractions():
    assert parse_percent("10%") == 0.10
    assert parse_fraction("90%") == 0.9
    assert parse_fraction(0.25) == 0.25
    with pytest.raises(UnitError, match="percentage"):
        parse_percent("10")
    with pytest.raises(UnitError, match="negative"):
        parse_percent("-5%")


@pytest.mark.parametrize("nanoseconds, text", [
    (0, "0 ns"), (512, "512 ns"), (1_200_000, "1.20 ms"), (12_340_000, "12.3 ms"),
    (2_000_000_000, "2.00 s"), (999_960, "1.00 ms"), (1_500, "1.50 µs"),
])
def test_format_duration_gives_three_significant_digits(nanoseconds, text):
    assert format_duration(nanoseconds) == text


@pytest.mark.parametrize("per_second, text", [
    (12_345_678, "12.3M/s"), (512, "512/s"), (999_999, "1.00M/s"), (1.5e9, "1.50G/s"), (0, "0/s"),
])
def test_format_rate_gives_three_significant_digits(per_second, text):
    assert format_rate(per_second) == text


@pytest.mark.parametrize("count, text", [(999, "999"), (10_000_000, "10.0M"), (12_345, "12.3k")])
def test_format_count_is_exact_below_a_thousand_and_scaled_above(count, text):
    assert format_count(count) == text


@pytest.mark.parametrize("nanoseconds", [0, 1, 999, 1_000, 1_500_000, 2 * 10**9, 90 * 10**9, 7_200 * 10**9])
def test_canonical_duration_parses_back_to_the_same_value(nanoseconds):
    assert parse_duration(canonical_duration(nanoseconds), allow_zero=True) == nanoseconds


def test_canonical_duration_is_the_shortest_exact_text():
    assert canonical_duration(2_000_000_000) == "2s"
    assert canonical_duration(1_500_000) == "1500us"
    assert canonical_duration(60 * 10**9) == "1m"


@pytest.mark.parametrize("per_second", [2e6, 1.5e6, 5000.0, 1234.5, 1e-5, 3e9])
def test_canonical_rate_parses_back_to_the_same_value(per_second):
    assert parse_rate(canonical_rate(per_second)) == per_second
