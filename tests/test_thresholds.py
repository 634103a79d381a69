"""busbench.scenario.thresholds: a threshold string is parsed once into a typed value, and never passes silently."""
import dataclasses
import math

import pytest

from busbench.scenario.thresholds import METRICS, OPERATORS, Threshold, ThresholdError, parse_threshold


def test_the_registry_holds_every_documented_metric_with_a_unit_kind():
    counts = {"events_ingested", "events_dropped", "events_dispatched", "batches_dispatched", "late_sends",
              "unsent"}
    latencies = {f"{prefix}.{stat}" for prefix in ("latency", "latency_uncorrected")
                 for stat in ("p50", "p90", "p99", "p999", "max", "mean")}
    cpu = {"cpu_per_event", "cpu_producers_per_event", "cpu_workers_per_event"}
    assert set(METRICS) == {"throughput", "ingest_rate", "dropped_ratio", "mean_batch_size",
                            "duration"} | counts | latencies | cpu
    assert {METRICS[name].kind for name in cpu} == {"duration"}
    assert {METRICS[name].kind for name in counts} == {"count"}
    assert {METRICS[name].kind for name in latencies} == {"duration"}
    assert METRICS["throughput"].kind == "rate" and METRICS["throughput"].description


def test_a_threshold_is_parsed_into_metric_operator_value_and_text():
    threshold = parse_threshold("throughput >= 5M/s")
    assert threshold == Threshold(metric="throughput", op=">=", value=5e6, text="throughput >= 5M/s")


def test_a_threshold_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_threshold("throughput >= 5M/s").value = 1


@pytest.mark.parametrize("op", list(OPERATORS))
def test_every_operator_is_understood_with_or_without_spaces(op):
    assert parse_threshold(f"events_dropped {op} 0").op == op
    assert parse_threshold(f"events_dropped{op}0").op == op


@pytest.mark.parametrize("text, value", [
    ("throughput >= 5M/s", 5e6),                 # rate, events/s
    ("throughput >= 5000000", 5e6),              # a bare number is events/s
    ("latency.p99 < 5ms", 5e6),                  # latencies in ns
    ("latency_uncorrected.max <= 250us", 250e3),
    ("duration >= 2s", 2.0),                     # load duration in seconds
    ("events_dispatched >= 10M", 1e7),           # counts
    ("dropped_ratio < 0.01", 0.01),              # a plain ratio
    ("dropped_ratio < 1%", 0.01),                # ... or a percentage
    ("mean_batch_size > 32.5", 32.5),
])
def test_the_value_is_read_in_the_unit_of_its_metric(text, value):
    assert parse_threshold(text).value == pytest.approx(value)


def test_an_unknown_metric_is_an_error_naming_the_nearest_valid_one():
    with pytest.raises(ThresholdError, match="unknown metric 'thruput'") as raised:
        parse_threshold("thruput >= 5M/s")
    assert raised.value.suggestion == "throughput"


def test_a_value_in_the_wrong_unit_is_an_error_that_says_which_unit():
    with pytest.raises(ThresholdError, match="latency.p99 needs a duration like 5ms"):
        parse_threshold("latency.p99 < 5M/s")
    with pytest.raises(ThresholdError, match="needs a unit"):
        parse_threshold("latency.p99 < 5")


@pytest.mark.parametrize("text", ["throughput", "throughput => 5M/s", "throughput = 5M/s", ">= 5M/s", 42])
def test_a_threshold_without_metric_operator_and_value_is_an_error(text):
    with pytest.raises(ThresholdError, match="expected"):
        parse_threshold(text)


def test_evaluate_passes_and_gives_evidence_in_the_metric_unit():
    passed, evidence = parse_threshold("throughput >= 5M/s").evaluate({"throughput": 12.3e6})
    assert passed
    assert evidence == "throughput = 12.3M/s, required >= 5.00M/s"


def test_evaluate_fails_when_the_comparison_fails():
    passed, evidence = parse_threshold("latency.p99 < 5ms").evaluate({"latency.p99": 7_500_000.0})
    assert not passed
    assert evidence == "latency.p99 = 7.50 ms, required < 5.00 ms"


def test_a_metric_that_was_not_measured_fails_instead_of_passing_silently():
    threshold = parse_threshold("latency.p99 < 5ms")
    assert threshold.evaluate({"throughput": 1e9}) == (False, "metric latency.p99 was not measured")
    assert threshold.evaluate({"latency.p99": math.nan}) == (False, "metric latency.p99 was not measured")


def test_count_evidence_is_exact():
    passed, evidence = parse_threshold("events_dropped == 0").evaluate({"events_dropped": 1_234_567})
    assert not passed
    assert evidence == "events_dropped = 1_234_567, required == 0"


def test_str_of_a_threshold_is_what_the_user_wrote():
    assert str(parse_threshold("  dropped_ratio < 1%  ")) == "dropped_ratio < 1%"
