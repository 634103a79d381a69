"""Paths in scenario and target files resolve against the file that names them,
for every target, whatever the current directory (issue 18, part 5); errors
show the resolved path; ``validate`` never loads or imports what a scenario
names. Each test runs from a directory other than the scenario's."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from busbench.scenario import ScenarioError, load_scenario
from tests.cli_helpers import cli, flat

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = """name: paths
description: paths resolve against this file
target:
{target}
bus: {{shards: 2}}
steps: [{{run: {{events: 100}}}}]
checks: []
"""


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A current directory that is neither the repository nor the scenario's folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write(folder: Path, target: str, name="s.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(SCENARIO.format(target=target))
    return path


def test_the_examples_resolve_against_their_files_from_another_directory(elsewhere):
    python = load_scenario(ROOT / "examples/python_bus/scenario.yaml")
    assert python.target.path == str(ROOT / "examples/python_bus")
    cbus = load_scenario(ROOT / "examples/c_bus/scenario.yaml")
    # the target file resolves against the scenario, its library against the target file
    assert cbus.target.library == str(ROOT / "examples/c_bus/libcbus.so")


def test_a_relative_scenario_path_resolves_the_same(elsewhere):
    rel = os.path.relpath(ROOT / "examples/python_bus/scenario.yaml", elsewhere)
    assert load_scenario(rel).target.path == str(ROOT / "examples/python_bus")


def test_inline_c_abi_library_and_python_path_resolve_against_the_scenario(tmp_path, elsewhere):
    path = write(tmp_path / "here", "  c-abi:\n    library: lib/libx.so\n"
                 "    init: {symbol: x_new}\n"
                 "    ingest: {symbol: x_push, args: [handle, ptr, len], ok: 0}\n"
                 "    flush: {symbol: x_flush, args: [handle, timeout_ms], ok: 0}\n"
                 "    shutdown: {symbol: x_shutdown, args: [handle, grace_ms]}\n")
    assert load_scenario(path).target.library == str(tmp_path / "here/lib/libx.so")
    path = write(tmp_path / "there", "  python: {factory: 'mybus:make', path: ../code}")
    assert load_scenario(path).target.path == str(tmp_path / "code")


def test_an_override_path_is_the_users_and_resolves_against_the_current_directory(tmp_path,
                                                                                 elsewhere):
    path = write(tmp_path / "here", "  python: {factory: 'mybus:make', path: code}")
    sc = load_scenario(path, overrides=["target.python.path=mine"])
    assert sc.target.path == "mine"        # the target resolves it against the cwd, as typed


def test_a_missing_target_file_is_named_by_its_resolved_path(tmp_path, elsewhere):
    path = write(tmp_path / "here", "  c-abi: nope/target.yaml")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(tmp_path / "here/nope/target.yaml") in caught.value.format()
    r = cli("validate", path)
    assert r.exit_code == 2 and str(tmp_path / "here/nope/target.yaml") in flat(r.output)
    assert "Traceback" not in r.output


def test_a_missing_python_path_is_named_by_its_resolved_path(tmp_path, elsewhere):
    path = write(tmp_path / "here", "  python: {factory: 'mybus:make', path: no_such_dir}")
    r = cli("run", path, "--no-live", "-q", "--out", tmp_path / "out")
    out = flat(r.output)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert f"path {tmp_path / 'here/no_such_dir'} is not a folder" in out, out


def test_validate_never_imports_a_module_found_through_a_relative_path(tmp_path, elsewhere):
    code = tmp_path / "here/code"
    code.mkdir(parents=True)
    marker = tmp_path / "imported"
    (code / "trap.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                  "def make(**kw):\n    raise SystemExit('imported')\n")
    path = write(tmp_path / "here", "  python: {factory: 'trap:make', path: code}")
    r = cli("validate", path)
    assert r.exit_code == 0, r.output
    assert not marker.exists()


def test_busbench_run_of_the_python_example_from_another_directory(tmp_path):
    """The command a new user types: an absolute scenario path from elsewhere."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "busbench", "run",
                           str(ROOT / "examples/python_bus/scenario.yaml"), "--no-live", "-q",
                           "--set", "steps=[{run: {events: 2000}}, flush, {shutdown: {grace: 1s}}]",
                           "--set", "checks=[conservation, ground_truth]",
                           "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is not a folder" not in done.stderr
    assert f"with {ROOT / 'examples/python_bus'} first on sys.path" in done.stderr
