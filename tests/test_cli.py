"""The command line, as a user (and CI) meets it: help, validate, list, usage errors.

Most tests go through ``click.testing.CliRunner`` over ``busbench.cli.main``; a
few run ``python -m busbench`` in a real process where the process matters (a CI
log with no terminal, so rich falls back to 80 columns). Runs here are short
(``run: 100ms``); the long end-to-end runs are in test_scenarios_e2e.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from busbench.cli import main
from cli_helpers import STYLE_ENV as _STYLE_ENV
from cli_helpers import cli, flat

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
BAD_DIR = REPO / "tests" / "data" / "bad_scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml")) + sorted((SCENARIOS / "mutations").glob("*.yaml"))
BAD = sorted(BAD_DIR.glob("*.yaml"))


SHORT_OK = """\
name: short_ok
description: a short run whose checks pass
seed: 1
bus: {shards: 4, adapter: {kind: verify}}
load: {producers: 1}
steps:
  - run: 100ms
  - shutdown: {grace: 5s}
checks:
  - conservation
"""




def ci_process(*args, timeout=60):
    """``python -m busbench`` as in a CI job: no terminal anywhere, no COLUMNS."""
    env = {k: v for k, v in os.environ.items() if k not in (*_STYLE_ENV, "COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "busbench", *map(str, args)], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository root, so that paths are short and relative as a user types them."""
    monkeypatch.chdir(REPO)
    return REPO


@pytest.fixture
def short_ok(tmp_path):
    path = tmp_path / "short_ok.yaml"
    path.write_text(SHORT_OK)
    return path


# --------------------------------------------------------------------------- help


def test_main_help_lists_commands_and_exit_codes():
    result = cli("--help")
    assert result.exit_code == 0
    text = flat(result.output)
    for command in ("run", "compare", "validate", "list", "lab"):
        assert re.search(rf"\b{command}\b", text), command
    assert "Exit codes" in text
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"\b{code}\b", text), code
    assert "interrupted" in text


def test_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert "busbench" in result.output


def test_run_help_mentions_key_options():
    result = cli("run", "--help")
    assert result.exit_code == 0
    for option in ("--set", "--seed", "--out", "--junit", "--markdown", "--live / --no-live",
                   "--quiet", "--baseline", "--max-regression"):
        assert option in result.output, option


def test_compare_help_mentions_key_options():
    result = cli("compare", "--help")
    assert result.exit_code == 0
    for option in ("--vary", "--repeat", "--metric", "--set", "--json", "--plot"):
        assert option in result.output, option


def test_lab_false_sharing_help_mentions_key_options():
    result = cli("lab", "false-sharing", "--help")
    assert result.exit_code == 0
    for option in ("--strides", "--threads", "--repeats", "--json"):
        assert option in result.output, option


def test_no_command_shows_usage():
    result = cli()
    assert result.exit_code in (0, 2)          # click: group without a command shows its help
    assert "Usage" in result.output


def test_unknown_command_is_a_usage_error():
    result = cli("runn", "scenarios/quickstart.yaml")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- validate / list


def test_shipped_scenarios_exist():
    assert (SCENARIOS / "quickstart.yaml") in SHIPPED
    assert len(list((SCENARIOS / "mutations").glob("*.yaml"))) >= 9


def test_validate_every_shipped_scenario():
    result = cli("validate", *SHIPPED)
    assert result.exit_code == 0, result.output
    for path in SHIPPED:
        assert f"ok  {path}" in result.output, path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(SCENARIOS).as_posix())
def test_validate_each_shipped_scenario(path):
    result = cli("validate", path)
    assert result.exit_code == 0, result.output


def _shipped_names():
    from busbench.scenario import load_scenario
    return {p: load_scenario(p).name for p in SHIPPED}


def test_list_shows_every_scenario_name(in_repo):
    # wide enough for the table; the default CI width is tested below
    result = cli("list", "scenarios", columns=250)
    assert result.exit_code == 0, result.output
    for name in _shipped_names().values():
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", result.output, re.M), name


def test_list_default_directory_is_scenarios(in_repo):
    result = cli("list", columns=250)
    assert result.exit_code == 0
    assert "quickstart" in result.output


