"""busbench report: the HTML page says what the record says, and needs nothing else to be viewed.

Charts are read back through the numbers each mark carries (data-* attributes)
and compared with numbers computed here from the record, independently."""
from __future__ import annotations

import copy
import itertools
import json
import re
from html.parser import HTMLParser

import pytest
from cli_helpers import cli, flat

from busbench.reports import figures
from busbench.reports import html as H
from busbench.reports import png
from busbench.reports import svg
from busbench.common.units import format_duration


def series_row(t, ingested, dispatched, dropped, fills):
    return {"t": t, "events_ingested": ingested, "events_dispatched": dispatched,
            "events_dropped": dropped, "batches_dispatched": dispatched // 100,
            "shutdown_was_lossy": False, "shard_fill": fills}


def make_record(**changes) -> dict:
    """A record as `run` writes it (the fields the report reads), with known numbers."""
    record = {
        "schema_version": 2, "scenario_name": "demo", "source": "scenarios/demo.yaml",
        "target": "builtin", "layout": "padded", "status": "failed", "exit_code": 1, "error": None,
        "started_at": "2026-11-29T12:00:00+00:00", "duration_s": 1.2, "load_s": 1.0,
        "environment": {"cpu_model": "Test CPU", "cores": 2, "python": "3.11.7", "numba": "0.68.1"},
        "scenario": {"name": "demo", "description": "a demo\nover two lines\n", "seed": 1,
                     "bus": {"shards": 3, "capacity": 1024}, "steps": [{"run": "1s"}, "flush",
                                                                       {"shutdown": {"grace": "5s"}}]},
        "counters": {"events_ingested": 3000, "events_dispatched": 2600, "events_dropped": 400,
                     "batches_dispatched": 26, "shutdown_was_lossy": False},
        "metrics": {"throughput": 2600.0, "dropped_ratio": 0.1333, "latency.p99": 2_500_000},
        "latency": {"corrected": {"count": 2600, "p50": 12_000, "p90": 90_000, "p99": 2_500_000,
                                  "p999": 9_000_000, "max": 12_000_000, "mean": 50_000, "min": 900},
                    "uncorrected": {"count": 2600, "p50": 11_000, "p90": 40_000, "p99": 300_000,
                                    "p999": 700_000, "max": 1_000_000, "mean": 20_000, "min": 900}},
        "checks": [
            {"name": "conservation", "kind": "conservation", "outcome": "passed", "expect": "pass",
             "ok": True, "evidence": "ingested 3,000 = dispatched 2,600 + dropped 400",
             "numbers": {"difference": 0}, "at": "end"},
            {"name": "threshold: throughput >= 1M/s", "kind": "threshold", "outcome": "failed",
             "expect": "pass", "ok": False, "evidence": "throughput = 2.60k/s, required >= 1.00M/s <&>",
             "numbers": {"value": 2600.0}, "at": "end"},
            {"name": "ground_truth", "kind": "ground_truth", "outcome": "not_evaluable",
             "expect": "pass", "ok": False, "evidence": "needs the verify adapter", "numbers": {},
             "at": "end"},
        ],
        "steps": [
            {"index": 0, "kind": "run", "label": "run 1s", "started_s": 0.0, "duration_s": 1.0},
            {"index": 1, "kind": "flush", "label": "flush", "started_s": 1.0, "duration_s": 0.1},
            {"index": 2, "kind": "shutdown", "label": "shutdown (grace 5.00 s)", "started_s": 1.1,
             "duration_s": 0.05},
        ],
        "flushes": [{"step": 1, "claimed_reached": True, "timed_out": False, "waited_s": 0.1,
                     "timeout_s": 5.0, "under_load": False, "witness": "verify adapter",
                     "landed_before": [[700, 600, 500], [300, 200, 100]],
                     "received_after": [[690, 290], [600, 200], [500, 100]],
                     "evicted_after": [[0, 0], [0, 0], [0, 0]],
                     "rejected_after": [[10, 10], [0, 0], [0, 0]],
                     "positions": {"in_flight_at_call": 120, "shards": [{"shard": 0, "unsettled": 0}]},
                     "witness_shortfall": None}],
        "shutdown": {"lossy": False, "stranded_events": 0, "stranded_by_producer": [0, 0],
                     "abandoned_producers": [], "duration_s": 0.05, "grace_s": 5.0, "residue": 0},
        "capabilities": {"counters": ["batches_dispatched", "events_dispatched", "events_dropped",
                                      "events_ingested", "shutdown_was_lossy"],
                         "witness": "verify adapter", "shard_fill": True, "latency": True,
                         "lossy_flag": True, "reasons": {}, "witness_hint": ""},
        "series_interval_s": 0.1,
        "series": [series_row(0.25, 1000, 800, 100, [10, 1024, 0]),
                   series_row(0.5, 2000, 1700, 250, [20, 1024, 512]),
                   series_row(1.0, 3000, 2500, 400, [0, 300, 1024]),
                   series_row(1.2, 3000, 2600, 400, [0, 0, 0])],
    }
    record.update(changes)
    return record


