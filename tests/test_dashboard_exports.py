"""The display shows only what the target has (issue 18, part 8). One function,
``targets.base.exports``, decides from the target's Capabilities what is
exported; the dashboard, the plain progress line, the summaries and the HTML
report ask it. A value derived from a counter the target lacks is "not
observable", never a number made of zeros; the throughput panel draws a rate
the target has."""
from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from busbench.common import names as N
from busbench.reports.dashboard import PlainProgress, render_dashboard
from busbench.run.snapshot import CheckState, Snapshot
from busbench.targets.base import Capabilities, exports, throughput_counter
from busbench.targets.netmesh.target import COUNTERS as NETMESH_COUNTERS

NETMESH_CAPS = Capabilities(counters=frozenset(NETMESH_COUNTERS), witness="redis streams",
                            shard_known_to_producer=False, lossy_flag=False).to_dict()


def netmesh_snapshot(**changes) -> Snapshot:
    """What the runner hands the display on net-mesh after 200,000 events (flush_quiescent)."""
    base = Snapshot(
        scenario="netmesh-flush-quiescent", target="net-mesh 0.45.1 (c-abi, redis)", layout="-",
        step_index=0, step_count=4, step_label="run 200k events", step_progress=0.5,
        elapsed_s=2.0,
        counters={"events_ingested": 200_000, "events_dropped": 0, "batches_dispatched": 3_125},
        rates={"events_ingested": 1_200_000.0, "events_dropped": 0.0,
               "batches_dispatched": 18_750.0},
        shutdown_was_lossy=None, throughput_history=(1.1e6, 1.3e6, 1.2e6),
        checks=(CheckState("flush_barrier", "pending"),), capabilities=NETMESH_CAPS)
    return dataclasses.replace(base, **changes)


def frame(snapshot: Snapshot) -> str:
    console = Console(record=True, width=120, file=io.StringIO(), force_terminal=True,
                      color_system=None)
    console.print(render_dashboard(snapshot))
    return console.export_text()


def line_with(text: str, needle: str) -> str:
    """The row that starts at ``needle``, up to its panel's border (panels sit side by side)."""
    [line] = [line for line in text.splitlines() if needle in line]
    start = line.index(needle)
    end = line.find("│", start)
    return line[start:] if end < 0 else line[start:end]


def test_the_one_function_reads_the_targets_capabilities():
    assert [n for n in N.ALL_COUNTERS if exports(NETMESH_CAPS, n)] == \
        ["events_ingested", "events_dropped", "batches_dispatched"]
    builtin = Capabilities(counters=frozenset(N.ALL_COUNTERS), witness="verify adapter",
                           lossy_flag=True)
    assert all(exports(builtin, n) for n in N.ALL_COUNTERS)
    # a lossy flag is exported when the target has one, whatever its counters set says
    flagged = Capabilities(counters=frozenset(N.COUNTER_NAMES), witness=None, lossy_flag=True)
    assert exports(flagged, N.SHUTDOWN_WAS_LOSSY)
    # a record without capabilities (an old one): what its counters hold
    assert exports(None, "events_dispatched", {"events_dispatched": 0})
    assert not exports({}, "events_dispatched", {"events_ingested": 1})
    assert throughput_counter(NETMESH_CAPS) == "events_ingested"
    assert throughput_counter(builtin) == "events_dispatched"
    assert throughput_counter({"counters": ["events_dropped"]}) is None


def test_on_net_mesh_the_dashboard_shows_no_value_the_target_lacks():
    text = frame(netmesh_snapshot())
    assert "not exported" in line_with(text, "shutdown_was_lossy")
    assert "false" not in line_with(text, "shutdown_was_lossy")
    assert "not exported" in line_with(text, "events_dispatched")
    # derived from events_dispatched, which net-mesh does not export
    assert "not observable" in line_with(text, "in flight")
    assert "200,000" not in line_with(text, "in flight")
    assert "not observable" in line_with(text, "mean batch size")
    assert "0.0" not in line_with(text, "mean batch size")
    # derived from what it does export
    assert "0.00%" in line_with(text, "dropped ratio")
    assert "200,000" in line_with(text, "events_ingested   ")
    # the throughput panel draws the ingest rate, with samples
    assert "events_ingested throughput" in text and "events_dispatched throughput" not in text
    assert "no samples yet" not in text
    assert "1.2M/s" in line_with(text, "now ")