def test_list_shows_names_in_a_ci_log():
    """Regression (found and fixed): in a CI log (no terminal: rich assumes 80 columns) `busbench list`
    truncates long scenario names with an ellipsis ("mutation_dispatch_counte…"),
    so the names cannot be read or copied from the log."""
    proc = ci_process("list", "scenarios")
    assert proc.returncode == 0, proc.stderr
    missing = [name for name in _shipped_names().values()
               if not re.search(rf"(^|\s){re.escape(name)}(\s|$)", proc.stdout, re.M)]
    assert not missing, f"names truncated in `busbench list` at 80 columns: {missing}\n{proc.stdout}"


def test_list_not_a_directory_is_usage_error(tmp_path):
    result = cli("list", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_list_shows_broken_files_with_their_error(tmp_path):
    (tmp_path / "good.yaml").write_text(SHORT_OK)
    (tmp_path / "bad.yaml").write_text((BAD_DIR / "unknown_bus_key.yaml").read_text())
    result = cli("list", tmp_path, columns=250)
    assert result.exit_code == 0
    assert "short_ok" in result.output
    assert "shardz" in result.output


def test_validate_missing_file_is_usage_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = cli("validate", missing)
    assert result.exit_code == 2
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_validate_reports_every_bad_file_not_only_the_first(in_repo):
    a, b = "tests/data/bad_scenarios/unknown_bus_key.yaml", "tests/data/bad_scenarios/empty_steps.yaml"
    result = cli("validate", a, "scenarios/quickstart.yaml", b)
    assert result.exit_code == 2
    assert f"{a}:5:" in result.output and f"{b}:4:" in result.output


# --------------------------------------------------------------------------- malformed corpus


def _expectation(path: Path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = re.match(r"#\s*expect:\s*line=(\d+)\s+(.*)$", first)
    assert m, f"{path.name}: first line must be '# expect: line=N fragment'"
    return int(m.group(1)), m.group(2).strip()


def test_bad_corpus_is_not_empty():
    assert len(BAD) >= 30


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_scenario_gives_exit_2_naming_file_and_line(in_repo, tmp_path, path, command):
    line, fragment = _expectation(path)
    rel = path.relative_to(REPO).as_posix()
    args = [command, rel] if command == "validate" else [command, rel, "--no-live",
                                                         "--out", tmp_path / "out"]
    result = cli(*args, columns=80)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{rel}:{line}:" in result.output, result.output
    assert fragment in flat(result.output), result.output
    if command == "run":      # nothing ran, nothing was written
        assert "record:" not in result.output
        assert not list(tmp_path.glob("out/*.json"))


def test_bad_scenario_error_is_one_line_in_a_ci_log(tmp_path):
    """Regression (found and fixed): scenario errors are printed through a rich Console that wraps at the
    terminal width, 80 columns in a CI log: a long path is cut in the middle of
    ``FILE:LINE:`` and the key lands on another line than its file, so neither
    a person nor an editor's ``file:line`` link can use it."""
    deep = tmp_path / ("scenario_files_for_the_nightly_job_" * 2) / "shards"
    deep.mkdir(parents=True)
    bad = deep / "unknown_bus_key.yaml"
    bad.write_text((BAD_DIR / "unknown_bus_key.yaml").read_text())
    proc = ci_process("validate", bad)
    assert proc.returncode == 2
    assert any(f"{bad}:5: bus.shardz: unknown key" in line for line in proc.stderr.splitlines()), \
        proc.stderr


# --------------------------------------------------------------------------- --set


@pytest.mark.parametrize("override, words", [
    ("bus.shardz=8", ["bus.shardz", "unknown key", "shards"]),
    ("nope.x=1", ["nope.x", "unknown key"]),
    ("bus.shards=four", ["bus.shards", "four"]),
    ("bus.shards=2000", ["bus.shards", "at most 1024"]),
    ("bus.shards", ["expected KEY=VALUE"]),
    ("=8", ["expected KEY=VALUE"]),
    ("bus.mutations=[flush_single_window", ["not valid YAML"]),
    ("bus..shards=8", ["empty part"]),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_set_errors_give_exit_2_naming_set(tmp_path, command, override, words):
    args = [command, SCENARIOS / "quickstart.yaml", "--set", override]
    if command == "run":
        args += ["--no-live", "--out", tmp_path / "out"]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = flat(result.output)
    assert f"--set {override}" in text, text
    for word in words:
        assert word in text, (word, text)


def test_set_valid_override_validates():
    result = cli("validate", SCENARIOS / "quickstart.yaml", "--set", "bus.shards=8")
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_set_several_overrides_validate():
    result = cli("validate", SCENARIOS / "quickstart.yaml", "--set", "bus.shards=8",
                 "--set", "load.producers=1", "--set", "steps.0.run=100ms",
                 "--set", "bus.mutations=[flush_single_window]")
    assert result.exit_code == 0, result.output


def test_set_value_checked_against_the_rest_of_the_scenario():
    # hot_shard sends 90% of keys to shard 3: with 2 shards that shard does not exist
    result = cli("validate", SCENARIOS / "hot_shard.yaml", "--set", "bus.shards=2")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- run: usage errors


def test_run_without_files_is_usage_error():
    result = cli("run")
    assert result.exit_code == 2


def test_run_missing_file_is_usage_error(tmp_path):
    result = cli("run", tmp_path / "missing.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "missing.yaml" in result.output
    assert "Traceback" not in result.output


def _quickstart_long():
    # quickstart is ~4 s of load: if a usage error let it run, the test would notice
    return SCENARIOS / "quickstart.yaml"


def test_run_unwritable_junit_fails_before_running(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    out = tmp_path / "out"
    result = cli("run", _quickstart_long(), "--no-live", "--out", out,
                 "--junit", blocker / "sub" / "j.xml")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "j.xml" in result.output
    assert "record:" not in result.output and "quickstart step" not in result.output
    assert not out.exists() or not list(out.glob("*.json"))


def test_run_unwritable_markdown_fails_before_running(tmp_path):
    out = tmp_path / "out"
    result = cli("run", _quickstart_long(), "--no-live", "--out", out,
                 "--markdown", tmp_path)          # a directory, not a file
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "record:" not in result.output


def test_run_unwritable_out_fails_before_running(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x\n")
    result = cli("run", _quickstart_long(), "--no-live", "--out", blocker / "results")
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
    assert "Traceback" not in result.output
    assert "record:" not in result.output


def test_run_bad_baseline_is_usage_error(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{not json")
    result = cli("run", _quickstart_long(), "--no-live", "--out", tmp_path / "out",
                 "--baseline", baseline)
    assert result.exit_code == 2, result.output
    assert "--baseline" in result.output
    assert "record:" not in result.output


def test_run_bad_max_regression_is_usage_error(tmp_path):
    result = cli("run", _quickstart_long(), "--no-live", "--out", tmp_path / "out",
                 "--max-regression", "lots")
    assert result.exit_code == 2, result.output
    assert "--max-regression" in result.output
    assert "record:" not in result.output


def test_run_validates_every_file_before_running_any(in_repo, tmp_path, short_ok):
    out = tmp_path / "out"
    bad = "tests/data/bad_scenarios/unknown_bus_key.yaml"
    result = cli("run", short_ok, bad, "--no-live", "--out", out)
    assert result.exit_code == 2
    assert f"{bad}:5:" in result.output
    assert "record:" not in result.output
    assert not out.exists() or not list(out.glob("*.json"))


def test_run_bad_seed_is_usage_error(tmp_path):
    result = cli("run", _quickstart_long(), "--seed", "abc", "--out", tmp_path / "out")
    assert result.exit_code == 2


def test_ctrl_c_during_warm_up_exits_130(tmp_path, short_ok, monkeypatch):
    """Regression (found and fixed): Ctrl-C (or SIGTERM) while the kernels compile or load at the start of
    a run (``warm_up()``, called in ``Runner.run`` before its ``try``) escapes the
    runner; click turns the KeyboardInterrupt into "Aborted!" and exit code 1,
    which CI reads as "a check failed", and no record is written. PRODUCT.md:
    130 interrupted."""
    def interrupted(*_say):
        raise KeyboardInterrupt
    import busbench.targets.builtin
    monkeypatch.setattr(busbench.targets.builtin, "warm_up", interrupted)
    # in this process (the patch lives here); supervised, tests/test_supervised.py
    result = cli("run", short_ok, "--no-live", "--out", tmp_path / "out", "--no-isolate")
    assert result.exit_code == 130, (result.exit_code, result.output)


def test_unwritable_step_summary_is_not_a_traceback(tmp_path, short_ok):
    """Regression (found and fixed): an unwritable $GITHUB_STEP_SUMMARY is only opened after the run, and
    the error escapes as a traceback with exit code 1 ("a check failed") although
    every check passed. It should be checked before the run like --junit (exit 2),
    or reported as a warning keeping the run's exit code."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x\n")
    result = CliRunner().invoke(main, ["run", str(short_ok), "--no-live", "-q",
                                       "--out", str(tmp_path / "out")],
                                env=dict(_STYLE_ENV, GITHUB_STEP_SUMMARY=str(blocker / "summary.md")))
    assert not (result.exception and not isinstance(result.exception, SystemExit)), \
        f"uncaught {result.exception!r}"
    assert result.exit_code in (0, 2), result.exit_code


# --------------------------------------------------------------------------- compare: usage errors


PADDED = SCENARIOS / "padded_vs_packed.yaml"


def test_compare_vary_without_equals_is_usage_error(tmp_path):
    result = cli("compare", PADDED, "--vary", "bus.counters", "--repeat", "2")
    assert result.exit_code == 2
    assert "--vary" in result.output
    assert "Traceback" not in result.output


def test_compare_vary_single_value_is_usage_error():
    result = cli("compare", PADDED, "--vary", "bus.counters=padded", "--repeat", "2")
    assert result.exit_code == 2
    assert "--vary" in result.output


def test_compare_vary_unknown_key_is_usage_error():
    result = cli("compare", PADDED, "--vary", "bus.countrs=padded,packed", "--repeat", "2")
    assert result.exit_code == 2
    assert "bus.countrs" in result.output
    assert "Traceback" not in result.output


def test_compare_vary_bad_value_is_usage_error():
    result = cli("compare", PADDED, "--vary", "bus.counters=padded,stuffed", "--repeat", "2")
    assert result.exit_code == 2
    assert "stuffed" in result.output
    assert "Traceback" not in result.output


def test_compare_unknown_metric_is_usage_error():
    result = cli("compare", PADDED, "--vary", "bus.counters=padded,packed", "--metric", "thruput")
    assert result.exit_code == 2
    assert "--metric" in result.output and "throughput" in result.output


@pytest.mark.parametrize("repeat", ["1", "0", "many"])
def test_compare_repeat_too_small_is_usage_error(repeat):
    result = cli("compare", PADDED, "--vary", "bus.counters=padded,packed", "--repeat", repeat)
    assert result.exit_code == 2
    assert "--repeat" in result.output


def test_compare_requires_vary():
    result = cli("compare", PADDED)
    assert result.exit_code == 2
    assert "--vary" in result.output


def test_compare_unwritable_json_is_usage_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x\n")
    result = cli("compare", PADDED, "--vary", "bus.counters=padded,packed", "--repeat", "2",
                 "--json", blocker / "c.json")
    assert result.exit_code == 2
    assert "c.json" in result.output
    assert "warm-up" not in result.output


def test_compare_bad_scenario_is_usage_error(in_repo):
    bad = "tests/data/bad_scenarios/unknown_bus_key.yaml"
    result = cli("compare", bad, "--vary", "bus.counters=padded,packed", "--repeat", "2")
    assert result.exit_code == 2
    assert f"{bad}:5:" in result.output
    assert result.output.count(f"{bad}:5:") == 1      # one message, not one per variant


# --------------------------------------------------------------------------- lab: usage errors


@pytest.mark.parametrize("strides", ["7", "8,12", "0", "-8", "x", "8,,abc"])
def test_lab_bad_strides_is_usage_error(strides):
    result = cli("lab", "false-sharing", "--strides", strides, "--repeats", "1")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("option, value", [("--threads", "0"), ("--repeats", "0"),
                                           ("--repeats", "1000")])
def test_lab_bad_counts_are_usage_errors(option, value):
    result = cli("lab", "false-sharing", option, value)
    assert result.exit_code == 2
    assert option in result.output


def test_lab_bad_json_path_is_not_a_traceback(tmp_path):
    result = cli("lab", "false-sharing", "--strides", "8,128", "--repeats", "1", "--json", tmp_path)
    # a directory given as the JSON path
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_validate_output_names_steps_and_checks():
    result = cli("validate", SCENARIOS / "quickstart.yaml")
    assert result.exit_code == 0
    assert re.search(r"quickstart: \d+ steps, \d+ checks", result.output)


def test_record_is_json_for_a_short_run(tmp_path, short_ok):
    """A smoke test of run through CliRunner: exit 0, one record, status passed."""
    out = tmp_path / "out"
    result = cli("run", short_ok, "--no-live", "--out", out)
    assert result.exit_code == 0, result.output
    records = list(out.glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "passed"
    assert record["exit_code"] == 0