class Marks(HTMLParser):
    """Every element with its attributes, and the page's text."""

    def __init__(self, text):
        super().__init__()
        self.elements, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, cls=None):
        return [a for t, a in self.elements if t == tag and (cls is None or a.get("class") == cls)]

    @property
    def plain(self):
        return " ".join(" ".join(self.text).split())


def values(attr: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(":"))) for pair in attr.split()]


def pairs(points) -> list[float]:
    """(x, y) pairs flattened, for pytest.approx."""
    return [v for point in points for v in point]


def test_rates_are_differences_of_counters_over_each_interval():
    record = make_record()
    # from t=0 (all counters 0) to 0.25 s: 800 dispatched -> 3200/s; then 900 in 0.25 s; 800 in 0.5 s; 100 in 0.2 s
    assert pairs(H.rate_points(record["series"], "events_dispatched")) == pytest.approx(
        pairs([(0.25, 3200.0), (0.5, 3600.0), (1.0, 1600.0), (1.2, 500.0)]))


def test_throughput_chart_draws_each_counter_rate_from_the_record():
    record = make_record()
    page = Marks(H.render([record]))
    lines = {a["data-name"]: a for a in page.find("polyline", "series")}
    assert set(lines) == {"ingested/s", "dispatched/s", "dropped/s"}
    for counter, name in H.RATE_NAMES.items():
        expected = []
        t_prev, c_prev = 0.0, 0
        for row in record["series"]:
            expected.append((row["t"], (row[counter] - c_prev) / (row["t"] - t_prev)))
            t_prev, c_prev = row["t"], row[counter]
        assert pairs(values(lines[name]["data-values"])) == pytest.approx(pairs(expected), rel=1e-5)
        # drawn where the numbers say: a larger rate is higher on the page (smaller y)
        pixels = [tuple(map(float, p.split(","))) for p in lines[name]["points"].split()]
        ordered = sorted(zip((v for _, v in expected), (y for _, y in pixels)))
        assert all(y1 >= y2 for (_, y1), (_, y2) in itertools.pairwise(ordered))
        xs = [x for x, _ in pixels]
        assert xs == sorted(xs)


def test_steps_are_marked_where_the_record_says_they_began():
    record = make_record()
    page = Marks(H.render([record]))
    markers = [a for a in page.find("g", "step-marker")]
    assert [(int(m["data-step"]), m["data-kind"], float(m["data-start"])) for m in markers] == [
        (s["index"] + 1, s["kind"], s["started_s"]) for s in record["steps"]]
    # and listed with what they took
    assert "flush 1.000 s 0.100 s" in page.plain


def test_ring_fill_heat_map_has_one_cell_per_shard_and_sample_with_its_fill():
    record = make_record()
    page = Marks(H.render([record]))
    cells = page.find("rect", "cell")
    assert len(cells) == 3 * len(record["series"])
    for cell in cells:
        row = next(r for r in record["series"] if r["t"] == float(cell["data-t"]))
        fill = row["shard_fill"][int(cell["data-row"])]
        assert int(cell["data-fill"]) == fill
        assert cell["fill"] == svg.fill_color(fill / 1024)
    assert svg.fill_color(1.0) != svg.fill_color(0.0)


def test_heat_map_keeps_the_fullest_rings_when_there_are_many():
    fills = [[0] * 100 for _ in range(3)]
    fills[1][77] = 9
    record = make_record(series=[series_row(0.1 * (i + 1), 0, 0, 0, fills[i]) for i in range(3)])
    _times, rows, shards = figures.heat_rows(record)
    assert len(rows) == figures.MAX_HEAT_ROWS and 77 in shards and shards == sorted(shards)


