"""The dashboard's contract: what a frame shows for a snapshot, and how each
front-end (live, plain, quiet) behaves. Frames are rendered to a recording
console and read as text."""
from __future__ import annotations

import dataclasses
import io
import sys

import pytest
from rich.console import Console

from busbench.reports.dashboard import (
    LiveDashboard,
    NullProgress,
    PlainProgress,
    default_mode,
    make_progress,
    render_dashboard,
    sparkline,
)
from busbench.run.snapshot import CheckState, ShardFill, Snapshot

BAR = "█"


def make_snapshot(**changes) -> Snapshot:
    base = Snapshot(
        scenario="quickstart", target="builtin", layout="padded",
        step_index=1, step_count=5, step_label="run 2s", step_progress=0.5, elapsed_s=12.0,
        counters={"events_ingested": 123_456_789, "events_dropped": 456,
                  "batches_dispatched": 240_000, "events_dispatched": 123_000_000},
        rates={"events_ingested": 41_300_000, "events_dropped": 0,
               "batches_dispatched": 80_500, "events_dispatched": 41_200_000},
        shutdown_was_lossy=False,
        shards=(ShardFill(4096, 4096), ShardFill(0, 4096)),
        throughput_history=(40e6, 41e6, 42e6),
        checks=(CheckState("conservation", "passed"),),
    )
    return dataclasses.replace(base, **changes)


def recording_console() -> Console:
    return Console(record=True, width=100, file=io.StringIO(), force_terminal=True, color_system=None)


def render_text(snapshot: Snapshot) -> str:
    console = recording_console()
    console.print(render_dashboard(snapshot))
    return console.export_text()


def line_with(text: str, needle: str) -> str:
    [line] = [line for line in text.splitlines() if needle in line]
    return line


# --- the frame ---

def test_header_names_scenario_target_layout_step_elapsed_and_status():
    text = render_text(make_snapshot())
    for expected in ("quickstart", "builtin", "padded", "step 2/5 run 2s", "50%", "12.0s", "RUNNING"):
        assert expected in text


def test_step_progress_bar_only_when_progress_is_known():
    assert BAR in line_with(render_text(make_snapshot(step_progress=0.5)), "step 2/5")
    assert BAR not in line_with(render_text(make_snapshot(step_progress=None)), "step 2/5")


def test_every_counter_appears_with_its_value_and_rate():
    text = render_text(make_snapshot())
    assert "123,456,789" in line_with(text, "events_ingested")
    assert "41.3M/s" in line_with(text, "events_ingested")
    assert "456" in line_with(text, "events_dropped")
    assert "240,000" in line_with(text, "batches_dispatched")
    assert "80.5k/s" in line_with(text, "batches_dispatched")
    assert "123,000,000" in line_with(text, "events_dispatched  ")
    assert "41.2M/s" in line_with(text, "events_dispatched  ")


def test_lossy_flag_is_always_shown_and_reads_LOSSY_only_when_true():
    clean = render_text(make_snapshot(shutdown_was_lossy=False))
    lossy = render_text(make_snapshot(shutdown_was_lossy=True))
    assert "shutdown_was_lossy" in clean and "LOSSY" not in clean
    assert "LOSSY" in line_with(lossy, "shutdown_was_lossy")


def test_derived_values_in_flight_dropped_ratio_and_mean_batch_size():
    text = render_text(make_snapshot(counters={
        "events_ingested": 1_000_000, "events_dropped": 10_000,
        "batches_dispatched": 1_000, "events_dispatched": 500_000}))
    assert "490,000" in line_with(text, "in flight")
    assert "1.00%" in line_with(text, "dropped ratio")
    assert "500.0" in line_with(text, "mean batch size")


def test_a_few_drops_do_not_read_as_zero_percent():
    text = render_text(make_snapshot())  # 456 dropped of 123 M ingested
    assert "<0.01%" in line_with(text, "dropped ratio")


def test_a_check_that_could_not_tell_never_reads_as_passed_or_pending():
    text = render_text(make_snapshot(checks=(
        CheckState("lossy_shutdown", "not_observable"),
        CheckState("ground_truth", "not_evaluable"),
    )))
    assert "not observable on this target" in line_with(text, "lossy_shutdown")
    assert "not evaluable" in line_with(text, "ground_truth")
    assert "✓" not in text and "pending" not in text


