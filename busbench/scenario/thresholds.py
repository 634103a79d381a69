"""Thresholds: ``"throughput >= 5M/s"`` parsed once, up front, into a typed value.

As in k6, a threshold is checked when the scenario is loaded, not when the run
ends: an unknown metric or a value in the wrong unit is a scenario error ten
minutes earlier, and a metric that a run did not measure fails the threshold
instead of passing it silently. Values are stored in the metric's own unit
(events per second, nanoseconds for latencies, seconds for ``duration``) so
evaluating is a plain comparison.
"""
from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

from ..common.units import (UnitError, format_count, format_duration, format_rate, parse_count,
                    parse_duration, parse_fraction, parse_rate)

__all__ = ["HIGHER", "LOWER", "METRICS", "MetricInfo", "OPERATORS", "Threshold", "ThresholdError", "parse_threshold"]


HIGHER, LOWER = "higher", "lower"


class MetricInfo(NamedTuple):
    """What a metric measures, the kind of unit its values carry, and which
    direction is better: every place that judges a change (compare, the gate,
    compare-records) asks ``better`` here, never a list of its own."""
    kind: str          # "rate" | "duration" (ns) | "seconds" | "count" | "ratio" | "number"
    description: str
    better: str        # HIGHER | LOWER

    @property
    def higher_is_better(self) -> bool:
        return self.better == HIGHER


def _latency_metrics(prefix: str, what: str) -> dict[str, MetricInfo]:
    quantiles = {"p50": "median", "p90": "90th percentile", "p99": "99th percentile",
                 "p999": "99.9th percentile", "max": "maximum", "mean": "mean"}
    return {f"{prefix}.{name}": MetricInfo("duration", f"{words} {what}", LOWER)
            for name, words in quantiles.items()}


METRICS: dict[str, MetricInfo] = {
    "throughput": MetricInfo("rate", "events dispatched per second of load time", HIGHER),
    "ingest_rate": MetricInfo("rate", "events ingested per second of load time", HIGHER),
    "dropped_ratio": MetricInfo("ratio", "events dropped / events ingested", LOWER),
    "events_ingested": MetricInfo("count", "events that passed the shutdown gate inside ingest", HIGHER),
    "events_dropped": MetricInfo("count", "events refused, evicted, stranded or rejected", LOWER),
    "events_dispatched": MetricInfo("count", "events delivered to the adapter", HIGHER),
    "batches_dispatched": MetricInfo("count", "batches delivered to the adapter", HIGHER),
    "mean_batch_size": MetricInfo("number", "events_dispatched / batches_dispatched", HIGHER),
    "late_sends": MetricInfo("count", "open-loop sends later than load.late_after behind schedule", LOWER),
    "unsent": MetricInfo("count", "events a step's schedule (open loop) or count wanted and that "
                                  "were never sent before the step ended", LOWER),
    "duration": MetricInfo("seconds", "seconds of load (the run steps)", LOWER),
    "cpu_per_event": MetricInfo("duration", "CPU time of the producer and worker threads per "
                                            "event dispatched (threadcpu.py)", LOWER),
    "cpu_producers_per_event": MetricInfo("duration", "producer threads' CPU time per event dispatched", LOWER),
    "cpu_workers_per_event": MetricInfo("duration", "worker threads' CPU time per event dispatched", LOWER),
    **_latency_metrics("latency", "ingest-to-dispatch latency, from each send's intended time"),
    **_latency_metrics("latency_uncorrected", "ingest-to-dispatch latency, from the actual send"),
}

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}

# Longest operators first, so that "<=" is not read as "<" followed by "=5".
_THRESHOLD = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*")

_VALUE_EXAMPLES = {
    "rate": "a rate like 5M/s", "duration": "a duration like 5ms",
    "seconds": "a duration like 2s", "count": "a count like 0, 5000 or 10M",
    "ratio": "a number like 0.01 or a percentage like 1%", "number": "a number like 64",
}


class ThresholdError(ValueError):
    """A threshold that cannot be parsed; ``suggestion`` names the nearest valid metric, if any."""

    def __init__(self, message: str, suggestion: str | None = None):
        super().__init__(message)
        self.suggestion = suggestion


def _parse_value(metric: str, kind: str, text: str) -> float:
    try:
        if kind == "rate":
            return parse_rate(text, allow_bare=True, allow_zero=True)
        if kind == "duration":
            return float(parse_duration(text, allow_zero=True))
        if kind == "seconds":
            return parse_duration(text, allow_zero=True) / 1e9
        if kind == "count":
            return float(parse_count(text))
        return parse_fraction(_plain_number(text))
    except UnitError as error:
        raise ThresholdError(f"{metric} needs {_VALUE_EXAMPLES[kind]}: {error}") from None


def _plain_number(text: str):
    """``"0.01"`` -> 0.01 and ``"1%"`` stays text for ``parse_fraction``."""
    try:
        return float(text)
    except ValueError:
        return text


def format_metric(metric: str, value: float) -> str:
    """A value of ``metric`` in its unit, for evidence: ``12.3M/s``, ``1.20 ms``, ``17``."""
    kind = METRICS[metric].kind
    if kind == "rate":
        return format_rate(value)
    if kind == "duration":
        return format_duration(value)
    if kind == "seconds":
        return format_duration(value * 1e9)
    if kind == "count" and float(value).is_integer():
        return f"{int(value):,}".replace(",", "_")
    if kind == "count":
        return format_count(value)
    return f"{value:.4g}"


@dataclass(frozen=True)
class Threshold:
    """``metric op value``: ``value`` is in the metric's unit; ``text`` is what the user wrote."""
    metric: str
    op: str
    value: float
    text: str

    @classmethod
    def parse(cls, text: str) -> "Threshold":
        return parse_threshold(text)

    def __str__(self) -> str:
        return self.text

    def evaluate(self, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """``(passed, evidence)``; a metric missing from ``metrics`` (or NaN) fails, never passes."""
        measured = metrics.get(self.metric)
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return False, f"metric {self.metric} was not measured"
        passed = OPERATORS[self.op](measured, self.value)
        return passed, (f"{self.metric} = {format_metric(self.metric, measured)}, "
                        f"required {self.op} {format_metric(self.metric, self.value)}")


def parse_threshold(text) -> Threshold:
    """``"latency.p99 < 5ms"`` -> ``Threshold("latency.p99", "<", 5e6, "latency.p99 < 5ms")``."""
    if not isinstance(text, str):
        raise ThresholdError(f"expected a threshold like 'throughput >= 5M/s', got {text!r}")
    match = _THRESHOLD.fullmatch(text)
    if match is None:
        raise ThresholdError(
            f"expected METRIC OP VALUE like 'throughput >= 5M/s' "
            f"(operators: {' '.join(OPERATORS)}), got {text!r}")
    metric, op, value_text = match.groups()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        raise ThresholdError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}",
                             suggestion=close[0] if close else None)
    value = _parse_value(metric, METRICS[metric].kind, value_text)
    return Threshold(metric=metric, op=op, value=value, text=text.strip())


def higher_is_better(metric: str) -> bool:
    """Is a higher value of ``metric`` better? (``MetricInfo.better``; KeyError: no such metric)."""
    return METRICS[metric].higher_is_better