def test_latency_shows_corrected_and_uncorrected_percentiles_of_the_record():
    record = make_record()
    page = Marks(H.render([record]))
    bars = {(a["data-group"], a["data-name"]): float(a["data-value"]) for a in page.find("rect", "bar")}
    for kind in ("corrected", "uncorrected"):
        for key, shown in H.PERCENTILES:
            assert bars[(shown, kind)] == record["latency"][kind][key]
            assert format_duration(record["latency"][kind][key]) in page.plain
    assert "stalled bus shows in the first" in page.plain


def test_checks_show_verdicts_and_evidence_escaped():
    text = H.render([make_record()])
    page = Marks(text)
    assert "throughput = 2.60k/s, required >= 1.00M/s <&>" in page.plain
    assert "&lt;&amp;&gt;" in text           # escaped in the source, never markup
    assert "not evaluable" in page.plain and "ingested 3,000 = dispatched 2,600 + dropped 400" in page.plain
    rows = re.findall(r'<span class="(ok|bad|warn)">(passed|failed|not evaluable)</span>', text)
    # could not tell: shown apart from both a pass and a failure seen
    assert rows == [("ok", "passed"), ("bad", "failed"), ("warn", "not evaluable")]


def test_scenario_environment_flush_and_shutdown_are_shown():
    page = Marks(H.render([make_record()]))
    assert "Test CPU" in page.plain and "0.68.1" in page.plain
    assert "capacity: 1024" in page.plain and "description: a demo over two lines" in page.plain
    assert "in flight at call 120" in page.plain and "stranded 0" in page.plain
    # the flush's own evidence, summed from the record: 2,400 landed, 2,380 received, 20 rejected
    assert ("landed before the call 2.40k, received by the verify adapter at return 2.38k, "
            "dropped by the bus at return 20") in page.plain
    assert "claimed reached" in page.plain


def test_a_schema_1_flush_and_shutdown_still_read():
    record = make_record(schema_version=1, capabilities=None,
                         flushes=[{"step": 1, "reached": True, "timed_out": False, "waited_s": 0.1,
                                   "timeout_s": 5.0, "under_load": False, "in_flight_at_call": 120,
                                   "shards": [{"shard": 0, "unsettled": 3}]}],
                         shutdown={"lossy": True, "flag_set": True, "stranded_events": 7,
                                   "duration_s": 0.05, "grace_s": 5.0, "residue": 0})
    page = Marks(H.render([record]))
    assert "in flight at call 120, unsettled at return 3" in page.plain
    assert "stranded 7; flag set true" in page.plain and "lossy" in page.plain


def net_mesh_like(**changes) -> dict:
    """A record of a target that exports no events_dispatched, cannot see its
    rings, has no witness and no lossy flag (as net-mesh with a noop adapter)."""
    record = make_record(target="net-mesh", layout="-")
    for row in record["series"]:
        del row["events_dispatched"], row["batches_dispatched"], row["shard_fill"]
        del row["shutdown_was_lossy"]
    record["counters"] = {"events_ingested": 3000, "events_dropped": 400}
    record["metrics"] = {"dropped_ratio": 0.1333}
    record["latency"] = None
    record["capabilities"] = {"counters": ["events_dropped", "events_ingested"], "witness": None,
                              "shard_fill": False, "latency": False, "lossy_flag": False,
                              "witness_hint": "target.net-mesh.adapter: redis",
                              "reasons": {"lossy_flag": "net-mesh exports no lossy flag"}}
    record["flushes"][0]["positions"] = {}
    record["shutdown"] = {"lossy": None, "stranded_events": None, "duration_s": 0.05,
                          "grace_s": 5.0, "residue": None}
    record["checks"] = [
        {"name": "conservation", "kind": "conservation", "outcome": "not_observable",
         "expect": "pass", "ok": False, "evidence": "the target does not export events_dispatched",
         "numbers": {}, "at": "end"},
        {"name": "ground_truth", "kind": "ground_truth", "outcome": "not_observable",
         "expect": "pass", "ok": False, "evidence": "no witness", "numbers": {}, "at": "end"},
        {"name": "flush_completes", "kind": "flush_completes", "outcome": "passed",
         "expect": "pass", "ok": True, "evidence": "1 flush(es) completed", "numbers": {},
         "at": "end"},
    ]
    record.update(changes)
    return record


