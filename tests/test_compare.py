"""The compare machinery with a fake, deterministic run_once: no bus is run."""
import json
import math

import numpy as np
import pytest
from rich.console import Console

from busbench import compare, stats
from busbench.compare import (CompareUsageError, PlotUnavailable, parse_vary,
                              render_markdown, render_plot, render_table, run_comparison,
                              schedule, variants)


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


def compared(repeat=5, **kwargs):
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
    _, _, result = compared(repeat=3, environment={"cpu": "test"})
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["schema_version"] == compare.SCHEMA_VERSION
    assert data["metric"] == "throughput"
    assert [len(v["samples"]) for v in data["variants"]] == [3, 3]
    assert data["variants"][1]["summary"]["n"] == 3
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
    assert "| bus.counters=padded | 5 |" in markdown
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
