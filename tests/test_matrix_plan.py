"""A matrix fanned out over a CI system's matrix (busbench/verdicts/matrix.py, rendered by busbench/reports/matrix.py): the plan
(at most N jobs, each scenario whole across its releases, a GitHub Actions
include list), one job, and the merge of the parts: joined row by row, saying
where each row was measured, refusing a row from two machines or two runs."""
import json

import pytest

from busbench.reports import matrix as MR
from busbench.verdicts import matrix as M

VERSIONS = ["0.40.0", "0.44.1", "0.45.1"]
ESTIMATES = {"flush": 3.0, "shutdown": 1.0, "quickstart": 1.0, "backpressure": 2.0}
MACHINE_A = {"cpu_model": "AMD EPYC 7763", "cores_usable": 4, "machine": "x86_64",
             "hostname": "runner-a", "python": "3.11.7"}
MACHINE_B = dict(MACHINE_A, cpu_model="Intel Xeon Platinum 8370C", hostname="runner-b")


def scripted(speed):
    def run_once(scenario, version):
        flush = "failed" if version == "0.40.0" else "passed"
        return M.RunOutcome({"flush_barrier": flush}, {"flush_barrier": "pass"},
                            speed[version] * 1e6, "passed")
    return run_once


def test_a_plan_has_at_most_n_jobs_each_scenario_whole_and_balanced():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 2)
    assert [j.index for j in jobs] == [1, 2] and {j.of for j in jobs} == {2}
    members = [s for j in jobs for s in j.scenarios]
    assert sorted(members) == sorted(ESTIMATES)                    # every scenario exactly once
    # longest first onto the least loaded: {flush, shutdown} = 4 s against {backpressure, quickstart} = 3 s
    assert {frozenset(j.scenarios) for j in jobs} == {frozenset({"flush", "shutdown"}),
                                                      frozenset({"backpressure", "quickstart"})}
    assert sorted(j.estimate_s for j in jobs) == [3.0 * 3 * 2, 4.0 * 3 * 2]   # x releases x rounds
    assert len(M.plan_jobs(ESTIMATES, VERSIONS, 1, 10)) == 4       # never more jobs than scenarios
    assert len(M.plan_jobs(ESTIMATES, VERSIONS, 1, 1)) == 1


def test_the_same_scenarios_in_another_order_give_the_same_jobs():
    shuffled = dict(reversed(list(ESTIMATES.items())))
    assert M.plan_jobs(shuffled, VERSIONS, 1, 3) == M.plan_jobs(ESTIMATES, VERSIONS, 1, 3)


def test_the_plan_is_a_github_actions_include_list():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 3)
    plan = M.plan_include(jobs, VERSIONS, 2, "net-mesh", "f" * 16)
    assert list(plan) == ["include"]               # any other top-level key becomes a dimension
    entry = plan["include"][0]
    assert entry["job"] == 1 and entry["of"] == 3 and entry["versions"] == "0.40.0,0.44.1,0.45.1"
    assert entry["cells"] == len(entry["scenarios"].split()) * 3
    for e in plan["include"]:                      # values a workflow expression can splice
        assert all(isinstance(v, (str, int, float)) for v in e.values())
    assert json.loads(json.dumps(plan)) == plan


def test_job_k_of_n_is_the_planned_job_and_a_wrong_n_says_the_plans():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 1, 8)              # 4 scenarios: 4 jobs
    assert M.select_job(jobs, 2, 4) == jobs[1]
    with pytest.raises(M.MatrixUsageError, match="use the plan's \"of\" value, --of 4"):
        M.select_job(jobs, 2, 8)
    with pytest.raises(M.MatrixUsageError, match="expected 1..4"):
        M.select_job(jobs, 5, 4)


def _part(job, scenarios, environment, speed=None, fingerprint="p" * 16, versions=VERSIONS, ci=None):
    speed = speed or {"0.40.0": 1.0, "0.44.1": 1.0, "0.45.1": 2.0}
    result = M.run_matrix(list(job.scenarios), versions, 2, scripted(speed))
    hashes = {s: f"h-{s}" for s in scenarios}
    return json.loads(json.dumps(M.part_record(result, job, fingerprint, environment, hashes,
                                               env=ci or {})))


