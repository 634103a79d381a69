"""The command line of releases side by side: ``releases fetch TARGET VERSION...``
(and the old spelling), ``matrix --plan N``, ``--job K --of N`` usage, and
``matrix --merge`` over parts written as CI jobs write them. No run, no network:
the runs behind the parts are scripted (tests/test_matrix_plan.py covers the logic,
tests/netmesh/test_netmesh_side_by_side.py real runs)."""
import json

from cli_helpers import cli, flat

from busbench.verdicts import matrix as M

NETMESH = ["scenarios/net-mesh/quickstart.yaml", "scenarios/net-mesh/flush_quiescent.yaml",
           "scenarios/net-mesh/shutdown_without_flush.yaml"]
VERSIONS = ["0.44.1", "0.45.1"]


def test_releases_fetch_takes_a_target_and_keeps_the_old_spelling_for_net_mesh(tmp_path):
    env = {"BUSBENCH_CACHE_DIR": str(tmp_path)}
    typo = cli("releases", "fetch", "kafak", "2.0.2", env=env)
    assert typo.exit_code == 2 and "did you mean 'kafka'" in flat(typo.output)
    bare = cli("releases", "fetch", "kafka", env=env)
    assert bare.exit_code == 2 and "busbench releases fetch kafka 2.16.1" in flat(bare.output)
    bad = cli("releases", "fetch", "kafka", "newest", env=env)
    assert bad.exit_code == 2 and "expected a confluent-kafka release like 2.16.1" in flat(bad.output)
    old = cli("releases", "fetch", "x.y", env=env)
    assert old.exit_code == 2 and "expected a net-mesh release like 0.45.1" in flat(old.output)
    listed = cli("releases", "list", env=env)
    assert "busbench releases fetch net-mesh 0.45.1" in flat(listed.output)
    assert "busbench releases fetch kafka 2.16.1" in flat(listed.output)
    assert cli("releases", "list", "kafka", env=env).output.count("no kafka release") == 1


def test_plan_writes_a_github_actions_include_list_and_runs_nothing(tmp_path):
    plan = tmp_path / "plan.json"
    result = cli("matrix", *NETMESH, "--versions", ",".join(VERSIONS), "--repeat", "3",
                 "--plan", "2", "--json", plan)
    assert result.exit_code == 0, result.output
    data = json.loads(plan.read_text())
    assert list(data) == ["include"] and [e["job"] for e in data["include"]] == [1, 2]
    names = " ".join(e["scenarios"] for e in data["include"]).split()
    assert sorted(names) == ["net-mesh-flush-quiescent", "net-mesh-quickstart",
                             "net-mesh-shutdown-without-flush"]
    assert {e["versions"] for e in data["include"]} == {"0.44.1,0.45.1"}
    assert {e["repeat"] for e in data["include"]} == {3} and len({e["plan"] for e in data["include"]}) == 1
    assert "[round" not in result.output                              # nothing ran


def test_job_and_plan_usage_mistakes_are_one_line_and_exit_2(tmp_path):
    cases = [(["--plan", "2"], "give --json plan.json"),
             (["--job", "1"], "--job K and --of N go together"),
             (["--job", "1", "--of", "2"], "give --json parts/part-1.json"),
             (["--job", "1", "--of", "5", "--json", tmp_path / "p.json"],
              "split into 3 job(s)"),
             (["--plan", "2", "--merge"], "choose one")]
    for extra, expected in cases:
        result = cli("matrix", *NETMESH, "--versions", "0.45.1", "--no-fetch", *extra)
        assert result.exit_code == 2 and expected in flat(result.output), (extra, result.output)
        assert "Traceback" not in result.output


def _write_part(tmp_path, name, job, environment):
    speed = {"0.44.1": 1.0, "0.45.1": 2.0}

    def run_once(scenario, version):
        return M.RunOutcome({"ground_truth": "passed"}, {"ground_truth": "pass"}, speed[version] * 1e5,
                            "passed")
    result = M.run_matrix(list(job.scenarios), VERSIONS, 1, run_once)
    data = M.part_record(result, job, "f" * 16, environment, {s: "h" for s in job.scenarios}, env={})
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_merge_joins_parts_into_markdown_and_html_saying_where_rows_came_from(tmp_path):
    jobs = M.plan_jobs({"a": 1.0, "b": 1.0}, VERSIONS, 1, 2)
    one = {"cpu_model": "cpu-one", "cores_usable": 2, "machine": "x86_64", "hostname": "host-one"}
    two = dict(one, cpu_model="cpu-two", hostname="host-two")
    p1, p2 = _write_part(tmp_path, "p1.json", jobs[0], one), _write_part(tmp_path, "p2.json", jobs[1], two)
    md, page, js = tmp_path / "m.md", tmp_path / "m.html", tmp_path / "m.json"
    result = cli("matrix", "--merge", p1, p2, "--markdown", md, "--html", page, "--json", js)
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert "| ground_truth | pass | pass |" in text and "0.50x" in text
    assert "host-one" in text and "host-two" in text and "cpu_model differs" in text
    assert "host-two" in page.read_text()
    data = json.loads(js.read_text())
    assert [p["job"] for p in data["parts"]] == [1, 2] and data["provenance"]["a"].startswith(str(p1))


def test_merge_refuses_one_scenario_from_two_machines_and_a_file_that_is_no_part(tmp_path):
    jobs = M.plan_jobs({"a": 1.0, "b": 1.0}, VERSIONS, 1, 2)
    one = {"cpu_model": "cpu-one", "cores_usable": 2, "machine": "x86_64", "hostname": "host-one"}
    p1 = _write_part(tmp_path, "p1.json", jobs[0], one)
    rerun = _write_part(tmp_path, "rerun.json", jobs[0], dict(one, cores_usable=8, hostname="big"))
    result = cli("matrix", "--merge", p1, rerun, "--markdown", tmp_path / "m.md")
    assert result.exit_code == 2
    assert "its row cannot hold ratios from both, they ran on different machines: cores_usable " \
           "differs" in flat(result.output)
    assert not (tmp_path / "m.md").exists()
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    bad = cli("matrix", "--merge", p1, junk)
    assert bad.exit_code == 2 and "junk.json: not JSON" in flat(bad.output)