def test_checks_show_their_state_and_a_failed_check_its_evidence_on_one_line():
    text = render_text(make_snapshot(checks=(
        CheckState("conservation", "passed"),
        CheckState("flush_barrier", "failed", "shard 2: 17 events\nstill queued", expected_to_fail=True),
        CheckState("ground_truth", "pending", evidence="not shown while pending"),
    )))
    assert "✓" in line_with(text, "conservation")
    failed = line_with(text, "flush_barrier")
    assert "✗" in failed and "shard 2: 17 events still queued" in failed
    assert "expected to fail" in failed
    assert "pending" in line_with(text, "ground_truth")
    assert "not shown while pending" not in text


def test_a_full_shard_draws_a_longer_bar_than_an_empty_one_and_shows_its_fill():
    text = render_text(make_snapshot(shards=(ShardFill(4096, 4096), ShardFill(0, 4096), ShardFill(1, 4096))))
    full, empty, one = (line_with(text, f"shard   {i}") for i in range(3))
    assert full.count(BAR) > one.count(BAR) > empty.count(BAR) == 0  # one event is still visible
    assert "4,096/4,096" in full and "0/4,096" in empty


def test_more_than_16_shards_shows_the_16_fullest_and_a_more_shards_line():
    # shards 0..3 are the emptiest, so they are the ones left out
    shards = tuple(ShardFill(fill=i * 10, capacity=4096) for i in range(20))
    text = render_text(make_snapshot(shards=shards))
    assert "… 4 more shards" in text
    assert sum(line.startswith("│ shard ") for line in text.splitlines()) == 16
    assert "shard  19" in text and "shard   3" not in text


def test_latency_section_appears_only_with_latency_data():
    assert "p99.9" not in render_text(make_snapshot(latency_ns=None))
    text = render_text(make_snapshot(latency_ns={
        "p50": 850, "p90": 2_300, "p99": 12_400, "p999": 88_000, "max": 1_250_000, "mean": 1_000}))
    line = line_with(text, "p99.9")
    for expected in ("p50 850ns", "p90 2.3µs", "p99 12.4µs", "p99.9 88.0µs", "max 1.2ms"):
        assert expected in line


def test_throughput_shows_sparkline_with_current_min_and_max():
    text = render_text(make_snapshot(throughput_history=(40e6, 38e6, 45e6, 41e6)))
    assert "▃▁█▄" in text  # 40 38 45 41 on a 38..45 scale of eight blocks
    line = line_with(text, "now ")
    assert "now 41.0M/s" in line and "min 38.0M/s" in line and "max 45.0M/s" in line


def test_render_is_pure_same_snapshot_same_frame():
    snapshot = make_snapshot()
    assert render_text(snapshot) == render_text(snapshot)


# --- sparkline ---

def test_sparkline_maps_min_to_lowest_block_and_max_to_highest():
    line = sparkline([5, 1, 9, 3], width=4)
    assert line[1] == "▁" and line[2] == "█"
    assert sparkline([0, 7], width=2) == "▁█"


def test_sparkline_is_exactly_width_long_whatever_the_history():
    assert len(sparkline(range(100), width=60)) == 60  # averaged into buckets
    assert sparkline(range(100), width=60)[0] == "▁" and sparkline(range(100), width=60)[-1] == "█"
    short = sparkline([1, 2, 8], width=10)
    assert len(short) == 10 and short == "       ▁▂█"  # newest at the right edge
    assert sparkline([], width=5) == "     "


def test_sparkline_of_a_flat_series_is_flat():
    assert sparkline([3.0] * 6, width=6) == "▁" * 6


# --- plain progress (CI logs) ---

def test_plain_progress_prints_a_few_short_plain_lines_not_a_flood():
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress(file=out, interval_s=10.0, clock=lambda: now[0])
    with progress:
        for i in range(100):  # 100 updates over 25 fake seconds, one step change at 12.5 s
            now[0] = i * 0.25
            progress.update(make_snapshot(step_index=0 if i < 50 else 1, elapsed_s=now[0],
                                          counters={**make_snapshot().counters, "events_ingested": i}))
    lines = out.getvalue().splitlines()
    timed, step_changes, final = 3, 1, 1  # ceil(25 s / 10 s) timed lines at most
    assert 2 <= len(lines) <= timed + step_changes + final
    assert "\x1b" not in out.getvalue()
    assert all(len(line) < 160 for line in lines)
    assert any("step 1/5" in line for line in lines) and any("step 2/5" in line for line in lines)
    assert "ingested 99 " in lines[-1]  # the final line shows the last snapshot