def test_parts_from_two_machines_merge_row_by_row_saying_where_each_came_from():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 2)
    a = _part(jobs[0], ESTIMATES, MACHINE_A, ci={"RUNNER_NAME": "gh-1", "GITHUB_RUN_ID": "42"})
    b = _part(jobs[1], ESTIMATES, MACHINE_B, speed={"0.40.0": 3.0, "0.44.1": 1.0, "0.45.1": 1.0})
    merged = M.merge_parts([("parts/b.json", b), ("parts/a.json", a)])
    assert merged.scenarios == list(jobs[0].scenarios) + list(jobs[1].scenarios)  # job order
    s1, s2 = jobs[0].scenarios[0], jobs[1].scenarios[0]
    assert merged.ratio(s1, "0.44.1")["ratio_of_medians"] == pytest.approx(0.5)   # A's own ratios
    assert merged.ratio(s2, "0.40.0")["ratio_of_medians"] == pytest.approx(3.0)   # B's own ratios
    assert "parts/a.json (job 1/2, host runner-a, runner gh-1, AMD EPYC 7763" in merged.provenance[s1]
    assert "parts/b.json (job 2/2, host runner-b" in merged.provenance[s2]
    assert any("different machines" in n and "cpu_model differs" in n for n in merged.notes)
    md = MR.render_markdown(merged)
    assert f"Measured by {merged.provenance[s1]}." in md and "| flush_barrier | FAIL | pass | pass |" in md
    page = MR.render_html(merged)
    assert "runner-b" in page and "cpu_model differs" in page
    assert merged.to_dict()["provenance"][s2] == merged.provenance[s2]


def test_a_scenario_measured_on_two_machines_is_refused_naming_both():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 2)
    a = _part(jobs[0], ESTIMATES, MACHINE_A)
    again = _part(jobs[0], ESTIMATES, MACHINE_B)                  # job 1 re-run elsewhere
    with pytest.raises(M.MatrixMergeError) as e:
        M.merge_parts([("a.json", a), ("a-rerun.json", again)])
    text = str(e.value)
    assert f"scenario {jobs[0].scenarios[0]} is in a.json (job 1/2, host runner-a" in text
    assert "a-rerun.json (job 1/2, host runner-b" in text
    assert "different machines: cpu_model differs" in text


def test_a_scenario_run_twice_on_one_machine_is_refused_too():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 2)
    with pytest.raises(M.MatrixMergeError, match="two runs"):
        M.merge_parts([("a.json", _part(jobs[0], ESTIMATES, MACHINE_A)),
                       ("b.json", _part(jobs[0], ESTIMATES, MACHINE_A))])


def test_parts_of_different_plans_or_releases_and_files_that_are_no_part_are_refused():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 2)
    a = _part(jobs[0], ESTIMATES, MACHINE_A)
    with pytest.raises(M.MatrixMergeError, match="different plans"):
        M.merge_parts([("a.json", a), ("b.json", _part(jobs[1], ESTIMATES, MACHINE_A, fingerprint="q" * 16))])
    other = _part(jobs[1], ESTIMATES, MACHINE_A, versions=["0.44.1", "0.45.1"])
    with pytest.raises(M.MatrixMergeError, match="different releases"):
        M.merge_parts([("a.json", a), ("b.json", other)])
    whole = M.run_matrix(["flush"], VERSIONS, 1, scripted({v: 1.0 for v in VERSIONS})).to_dict()
    with pytest.raises(M.MatrixMergeError, match="m.json: not a part"):
        M.merge_parts([("a.json", a), ("m.json", whole)])


def test_a_missing_job_is_said_not_hidden():
    jobs = M.plan_jobs(ESTIMATES, VERSIONS, 2, 3)
    merged = M.merge_parts([("a.json", _part(jobs[0], ESTIMATES, MACHINE_A))])
    assert merged.notes == ["incomplete: job(s) 2, 3 of 3 are missing; their scenarios are not in "
                            "this matrix"]
    assert merged.notes[0] in MR.render_markdown(merged)


def test_a_part_read_back_renders_as_the_matrix_that_wrote_it():
    result = M.run_matrix(["flush"], VERSIONS, 2, scripted({"0.40.0": 1.0, "0.44.1": 1.0, "0.45.1": 2.0}))
    again = M.MatrixResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert MR.render_markdown(again) == MR.render_markdown(result)
