"""The release matrix (busbench/verdicts/matrix.py, rendered by busbench/reports/matrix.py) on scripted runs: interleaving,
verdicts per release, throughput against the newest, releases that cannot be
driven, and the --versions spec."""
import json

import pytest

from busbench.reports import matrix as MR
from busbench.verdicts import matrix as M

VERSIONS = ["0.40.0", "0.44.1", "0.45.1"]


def scripted(log):
    """0.40.0's flush is no barrier; 0.44.1 is half as fast as 0.45.1."""
    speed = {"0.40.0": 1.0, "0.44.1": 1.0, "0.45.1": 2.0}

    def run_once(scenario, version):
        log.append((scenario, version))
        flush = "failed" if version == "0.40.0" else "passed"
        return M.RunOutcome(verdicts={"flush_barrier": flush, "lossy_shutdown": "not_observable"},
                            expected={"flush_barrier": "pass", "lossy_shutdown": "pass"},
                            throughput=speed[version] * 1e6, status="passed")
    return run_once


def test_every_release_runs_every_round_interleaved_and_alternating():
    log = []
    M.run_matrix(["flush"], list(reversed(VERSIONS)), 3, scripted(log))
    assert log[:3] == [("flush", v) for v in VERSIONS]             # oldest first in round 1
    assert log[3:6] == [("flush", v) for v in reversed(VERSIONS)]   # reversed in round 2
    assert len(log) == 9


def test_table_says_which_promise_holds_in_which_release_and_what_it_cost():
    result = M.run_matrix(["flush"], VERSIONS, 2, scripted([]))
    md = MR.render_markdown(result)
    assert "| flush_barrier | FAIL | pass | pass |" in md
    assert "| lossy_shutdown | n/o | n/o | n/o |" in md
    assert result.ratio("flush", "0.44.1")["ratio_of_medians"] == pytest.approx(0.5)
    assert "0.50x" in md and "1.00x" in md
    data = json.loads(json.dumps(result.to_dict()))
    row = next(r for r in data["rows"] if r["version"] == "0.40.0")
    assert row["verdicts"]["flush_barrier"] == "failed"


def test_a_release_that_cannot_be_driven_is_not_comparable_never_a_crash():
    log = []
    result = M.run_matrix(["flush"], VERSIONS, 1, scripted(log),
                          not_comparable=lambda v: "does not export net_stats_ex" if v == "0.40.0" else None)
    assert ("flush", "0.40.0") not in log
    assert result.cells[("flush", "0.40.0")].verdict("flush_barrier") == M.NOT_COMPARABLE
    assert "0.40.0 not comparable: does not export net_stats_ex" in MR.render_markdown(result)


def test_verdicts_that_differ_between_rounds_are_shown_as_a_count():
    outcomes = iter(["failed", "passed", "failed"])

    def run_once(scenario, version):
        return M.RunOutcome({"flush_barrier": next(outcomes)}, {}, 1.0, "passed")
    result = M.run_matrix(["s"], ["0.45.1"], 3, run_once)
    assert result.cells[("s", "0.45.1")].verdict("flush_barrier") == "2/3 failed"


def test_versions_spec_list_and_range():
    known = ["0.33.0", "0.34.0", "0.40.0", "0.44.1", "0.45.1", "0.46.0"]
    assert M.parse_versions("0.34.0..0.45.1", lambda: known) == ["0.34.0", "0.40.0", "0.44.1", "0.45.1"]
    assert M.parse_versions("0.45.1,0.40.0", lambda: []) == ["0.40.0", "0.45.1"]
    for bad in ("latest", "0.45..0.46", "0.45.1..0.40.0", ""):
        with pytest.raises(M.MatrixUsageError):
            M.parse_versions(bad, lambda: known)
    with pytest.raises(M.MatrixUsageError, match="busbench releases fetch"):
        M.parse_versions("1.0.0..2.0.0", lambda: known)


def test_markdown_says_which_failures_the_scenario_declared():
    def run_once(scenario, version):
        return M.RunOutcome({"flush_barrier": "failed", "ground_truth": "passed"},
                            {"flush_barrier": "fail", "ground_truth": "pass"}, 1e6, "passed")
    text = MR.render_markdown(M.run_matrix(["flush"], ["0.44.1", "0.45.1"], 1, run_once))
    assert "| flush_barrier | FAIL | FAIL |" in text
    assert "Declared `expect: fail` by the scenario" in text and ": flush_barrier" in text
    assert "ground_truth" not in text.split("Declared")[1]

    def undeclared(scenario, version):
        return M.RunOutcome({"flush_barrier": "failed"}, {"flush_barrier": "pass"}, 1e6, "failed")
    assert "Declared" not in MR.render_markdown(M.run_matrix(["flush"], ["0.45.1"], 1, undeclared))


def test_html_page_carries_the_same_verdicts_and_ratios_self_contained():
    result = M.run_matrix(["flush"], VERSIONS, 2, scripted([]))
    page = MR.render_html(result, "busbench matrix flush.yaml --versions 0.40.0,0.44.1,0.45.1")
    assert '<td class="bad">FAIL</td><td class="ok">pass</td><td class="ok">pass</td>' in page
    assert '<td class="warn">n/o</td>' in page and "0.50x" in page and "1.00x" in page
    assert "<script" not in page and "http" not in page.split("<body>")[1]


def test_a_crashed_run_is_its_cell_and_the_others_go_on():
    def run_once(scenario, version):
        if version == "0.44.1":
            return M.RunOutcome({"flush_barrier": "not_evaluable"}, {"flush_barrier": "pass"},
                                None, "crashed", "the bus crashed (SIGSEGV) during step 1",
                                M.crash_text("crashed", {"signal": "SIGSEGV"}))
        return M.RunOutcome({"flush_barrier": "passed"}, {"flush_barrier": "pass"}, 1e6, "passed")
    result = M.run_matrix(["flush"], VERSIONS, 1, run_once)
    md = MR.render_markdown(result)
    assert "| flush_barrier | pass | crashed (SIGSEGV) | pass |" in md
    row = next(r for r in result.to_dict()["rows"] if r["version"] == "0.44.1")
    assert row["crashes"] == ["crashed (SIGSEGV)"] and row["statuses"] == ["crashed"]
