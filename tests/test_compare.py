"""The compare machinery with a fake, deterministic run_once: no bus is run."""
import json
import math

import numpy as np
import pytest
from rich.console import Console

from busbench.verdicts import compare, precision, stats
from busbench.reports.compare import PlotUnavailable, render_markdown, render_plot, render_table
from busbench.verdicts.compare import CompareUsageError, parse_vary, run_comparison, schedule, variants


def test_parse_vary_splits_key_and_values_keeping_strings():
    assert parse_vary("bus.counters=padded,packed") == ("bus.counters", ["padded", "packed"])
    assert parse_vary("load.producers = 1, 2") == ("load.producers", ["1", "2"])


def test_parse_vary_keeps_yaml_flow_values_whole():
    key, values = parse_vary("load.keys=uniform,{hot: {shard: 0, share: 0.9}},[1, 2]")
    assert values == ["uniform", "{hot: {shard: 0, share: 0.9}}", "[1, 2]"]


@pytest.mark.parametrize("spec, complaint", [
    ("bus.counters", "no '='"),
    ("=padded,packed", "empty key"),
    ("bus.counters=", "no values"),
    ("bus.counters=padded,,packed", "empty value"),
    ("bus.counters=padded,", "empty value"),
    ("bus.counters=padded,packed,padded", "more than once"),
    ("bus..counters=padded", "not a dotted key"),
    ("load.keys={hot: 1,uniform", "unclosed"),
])
def test_parse_vary_rejects_bad_specs_clearly(spec, complaint):
    with pytest.raises(CompareUsageError, match=complaint):
        parse_vary(spec)


def test_the_same_key_in_two_vary_options_is_an_error():
    with pytest.raises(CompareUsageError, match="more than once for bus.counters"):
        variants(["bus.counters=padded,packed", "bus.counters=striped"])


def test_a_single_variant_is_nothing_to_compare():
    with pytest.raises(CompareUsageError, match="only one variant"):
        variants(["bus.counters=padded"])


def test_variants_are_the_cartesian_product_first_values_first():
    result = variants(["bus.counters=padded,packed", "load.producers=1,2"])
    assert [v.label for v in result] == [
        "bus.counters=padded, load.producers=1",
        "bus.counters=padded, load.producers=2",
        "bus.counters=packed, load.producers=1",
        "bus.counters=packed, load.producers=2",
    ]
    assert result[1].overrides == ("bus.counters=padded", "load.producers=2")
    assert result[1].settings == (("bus.counters", "padded"), ("load.producers", "2"))


def test_schedule_warms_up_then_alternates_order_each_round():
    two = variants(["bus.counters=padded,packed"])
    assert schedule(two, 3) == [(0, 0), (0, 1),       # warm-up, not counted
                                (1, 0), (1, 1),
                                (2, 1), (2, 0),
                                (3, 0), (3, 1)]
    assert [entry.is_warmup for entry in schedule(two, 1)] == [True, True, False, False]


def test_schedule_refuses_zero_repeats():
    with pytest.raises(CompareUsageError):
        schedule(variants(["a=1,2"]), 0)


class FakeRun:
    """Variant B runs at twice A's rate, plus a little deterministic noise."""

    def __init__(self, factor_by_label):
        self.factor_by_label = factor_by_label
        self.calls = []
        self.noise = iter(np.random.default_rng(0).normal(0.0, 0.01, 1000))

    def __call__(self, variant):
        self.calls.append(variant.label)
        return 100e6 * self.factor_by_label[variant.label] * (1.0 + next(self.noise))


def compared(repeat=7, **kwargs):
    vs = variants(["bus.counters=padded,packed"])
    fake = FakeRun({vs[0].label: 1.0, vs[1].label: 2.0})
    return vs, fake, run_comparison(vs, repeat, fake, "throughput", **kwargs)


def test_warmups_run_but_are_not_counted():
    vs, fake, result = compared(repeat=4)
    assert len(fake.calls) == 4 * len(vs) + len(vs)
    assert all(len(values) == 4 for values in result.samples)
    assert all(not math.isnan(value) for value in result.warmup_samples)


def test_twice_as_fast_variant_is_reported_significantly_faster():
    _, _, result = compared()
    (comparison,) = result.comparisons
    assert comparison.variant_index == 1 and comparison.baseline_index == 0
    assert comparison.ratio == pytest.approx(2.0, rel=0.05)
    assert comparison.low > 1.0
    assert comparison.verdict == stats.FASTER


def test_progress_is_reported_after_every_run():
    seen = []
    compared(repeat=2, on_progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 7))
    assert {p.total for p in seen} == {6}
    assert [p.entry.is_warmup for p in seen[:3]] == [True, True, False]


