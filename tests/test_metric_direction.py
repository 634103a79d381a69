"""Which direction is better is said once, by the metric (``MetricInfo.better``),
and the gate, compare and compare-records ask it: a lower-is-better metric
(CPU per event, latency) that went up is a regression, and one that went down
is not."""
from __future__ import annotations

import numpy as np
import pytest

from busbench.verdicts import gating, stats
from busbench.verdicts import precision as P
from busbench.verdicts.compare import run_comparison, variants
from busbench.verdicts.stats import GATE_FAIL, GATE_PASS
from busbench.scenario.thresholds import HIGHER, LOWER, METRICS

BASE = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2]
UP = [v * 1.4 for v in BASE[::-1]]              # 40% higher figures


def test_every_metric_says_which_direction_is_better():
    assert {m.better for m in METRICS.values()} == {HIGHER, LOWER}
    assert [k for k, m in METRICS.items() if m.better not in (HIGHER, LOWER)] == []
    for name in ("cpu_per_event", "latency.p99", "latency_uncorrected.max", "dropped_ratio",
                 "late_sends", "unsent", "events_dropped"):
        assert not METRICS[name].higher_is_better, name
    for name in ("throughput", "ingest_rate", "events_dispatched", "mean_batch_size"):
        assert METRICS[name].higher_is_better, name


@pytest.mark.parametrize(("metric", "status"), [("cpu_per_event", GATE_FAIL),
                                                ("throughput", GATE_PASS)])
def test_the_gate_judges_a_rise_by_the_metrics_direction(metric, status):
    """The same figures, 40% up: more CPU per event is a regression, more
    throughput is not."""
    assert gating.check_metric(metric) is METRICS[metric].higher_is_better
    verdict = P.gate(BASE, UP, 0.10, metric=metric)
    assert verdict.status == status, verdict.message
    assert verdict.higher_is_better is METRICS[metric].higher_is_better
    down = P.gate(UP, BASE, 0.10, metric=metric)      # and the same figures going down
    assert down.status == (GATE_PASS if status == GATE_FAIL else GATE_FAIL), down.message


@pytest.mark.parametrize(("metric", "verdict"), [("latency.p99", stats.SLOWER),
                                                 ("cpu_per_event", stats.SLOWER),
                                                 ("throughput", stats.FASTER),
                                                 ("events_dispatched", stats.FASTER)])
def test_compare_judges_variant_b_by_the_metrics_direction(metric, verdict):
    """B's figures are twice A's: worse for a latency or CPU, better for a rate."""
    vs = variants(["bus.counters=padded,packed"])
    noise = iter(np.random.default_rng(0).normal(0.0, 0.01, 100))
    factor = {vs[0].label: 1.0, vs[1].label: 2.0}
    result = run_comparison(vs, 7, lambda v: 1e3 * factor[v.label] * (1 + next(noise)), metric)
    (c,) = result.comparisons
    assert c.low > 1.0 and c.verdict == verdict
    assert result.to_dict()["higher_is_better"] is METRICS[metric].higher_is_better


def test_compare_refuses_a_metric_it_cannot_direct():
    from busbench.verdicts.compare import CompareUsageError
    with pytest.raises(CompareUsageError, match="unknown metric 'thruput'"):
        run_comparison(variants(["bus.counters=padded,packed"]), 2, lambda v: 1.0, "thruput")


def test_compare_records_asks_the_metric_too():
    """compare-records on CPU per event: the candidate's 40% more is 'slower'."""
    def records(values):
        return gating.Records(paths=["r.json"], records=[
            {"status": "passed", "runs": [{"status": "passed", "metrics": {"cpu_per_event": v}}
                                          for v in values]}])
    out = gating.compare_records(records(BASE), records(UP), "cpu_per_event")
    assert out["higher_is_better"] is False and out["verdict"] == stats.SLOWER
