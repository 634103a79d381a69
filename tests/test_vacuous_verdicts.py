"""Verdicts that cannot be vacuous, and inputs that cannot crash validation
(issue 9 part 5): mid-run totals checks need a quiescent point; a scenario
that checks nothing is refused unless it says ``checks: []``; YAML nested
thousands deep, huge files and alias bombs are exit 2 with a message; records
are written with the user's umask."""
from __future__ import annotations

import os
import stat

import pytest
from cli_helpers import cli, flat

from busbench.scenario.quiescence import Quiescence, unsettled_checks
from busbench.reports import write_atomic
from busbench.run.runner import Runner
from busbench.scenario import ScenarioError, load_scenario_text
from busbench.scenario import loader as L


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


HEAD = "name: s\ndescription: d\n"

# ------------------------------------------------------------------ quiescence, validation


@pytest.mark.parametrize("check", ["conservation", "ground_truth"])
@pytest.mark.parametrize("before", ["- run: 100ms",
                                    "- run: 100ms\n  - flush\n  - run: 10ms",
                                    "- flush: {under_load: true}"])
def test_a_mid_run_totals_check_without_a_flush_before_it_is_refused(tmp_path, check, before):
    text = HEAD + f"steps:\n  {before}\n  - check: [flush_barrier, {check}]\n" \
                  "checks: [conservation]\n"
    if "flush" not in before:
        text = text.replace("[flush_barrier, ", "[")
    path = write(tmp_path, text)
    result = cli("validate", path)
    assert result.exit_code == 2
    out = flat(result.output)
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "- check:" in t)
    assert f"{path}:{line}:" in out and f"{check} here would read the counters" in out
    assert "add `- flush`" in out and "Traceback" not in out


@pytest.mark.parametrize("steps", ["[run: 100ms, flush, {check: [conservation, ground_truth]}]",
                                   "[{check: [conservation]}, run: 100ms]",
                                   "[run: 100ms, flush, sleep: 10ms, {check: [conservation]}]",
                                   "[run: 100ms, {check: [flush_barrier]}, flush]".replace(
                                       "{check: [flush_barrier]}, flush", "flush, {check: [flush_barrier]}")])
def test_a_mid_run_check_at_a_quiescent_point_validates(steps):
    load_scenario_text(HEAD + f"steps: {steps}\nchecks: [conservation]\n")


def test_the_static_rule_names_every_unsettled_totals_check():
    sc = load_scenario_text(HEAD + "steps: [run: 1s, flush, {check: [conservation]}]\nchecks: []\n")
    assert list(unsettled_checks(sc.steps)) == []


def test_quiescence_tracker_branches():
    q = Quiescence()
    assert q.at_check(producers_running=False, shut_down=False)          # nothing ingested yet
    q.load_started()
    assert not q.at_check(False, False) and "load ran" in q.reason
    q.flushed(reached=True, timed_out=False, under_load=False, producers_idle=True)
    assert q.at_check(False, False)
    q.flushed(reached=False, timed_out=True, under_load=False, producers_idle=True)
    assert not q.at_check(False, False) and "timed out" in q.reason
    q.flushed(reached=True, timed_out=False, under_load=True, producers_idle=True)
    assert not q.at_check(False, False) and "under load" in q.reason
    q.flushed(reached=True, timed_out=False, under_load=False, producers_idle=False)
    assert not q.at_check(False, False) and "mid-push" in q.reason
    assert q.at_check(producers_running=False, shut_down=True)            # after shutdown
    assert not q.at_check(producers_running=True, shut_down=True)


