"""`busbench run` drives the real net-mesh through the runner (issue 10), in-process.

The quickstart must come out as it declares (conservation with Redis standing in for
events_dispatched, ground_truth from the streams), a key net-mesh cannot honour is a
validation error (exit 2) naming file, line and key, a missing extra is a clear message,
and no redis-server is left running.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import cli, flat

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios/net-mesh/quickstart.yaml"


def _record(out: Path) -> dict:
    (path,) = sorted(out.glob("*.json"))
    return json.loads(path.read_text())


def test_quickstart_passes_its_declared_checks(tmp_path, no_redis_left, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("run", QUICKSTART, "--out", tmp_path, "--no-live")
    text = flat(result.output)
    assert result.exit_code == 0, text
    assert "net-mesh 0.45.1 C ABI (the installed package" in text      # said before loading it
    assert "not observable on this target: lossy_shutdown" in text
    record = _record(tmp_path)
    assert record["target"] == "net-mesh" and record["status"] == "passed"
    native = record["environment"]["native_library"]          # which library drove the run
    assert native["version"] == "0.45.1" and native["library"].endswith(".so")
    assert native["version_source"] == "installed distribution's metadata"
    verdicts = {c["name"]: c for c in record["checks"]}
    assert verdicts["conservation"]["outcome"] == "passed"
    assert "stands in for it" in verdicts["conservation"]["evidence"]
    gt = verdicts["ground_truth"]
    assert gt["outcome"] == "passed" and gt["numbers"]["witness"] == "redis streams"
    offered = sum(p["offered"] for p in record["producers"])
    assert offered > 0 and gt["numbers"]["received"] == offered
    caps = record["capabilities"]
    assert caps["ingested_counts"] == "landed" and "shutdown_was_lossy" in caps["reasons"]
    assert cli("check", *tmp_path.glob("*.json")).exit_code == 0    # the record alone agrees


@pytest.mark.parametrize(("edit", "key", "words"), [
    ("load:\n  keys: round_robin\n", "load.keys", "hash of the payload"),
    ("capacity: 65536", "bus.capacity", ">= 1024"),
    ("bus:\n  workers: 2\n", "bus.workers", "not supported by target net-mesh"),
])
def test_a_key_net_mesh_cannot_honour_is_exit_2(tmp_path, edit, key, words):
    text = QUICKSTART.read_text()
    if edit.startswith("capacity"):
        text = text.replace(edit, "capacity: 512")
    else:
        section = edit.split(":")[0] + ":\n"
        text = text.replace(section, edit, 1) if section in text else text + edit
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = cli("run", path, "--out", tmp_path / "out")
    out = flat(result.output)
    assert result.exit_code == 2, out
    assert key in out and words in out and "s.yaml" in out
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_stall_producer_with_the_binding_driver_is_refused(tmp_path):
    text = QUICKSTART.read_text().replace("driver: c-abi", "driver: binding").replace(
        "steps:\n", "steps:\n  - fault: {stall_producer: {producer: 0, for: 10ms}}\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = cli("validate", path)
    assert result.exit_code == 2 and "driver: binding" in flat(result.output)


def test_a_missing_extra_is_a_clear_message(tmp_path, monkeypatch, no_redis_left):
    import importlib.util

    from busbench.native import libraries
    real = importlib.util.find_spec
    monkeypatch.setattr(libraries.importlib.util, "find_spec",
                        lambda name, *a: None if name == "net" else real(name, *a))
    monkeypatch.chdir(ROOT)
    # --no-isolate: the patched lookup lives in this process
    result = cli("run", QUICKSTART, "--out", tmp_path, "--no-live", "--no-isolate")
    out = flat(result.output)
    assert result.exit_code == 3, out
    assert "net-mesh is not installed" in out and "pip install -e '.[net-mesh]'" in out
    assert "Traceback" not in out


def test_a_missing_redis_client_names_the_extra_before_any_server_starts(tmp_path, monkeypatch,
                                                                        no_redis_left):
    import sys
    monkeypatch.setitem(sys.modules, "redis", None)      # `import redis` now fails
    monkeypatch.chdir(ROOT)
    # --no-isolate: the missing module is missing in this process only
    result = cli("run", QUICKSTART, "--out", tmp_path, "--no-live", "--no-isolate")
    out = flat(result.output)
    assert result.exit_code == 3, out
    assert "the redis client is not installed" in out and "pip install -e '.[net-mesh]'" in out
    assert "Traceback" not in out and "ModuleNotFoundError" not in out.split("redis client")[0]


def test_the_binding_drives_only_the_installed_release(tmp_path):
    """driver: binding pushes through the installed `net` module: asking it for another
    release is a usage error (exit 2), never a run of the wrong version."""
    path = tmp_path / "s.yaml"
    path.write_text("name: bind-old\ndescription: d\n"
                    "target: {net-mesh: {version: 0.44.1, driver: binding}}\n"
                    "steps: [{run: 100ms}]\nchecks: [ground_truth]\n")
    result = cli("run", path, "--out", tmp_path / "out", "--no-live")
    assert result.exit_code == 2
    assert "runs only with driver: c-abi" in flat(result.output)