def test_the_builtin_frame_still_shows_every_value():
    caps = Capabilities(counters=frozenset(N.ALL_COUNTERS), witness="verify adapter",
                        lossy_flag=True).to_dict()
    text = frame(netmesh_snapshot(
        capabilities=caps, shutdown_was_lossy=False,
        counters={"events_ingested": 1000, "events_dropped": 10, "batches_dispatched": 10,
                  "events_dispatched": 900, "shutdown_was_lossy": 0},
        throughput_history=(5e6,)))
    assert "90" in line_with(text, "in flight") and "90.0" in line_with(text, "mean batch size")
    assert "false" in line_with(text, "shutdown_was_lossy")
    assert "events_dispatched throughput" in text


def test_a_target_with_no_rate_at_all_says_so_instead_of_waiting_for_samples():
    caps = {"counters": ["events_dropped"], "lossy_flag": False}
    text = frame(netmesh_snapshot(capabilities=caps, counters={"events_dropped": 0},
                                  rates={}, throughput_history=()))
    assert "not observable: the target exports neither events_dispatched nor events_ingested" \
        in " ".join(text.split())
    assert "no samples yet" not in text


def test_the_plain_progress_line_asks_the_same_function():
    out = io.StringIO()
    PlainProgress(file=out)._print(netmesh_snapshot(scenario="nm", target="net-mesh"))
    line = out.getvalue()
    assert "ingested 200,000" in line and "dispatched not exported" in line
    assert "1.2M/s ingested" in line and "LOSSY" not in line


def test_summaries_and_the_html_report_ask_the_same_function():
    """A stray value in the counters (an adapter filled it in) is not shown where
    the capabilities say the target does not export it: in the summary, the
    Markdown and the HTML report alike."""
    from busbench.reports import html, markdown, summary
    from busbench.evidence.result import RunResult
    r = RunResult(scenario_name="s", scenario={}, source="s.yaml", target="net-mesh", layout="-",
                  environment={}, started_at="2026-12-04T00:00:00+00:00",
                  counters={"events_ingested": 10, "events_dropped": 0,
                            "batches_dispatched": 1, "shutdown_was_lossy": 0},
                  capabilities=NETMESH_CAPS)
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(summary.render(r))
    text = console.export_text()
    assert "not exported" in line_with(text, "shutdown_was_lossy")
    assert "not exported" in line_with(text, "events_dispatched")
    md = markdown.render([r])
    assert "| `shutdown_was_lossy` | not exported |" in md
    assert "events dispatched not exported" in md
    record = r.to_dict()
    assert not html.exports(record, "shutdown_was_lossy")
    assert not html.exports(record, "events_dispatched") and html.exports(record, "events_ingested")
    assert html.throughput_of(record) == "events_ingested"     # what a PNG of several runs draws
    assert html.throughput_of({**record, "capabilities": {}, "counters": {"events_dispatched": 1}}) \
        == "events_dispatched"


def test_the_runner_hands_the_display_what_the_target_has():
    """A real run on a target exporting no events_dispatched and no lossy flag:
    every snapshot says so, and the throughput history is the ingest rate."""
    from busbench.run.runner import Runner
    from busbench.scenario.schema import Scenario
    from busbench.targets.fake import FakeTarget
    sc = Scenario.model_validate({
        "name": "no-dispatch", "description": "a target without events_dispatched",
        "bus": {"shards": 2}, "load": {"producers": 1, "batch": 16},
        "steps": [{"run": {"events": 50_000}}], "checks": []})
    seen = []

    class Recorder:
        def update(self, snapshot):
            seen.append(snapshot)

    target = FakeTarget(shards=2, producers=1,
                        counters=(N.EVENTS_INGESTED, N.EVENTS_DROPPED, N.BATCHES_DISPATCHED))
    result = Runner(sc, "s.yaml", progress=Recorder(), target=target,
                    sample_interval_s=0.02).run()
    assert result.status == N.RUN_PASSED, result.error
    assert seen and all(s.shutdown_was_lossy is None for s in seen)
    assert all(s.throughput_of == N.EVENTS_INGESTED and s.in_flight is None for s in seen)
    assert any(s.throughput_history and max(s.throughput_history) > 0 for s in seen)
    assert "events_ingested throughput" in frame(seen[-1])