def test_a_target_without_some_evidence_is_shown_as_such_never_as_zero():
    text = H.render([net_mesh_like()])
    page = Marks(text)
    lines = {a["data-name"] for a in page.find("polyline", "series")}
    assert lines == {"ingested/s", "dropped/s"}            # no dispatched line drawn at 0
    assert "the net-mesh target does not export events_dispatched" in page.plain
    assert "the net-mesh target cannot observe its rings' fill" in page.plain
    assert not page.find("rect", "cell")
    assert "the net-mesh target does not measure it" in page.plain
    # the target, and which checks it could not observe: never passes
    assert "net-mesh" in re.sub(r"<[^>]+>", " ", text.split("<h2>")[0])
    rows = re.findall(r'<span class="(ok|bad|warn)">(passed|failed|not observable on this target)</span>',
                      text)
    assert rows == [("warn", "not observable on this target")] * 2 + [("ok", "passed")]
    assert "Not observable on the net-mesh target: conservation, ground_truth." in page.plain
    assert "lossy_flag: net-mesh exports no lossy flag" in page.plain
    assert "target.net-mesh.adapter: redis" in page.plain
    assert "2/3" not in page.plain and "1/3 (2 not observable)" in page.plain
    assert "the bus does not say" in page.plain and "stranded not said by the bus" in page.plain


def test_overlaid_records_skip_a_counter_one_target_does_not_export():
    page = Marks(H.render([make_record(), net_mesh_like()], labels=["builtin", "mesh"]))
    names = [l["data-name"] for l in page.find("polyline", "series")]
    assert names == ["builtin", "mesh", "builtin", "builtin", "mesh"]
    assert "mesh (target net-mesh) does not export events_dispatched" in page.plain