def test_plain_progress_line_reads_like_a_log_line():
    out = io.StringIO()
    with PlainProgress(file=out, clock=lambda: 0.0) as progress:
        progress.update(make_snapshot())
    first = out.getvalue().splitlines()[0]
    assert first == ("[   12.0s] quickstart step 2/5 run 2s: ingested 123,456,789 "
                     "dispatched 123,000,000 dropped 456 (<0.01%) 41.2M/s")


def test_plain_progress_prints_one_line_per_step_change_not_per_update():
    out = io.StringIO()
    progress = PlainProgress(file=out, interval_s=10.0, clock=lambda: 0.0)
    for step in (0, 0, 0, 1, 1, 1, 2, 2):
        progress.update(make_snapshot(step_index=step))
    assert len(out.getvalue().splitlines()) == 3


def test_plain_progress_flags_lossy_and_final_status_and_keeps_long_names_short():
    out = io.StringIO()
    with PlainProgress(file=out, clock=lambda: 0.0) as progress:
        progress.update(make_snapshot(scenario="x" * 300, shutdown_was_lossy=True))
    assert all(len(line) < 160 for line in out.getvalue().splitlines())
    out = io.StringIO()
    with PlainProgress(file=out, clock=lambda: 0.0) as progress:
        progress.update(make_snapshot(shutdown_was_lossy=True, status="finished"))
    last = out.getvalue().splitlines()[-1]
    # the last line says how the run ended in place of the step it ended in
    assert last.endswith("LOSSY") and " quickstart finished: " in last and "step" not in last


def test_plain_progress_without_updates_prints_nothing():
    out = io.StringIO()
    with PlainProgress(file=out):
        pass
    assert out.getvalue() == ""


def test_null_progress_prints_nothing(capsys):
    with NullProgress() as progress:
        progress.update(make_snapshot())
    assert capsys.readouterr() == ("", "")


# --- choosing a front-end ---

@pytest.mark.parametrize("tty, quiet, live, mode", [
    (True, False, None, "live"),
    (False, False, None, "plain"),
    (False, False, True, "live"),
    (True, False, False, "plain"),
    (True, True, True, "quiet"),
    (False, True, None, "quiet"),
])
def test_default_mode_is_live_on_a_terminal_unless_told_otherwise(tty, quiet, live, mode):
    assert default_mode(stdout_is_tty=tty, quiet=quiet, live=live) == mode


def test_make_progress_builds_each_mode_and_rejects_unknown_ones():
    assert isinstance(make_progress("live", console=recording_console()), LiveDashboard)
    assert isinstance(make_progress("plain"), PlainProgress)
    assert isinstance(make_progress("quiet"), NullProgress)
    with pytest.raises(ValueError, match="unknown progress mode"):
        make_progress("fancy")


# --- live dashboard ---

def test_live_dashboard_leaves_the_final_frame_on_screen():
    console = recording_console()
    with LiveDashboard(console=console, refresh_per_second=20) as dashboard:
        dashboard.update(make_snapshot())
        dashboard.update(make_snapshot(status="finished",
                                       counters={**make_snapshot().counters, "events_ingested": 987_654_321}))
    assert not dashboard.live.is_started
    text = console.export_text()
    assert "987,654,321" in text and "FINISHED" in text
    # the last thing drawn is the final frame, not an earlier one
    assert text.rindex("987,654,321") > text.rfind("RUNNING")


def test_live_dashboard_stops_and_restores_the_terminal_on_ctrl_c():
    console = recording_console()
    stdout_before = sys.stdout
    dashboard = LiveDashboard(console=console, refresh_per_second=20)
    with pytest.raises(KeyboardInterrupt):
        with dashboard:
            dashboard.update(make_snapshot())
            raise KeyboardInterrupt
    assert not dashboard.live.is_started
    assert sys.stdout is stdout_before  # Live's stdout redirection undone
    assert console.file.getvalue().endswith("\x1b[?25h")  # cursor shown again
    assert "quickstart" in console.export_text()