def test_a_bad_sample_stops_the_comparison_naming_the_variant():
    vs = variants(["bus.counters=padded,packed"])
    with pytest.raises(ValueError, match="bus.counters=packed"):
        run_comparison(vs, 2, lambda v: 0.0 if "packed" in v.label else 1.0, "throughput")


def test_more_busy_threads_than_cores_is_warned():
    _, _, result = compared(busy_threads=8, cores=2)
    assert any("8 busy threads on 2 cores" in warning for warning in result.warnings)


def test_to_dict_is_json_with_samples_summaries_comparisons_and_environment():
    _, _, result = compared(repeat=6, environment={"cpu": "test"})
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["schema_version"] == compare.SCHEMA_VERSION
    assert data["metric"] == "throughput"
    assert [len(v["samples"]) for v in data["variants"]] == [6, 6]
    assert data["variants"][1]["summary"]["n"] == 6
    assert data["comparisons"][0]["resolution"] > 0
    assert data["comparisons"][0]["paired"]["method"].startswith("median of per-round ratios")
    assert data["comparisons"][0]["verdict"] == stats.FASTER
    assert data["environment"] == {"cpu": "test"}
    assert "warnings" in data and data["cpu_governor"]


def test_single_round_comparison_has_no_interval_and_no_verdict_of_significance():
    _, _, result = compared(repeat=1)
    assert result.comparisons[0].verdict == stats.NO_DIFFERENCE
    assert json.dumps(result.to_dict(), allow_nan=False)
    assert "no interval" in render_markdown(result)


def test_markdown_holds_the_table():
    _, _, result = compared()
    markdown = render_markdown(result)
    assert "| variant | n | median throughput |" in markdown
    assert "| bus.counters=padded | 7 |" in markdown
    assert "baseline" in markdown and stats.FASTER in markdown


def test_rich_table_renders_every_variant():
    _, _, result = compared()
    console = Console(record=True, width=160)
    console.print(render_table(result))
    text = console.export_text()
    assert "bus.counters=packed" in text and stats.FASTER in text and "2.0" in text