def test_page_needs_no_network_and_no_script():
    text = H.render([make_record(), make_record()])
    assert "<script" not in text and "<link" not in text and "@import" not in text
    urls = set(re.findall(r"https?://[^\s\"')]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls   # the SVG namespace is a name, never fetched


def test_several_records_are_overlaid_one_line_each():
    a = make_record(started_at="A")
    b = make_record(started_at="B", series=[dict(r, events_dispatched=r["events_dispatched"] // 2)
                                            for r in make_record()["series"]])
    page = Marks(H.render([a, b], labels=["baseline", "candidate"]))
    dispatched = [l for l in page.find("polyline", "series")]
    assert [l["data-name"] for l in dispatched] == ["baseline", "candidate"] * 3
    base, cand = values(dispatched[2]["data-values"]), values(dispatched[3]["data-values"])
    # the second chart is dispatched/s (COUNTERS order): the candidate's is about half
    assert [round(c / b, 2) for (_, b), (_, c) in zip(base, cand)][1:] == [0.5, 0.5, 0.5]
    assert len(page.find("rect", "cell")) == 2 * 3 * 4       # a heat map per record


def test_an_interrupted_run_says_its_checks_were_not_evaluated():
    record = make_record(status="interrupted", checks=[], error="interrupted")
    page = Marks(H.render([record]))
    assert "The checks were not evaluated: the run ended interrupted" in page.plain


def test_a_record_without_shard_fill_says_so():
    record = make_record()
    for row in record["series"]:
        del row["shard_fill"]
    assert "no per-shard fill" in Marks(H.render([record])).plain


def test_comparison_verdicts_are_shown():
    comparison = {"metric": "throughput", "confidence": 0.95,
                  "variants": [{"label": "bus.counters=padded", "samples": [1e6, 2e6],
                                "summary": {"median": 1.5e6}, "median_ci": [1e6, 2e6]},
                               {"label": "bus.counters=packed", "samples": [1e6, 1e6],
                                "summary": {"median": 1e6}, "median_ci": [1e6, 1e6]}],
                  "comparisons": [{"variant": "bus.counters=packed", "baseline": "bus.counters=padded",
                                   "ratio": 0.6667, "ci_low": 0.5, "ci_high": 0.9,
                                   "verdict": "significantly slower"}],
                  "warnings": ["noisy"]}
    page = Marks(H.render([make_record(), make_record()], labels=["padded", "packed"],
                          comparison=comparison))
    assert "0.667" in page.plain and "significantly slower" in page.plain and "warning: noisy" in page.plain
    assert "ratio of medians" in page.plain      # a comparison from before paired estimates


def test_a_paired_comparison_shows_its_method_resolution_and_verdict_in_words():
    comparison = {"metric": "cpu_per_event", "confidence": 0.95,
                  "variants": [{"label": "a", "samples": [30.0, 31.0], "summary": {"median": 30.5},
                                "median_ci": [30.0, 31.0]},
                               {"label": "b", "samples": [33.0, 34.0], "summary": {"median": 33.5},
                                "median_ci": [33.0, 34.0]}],
                  "comparisons": [{"variant": "b", "baseline": "a", "ratio": 1.098, "ci_low": 0.93,
                                   "ci_high": 1.31, "verdict": "no significant difference",
                                   "resolution": 0.171, "paired": {"point": 1.098},
                                   "description": "no difference larger than -7%/+31%"}]}
    page = Marks(H.render([make_record(), make_record()], labels=["a", "b"], comparison=comparison))
    assert "paired ratio (median of per-round ratios)" in page.plain
    assert "95% interval (sign test)" in page.plain and "±17.1%" in page.plain
    assert "b vs a: no difference larger than -7%/+31%" in page.plain
    assert "30.5 ns" in page.plain                  # a CPU time per event, shown as a duration


# --------------------------------------------------------------------------- command line


def test_report_command_writes_html_next_to_the_record(tmp_path):
    path = tmp_path / "demo-1.json"
    path.write_text(json.dumps(make_record()))
    result = cli("report", path)
    assert result.exit_code == 0, result.output
    out = tmp_path / "demo-1.html"
    assert f"report: {out}" in result.output
    assert "ingested 3,000 = dispatched 2,600" in out.read_text()


def test_report_of_a_file_that_is_not_a_record_is_a_usage_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    result = cli("report", bad)
    assert result.exit_code == 2
    assert "not a busbench run record" in flat(result.output)
    missing = cli("report", tmp_path / "missing.json")
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_report_png_needs_matplotlib_or_says_how_to_get_it(tmp_path):
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(make_record()))
    result = cli("report", path, "--png", tmp_path / "png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result.exit_code == 2 and "pip install 'busbench[plot]'" in result.output
        return
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["latency.png", "ring_fill.png", "throughput.png"]
    assert all((tmp_path / "png" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


@pytest.mark.slow
def test_run_html_report_matches_the_record_it_wrote(tmp_path):
    """End to end: a real run's --html page carries the record's own numbers."""
    from test_cli import SHORT_OK
    scenario = tmp_path / "short_ok.yaml"
    scenario.write_text(SHORT_OK)
    out = tmp_path / "out"
    result = cli("run", scenario, "--no-live", "-q", "--out", out, "--html", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    record = json.loads(next(out.glob("*.json")).read_text())
    assert all(isinstance(row["shard_fill"], list) for row in record["series"])
    page = Marks((tmp_path / "r.html").read_text())
    for check in record["checks"]:
        assert " ".join(check["evidence"].split()) in page.plain
    cells = page.find("rect", "cell")
    shards = record["scenario"]["bus"]["shards"]
    assert len(cells) == shards * len(record["series"])
    dispatched = next(l for l in page.find("polyline", "series") if l["data-name"] == "dispatched/s")
    assert pairs(values(dispatched["data-values"])) == pytest.approx(
        pairs(H.rate_points(record["series"], "events_dispatched")), rel=1e-5)
    # and `busbench report` on that record writes the same page
    again = cli("report", next(out.glob("*.json")), "--html", tmp_path / "again.html")
    assert again.exit_code == 0
    assert (tmp_path / "again.html").read_text() == (tmp_path / "r.html").read_text()


def test_record_label_is_stable():
    record = copy.deepcopy(make_record())
    assert H.record_label(record, 0) == "#1 demo 2026-11-29T12:00:00+00:00"


@pytest.mark.slow
def test_compare_html_overlays_the_variants_and_prints_each_warning_once(tmp_path, monkeypatch):
    from test_cli import SHORT_OK

    from busbench.verdicts import stats
    monkeypatch.setattr(stats, "noise_warnings", lambda *a, **k: ["synthetic noise warning"])
    scenario = tmp_path / "short_ok.yaml"
    scenario.write_text(SHORT_OK)
    result = cli("compare", scenario, "--vary", "bus.counters=padded,packed", "--repeat", "2",
                 "--html", tmp_path / "c.html")
    assert result.exit_code == 0, result.output
    assert flat(result.output).count("synthetic noise warning") == 1
    page = Marks((tmp_path / "c.html").read_text())
    names = [l["data-name"] for l in page.find("polyline", "series")]
    assert names == ["bus.counters=padded", "bus.counters=packed"] * 3
    assert "Comparison of throughput" in page.plain and "warning: synthetic noise warning" in page.plain


# --------------------------------------------------------------------------- records of any target


def test_sampler_rows_carry_shard_fill_only_when_the_target_can_see_it():
    from busbench.run.sampler import Sampler
    counters = {"events_ingested": 5}
    seeing = Sampler(lambda: counters, lambda: False, 0.0, fill=lambda: [3, 0])
    sample = seeing.sample()
    assert sample.shard_fill == [3, 0] and seeing.series[-1]["shard_fill"] == [3, 0]
    blind = Sampler(lambda: counters, lambda: False, 0.0)            # target.shard_fill() -> None
    assert blind.sample().shard_fill is None and "shard_fill" not in blind.series[-1]


def _fake_run(target):
    from busbench.run.runner import Runner
    from busbench.scenario.schema import Scenario
    scenario = Scenario.model_validate({
        "name": "fake", "description": "a scripted foreign bus", "bus": {"shards": 2},
        "load": {"producers": 2, "batch": 10},
        "steps": [{"run": {"events": 200}}, "flush", {"shutdown": {"grace": "100ms"}}],
        "checks": ["conservation", "ground_truth", "lossy_shutdown", "flush_barrier"]})
    return Runner(scenario, "fake.yaml", target=target, sample_interval_s=0.01).run().to_dict()


def test_a_run_of_a_target_that_sees_its_rings_records_and_draws_their_fill():
    from busbench.targets.fake import FakeTarget
    record = _fake_run(FakeTarget(shards=2, producers=2))
    assert record["series"] and all(len(row["shard_fill"]) == 2 for row in record["series"])
    page = Marks(H.render([record]))
    assert len(page.find("rect", "cell")) == 2 * len(record["series"])
    assert "fake" in page.plain


def test_a_run_of_a_blind_target_without_a_witness_reads_as_such_in_the_report():
    from busbench.targets.base import Capabilities
    from busbench.targets.fake import FakeTarget

    class Blind(FakeTarget):
        """Exports no events_dispatched, cannot see its rings, has no witness."""

        def __init__(self):
            super().__init__(shards=2, producers=2)
            self.capabilities = Capabilities(
                counters=frozenset({"events_ingested", "events_dropped"}), witness=None,
                reasons={"witness": "a fire-and-forget bus"})

        def counters(self):
            c = super().counters()
            return {k: c[k] for k in ("events_ingested", "events_dropped")}

        def shard_fill(self):
            return None

        def delivery(self):
            return None

    record = _fake_run(Blind())
    assert record["series"] and not any("shard_fill" in row for row in record["series"])
    assert not any("events_dispatched" in row for row in record["series"])
    outcomes = {c["kind"]: c["outcome"] for c in record["checks"]}
    assert outcomes["ground_truth"] == "not_observable"
    page = Marks(H.render([record]))
    assert "dispatched/s" not in {a["data-name"] for a in page.find("polyline", "series")}
    assert "does not export events_dispatched" in page.plain
    assert "cannot observe its rings' fill" in page.plain
    assert "Not observable on the fake target:" in page.plain and "ground_truth" in page.plain
    assert "witness: a fire-and-forget bus" in page.plain


def test_open_loop_latency_with_no_uncorrected_side_is_drawn_from_the_corrected_alone(tmp_path):
    """c-abi and python targets record one time per event: in open loop their
    uncorrected latency is None (metrics.latency_summaries)."""
    record = make_record()
    record["latency"]["uncorrected"] = None
    page = Marks(H.render([record]))
    bars = {(a["data-group"], a["data-name"]) for a in page.find("rect", "bar")}
    assert bars == {(shown, "corrected") for _, shown in H.PERCENTILES}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    names = sorted(p.name for p in png.write_pngs([record], tmp_path))
    assert names == ["latency.png", "ring_fill.png", "throughput.png"]