@pytest.mark.slow
def test_a_mid_run_check_while_a_producer_is_stalled_mid_push_is_not_evaluable_never_failed():
    """The flush before the check cannot settle a push frozen by a fault: the
    check must say it could not judge, not fail a correct bus."""
    sc = load_scenario_text(HEAD + """\
bus: {shards: 2, capacity: 1024}
load: {producers: 2}
steps:
  - fault: {stall_producer: {producer: 0, after: 5ms, for: 1s}}
  - run: 100ms
  - flush: {timeout: 50ms}
  - check: [conservation, ground_truth]
  - sleep: 1200ms
  - flush
  - check: [conservation, ground_truth]
checks: [conservation, ground_truth]
""")
    result = Runner(sc, timeout_s=60).run()
    mid = [v for v in result.checks if v.at == "step 3"]
    assert [v.outcome for v in mid] == ["not_evaluable", "not_evaluable"], [v.evidence for v in mid]
    later = [v for v in result.checks if v.at != "step 3"]
    assert all(v.outcome == "passed" for v in later), [(v.at, v.evidence) for v in later]
    assert result.status == "failed"          # not evaluable never passes


# ------------------------------------------------------------------ a scenario that checks nothing


def test_a_scenario_with_no_checks_is_refused_saying_how_to_add_one(tmp_path):
    path = write(tmp_path, HEAD + "steps: [run: 100ms]\n")
    for command in (["validate", path], ["run", path, "--no-live", "--out", tmp_path / "o"]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        out = flat(result.output)
        assert f"{path}:1: checks: the scenario checks nothing" in out
        assert "checks: [conservation, ground_truth]" in out and "checks: []" in out
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.json"))


def test_check_steps_alone_are_checks():
    load_scenario_text(HEAD + "steps: [run: 100ms, flush, {check: [conservation]}]\n")


def test_an_explicit_empty_checks_list_validates_with_a_warning(tmp_path):
    path = write(tmp_path, HEAD + "steps: [run: 100ms]\nchecks: []\n")
    result = cli("validate", path)
    assert result.exit_code == 0
    assert "warning: checks: [] and no check step: this scenario checks nothing" in flat(result.output)


def test_the_empty_checks_list_survives_the_record_round_trip():
    sc = load_scenario_text(HEAD + "steps: [run: 100ms]\nchecks: []\n")
    again = load_scenario_text(__import__("yaml").safe_dump(sc.to_dict()))
    assert again == sc and again.checks_nothing


# ------------------------------------------------------------------ hostile YAML


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000],
                         ids=["lists", "mappings"])
def test_yaml_nested_thousands_deep_is_exit_2_with_a_message(tmp_path, value):
    path = write(tmp_path, HEAD + "steps: [run: 1s]\nchecks: [conservation]\na: " + value + "\n")
    result = cli("validate", path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    assert f"{path}:5: mappings and lists nest more than {L.MAX_DEPTH} levels deep" in flat(result.output)


def test_block_yaml_nested_deep_is_exit_2(tmp_path):
    body = "".join("  " * i + "- a:\n" for i in range(1, 300))
    path = write(tmp_path, HEAD + "steps:\n" + body)
    result = cli("validate", path)
    assert result.exit_code == 2 and "nest more than" in flat(result.output)


def test_nesting_within_the_cap_is_read_and_judged_by_the_schema():
    deep = "[" * (L.MAX_DEPTH - 1) + "]" * (L.MAX_DEPTH - 1)
    with pytest.raises(ScenarioError) as error:
        load_scenario_text(HEAD + f"steps: [run: 1s]\nchecks: [conservation]\na: {deep}\n")
    assert "unknown key" in str(error.value)


def test_a_file_over_the_size_cap_is_refused_before_reading(tmp_path):
    path = write(tmp_path, HEAD + "steps: [run: 1s]\n" + "#" * (L.MAX_FILE_BYTES + 1) + "\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "a scenario file may be at most 1,048,576 bytes" in flat(result.output)


def test_an_alias_bomb_is_refused_not_expanded(tmp_path):
    lines = [HEAD.strip(), "steps: [run: 1s]", "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert f"expands to more than {L.MAX_VALUES:,} values" in flat(result.output)


def test_a_deep_set_value_is_exit_2():
    result = cli("validate", "scenarios/quickstart.yaml", "--set", "load.keys=" + "[" * 2000 + "]" * 2000)
    assert result.exit_code == 2 and "--set load.keys" in result.output
    assert "nests more than" in flat(result.output)


# ------------------------------------------------------------------ record permissions


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_records_are_written_with_the_users_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = write_atomic(tmp_path / "r.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