def test_plot_without_matplotlib_raises_plot_unavailable(tmp_path):
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed: the missing-dependency path cannot be seen")
    except ImportError:
        pass
    _, _, result = compared()
    with pytest.raises(PlotUnavailable, match=r"pip install 'busbench\[plot\]'"):
        render_plot(result, tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()


def test_plot_renders_a_png_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_comparison(variants(["bus.counters=padded,packed"]), 3,
                            lambda v: 2.0e6 if "padded" in v.label else 1.0e6, "throughput")
    path = tmp_path / "plot.png"
    render_plot(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- precision (issue 12)


def test_five_rounds_are_too_few_for_a_distribution_free_verdict_and_it_says_so():
    _, _, result = compared(repeat=5)
    (comparison,) = result.comparisons
    assert comparison.verdict == stats.NO_DIFFERENCE and math.isnan(comparison.low)
    assert "at least 6" in comparison.description
    assert comparison.medians_low > 1.0          # the secondary view still shows the bootstrap


def test_the_paired_estimate_cancels_drift_between_rounds_that_the_ratio_of_medians_cannot():
    """Each round the machine runs at a different speed (0.5x to 2x); B is 5% slower
    than A in every round. Pairs see it; medians over rounds drown in the drift."""
    vs = variants(["bus.counters=padded,packed"])
    speeds = iter(np.repeat(np.exp(np.random.default_rng(3).uniform(-0.7, 0.7, 40)), 2))
    factor = {vs[0].label: 1.0, vs[1].label: 0.95}
    noise = iter(np.random.default_rng(4).normal(0, 0.005, 200))
    result = run_comparison(vs, 12, lambda v: 1e7 * next(speeds) * factor[v.label]
                            * (1 + next(noise)), "throughput")
    (c,) = result.comparisons
    assert c.verdict == stats.SLOWER and c.low < 0.95 < c.high
    assert c.medians_low < 1.0 < c.medians_high
    assert c.resolution < 0.02


def test_no_difference_is_reported_with_the_smallest_change_it_could_see():
    vs = variants(["bus.counters=padded,packed"])
    fake = FakeRun({vs[0].label: 1.0, vs[1].label: 1.0})
    result = run_comparison(vs, 9, fake, "throughput")
    (c,) = result.comparisons
    assert c.verdict == stats.NO_DIFFERENCE
    assert "no difference larger than" in c.description
    assert f"±{c.resolution:.1%}" in c.description
    console = Console(record=True, width=200)
    console.print(render_table(result))
    assert f"±{c.resolution:.1%}" in console.export_text()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_precision_mode_adds_rounds_until_the_interval_is_narrow_enough():
    vs = variants(["bus.counters=padded,packed"])
    clock = FakeClock()
    noise = iter(np.random.default_rng(5).normal(0, 0.02, 10_000))

    def run_once(variant):
        clock.now += 1.0
        return 1e7 * (1 + next(noise))

    plan = precision.SequentialPlan(precision=0.02, max_time_s=10_000)
    result = run_comparison(vs, 7, run_once, "throughput", plan=plan, clock=clock)
    (c,) = result.comparisons
    assert result.stopping["stopped_by"] == {vs[1].label: "precision"}
    assert result.repeat > 7 and len(result.samples[0]) == result.repeat
    assert c.estimate.level == pytest.approx(plan.final_confidence)
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_precision_mode_stops_at_the_budget_and_says_what_it_reached():
    vs = variants(["bus.counters=padded,packed"])
    clock = FakeClock()
    noise = iter(np.random.default_rng(6).normal(0, 0.2, 10_000))

    def run_once(variant):
        clock.now += 1.0
        return 1e7 * np.exp(next(noise))

    plan = precision.SequentialPlan(precision=0.01, max_time_s=40)
    result = run_comparison(vs, 7, run_once, "throughput", plan=plan, clock=clock)
    assert result.stopping["stopped_by"] == {vs[1].label: "budget"}
    assert clock.now <= 40
    assert any("time budget (40 s) ran out" in w for w in result.warnings)


def test_warmup_settle_runs_until_the_rate_stops_moving():
    vs = variants(["bus.counters=padded,packed"])
    warm = iter([1.0, 1.0, 2.0, 2.0, 2.9, 2.9, 3.0, 3.0] + [3.0] * 100)
    result = run_comparison(vs, 6, lambda v: next(warm), "throughput", warmup="settle")
    assert result.warmup_rounds == 4 and result.warmup_settled is True
    assert result.warmup_samples == (3.0, 3.0)


def test_spoiled_rounds_are_dropped_only_when_asked_and_always_reported():
    vs = variants(["bus.counters=padded,packed"])
    rng = np.random.default_rng(7)
    b_values = [1.0] + [4.0 if r == 5 else 1.0 + rng.normal(0, 0.01) for r in range(12)]
    streams = {vs[0].label: iter([1.0] * 13), vs[1].label: iter(b_values)}   # warm-up first
    result = run_comparison(vs, 12, lambda v: next(streams[v.label]), "throughput",
                            drop_spoiled=True)
    (c,) = result.comparisons
    assert c.dropped_rounds == (6,)
    assert any("dropped as spoiled" in w for w in result.warnings)
    assert result.to_dict()["comparisons"][0]["dropped_rounds"] == list(c.dropped_rounds)


def test_a_lost_round_is_dropped_for_every_variant_and_listed_with_its_reason():
    """A run that crashed (supervisor: LostRound) costs its round, for both variants,
    so that the rounds kept stay paired; the others go on."""
    vs = variants(["bus.counters=padded,packed"])
    fake = FakeRun({vs[0].label: 1.0, vs[1].label: 2.0})
    calls = {"n": 0}

    def run_once(variant):
        calls["n"] += 1
        if calls["n"] == 6:          # round 2's second run (after 2 warm-ups and round 1)
            raise compare.LostRound("the bus crashed (SIGSEGV) during step 1 (run 1 s)")
        return fake(variant)
    result = run_comparison(vs, 4, run_once, "throughput")
    assert all(len(values) == 4 for values in result.samples)       # four paired rounds kept
    assert [r["round"] for r in result.lost_rounds] == [2]
    assert "crashed (SIGSEGV)" in result.lost_rounds[0]["reason"]
    assert any("round 2 lost" in w for w in result.warnings)
    assert json.loads(json.dumps(result.to_dict()))["lost_rounds"][0]["round"] == 2
    assert result.comparisons[0].ratio == pytest.approx(2.0, rel=0.05)


def test_a_comparison_whose_rounds_keep_crashing_gives_up_naming_why():
    vs = variants(["bus.counters=padded,packed"])

    def run_once(variant):
        if "packed" in variant.label:
            raise compare.LostRound("the bus crashed (SIGABRT) during step 2 (flush)")
        return 1e6
    with pytest.raises(RuntimeError, match="rounds lost, the comparison gives up.*SIGABRT"):
        run_comparison(vs, 3, run_once, "throughput")
