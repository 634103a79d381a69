"""The examples under examples/: their target files and scenarios validate, and net-mesh
declared as a c-abi target (examples/net_mesh_cabi) drives the real net-mesh.

Each example scenario validates whole (the schema accepts ``target: {c-abi: ...}``,
``{python: ...}`` and ``{net-mesh: ...}``); a foreign target is also checked on its own
through ``load_target_text``.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from busbench.load import kernels as LK
from busbench.scenario import load_scenario
from busbench.scenario.foreign import FOREIGN_REFUSES, load_target_text
from busbench.targets.errors import TargetError

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "examples").glob("*/*.yaml"))
SCENARIOS = [p for p in SCENARIOS if p.name != "target.yaml"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_example_scenario_validates(path, monkeypatch):
    monkeypatch.chdir(ROOT / "scenarios")      # paths in scenarios are from their own folder
    data = yaml.safe_load(path.read_text())
    scenario = load_scenario(path)             # the whole file, target included
    if scenario.target_name in ("c-abi", "python"):
        monkeypatch.chdir(path.parent)         # the target alone: its paths as the file has them
        load_target_text(yaml.safe_dump(data["target"]), str(path))
        for section, key in FOREIGN_REFUSES:
            assert key not in data.get(section, {}), f"{path.name} sets {section}.{key}"


def test_net_mesh_declared_as_c_abi_drives_the_real_net_mesh():
    pytest.importorskip("net")
    from busbench.targets.cabi import CAbiTarget

    spec = load_target_text(f"c-abi: {ROOT / 'examples/net_mesh_cabi/target.yaml'}")
    target = CAbiTarget(spec, producers=2)
    try:
        try:
            target.prepare()
        except TargetError as error:
            if "version" in str(error):
                pytest.skip(f"another net-mesh release is installed: {error}")
            raise
        target.start()
        prm = np.zeros(LK.P_LEN, np.int64)
        prm[LK.P_BATCH] = 64
        prm[LK.P_MAX_EVENTS] = 50_000
        states = [np.zeros(LK.S_LEN, np.int64) for _ in range(2)]
        threads = [threading.Thread(target=target.produce, args=(p, prm.copy(), states[p]))
                   for p in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            assert not t.is_alive()
        assert target.flush(5.0).reached
        counters = target.counters()
        # net-mesh counts a refused event as dropped and not as ingested (BUS.md)
        assert counters["events_ingested"] == sum(int(s[LK.S_LANDED]) for s in states)
        assert counters["events_dropped"] == sum(int(s[LK.S_REFUSED]) for s in states)
        assert "events_dispatched" not in counters          # not exported: absent, never 0
        assert target.capabilities.witness is None
        assert target.shutdown(1.0) is None                 # net_shutdown says nothing
        assert target.counters() == counters                # read before shutdown, kept
    finally:
        target.close()


def test_a_net_mesh_version_mismatch_is_named():
    pytest.importorskip("net")
    from busbench.targets.cabi import CAbiTarget

    text = (ROOT / "examples/net_mesh_cabi/target.yaml").read_text().replace(
        "expect: 0.45.1", "expect: 9.9.9")
    spec = load_target_text("c-abi:\n" + "\n".join("  " + line for line in text.splitlines()))
    with pytest.raises(TargetError, match=r"version: .* says \d+\.\d+\.\d+, the target expects 9.9.9"):
        CAbiTarget(spec, producers=1).prepare()


def test_the_foreign_bus_benchmark_runs_end_to_end(tmp_path):
    import json
    import os
    import subprocess
    import sys
    out = tmp_path / "foreign.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_foreign.py"), "--seconds",
                           "0.05", "--repeat", "1", "--quiet", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert {"pybus python 1P (GIL)", "pybus python 2P (GIL)"} <= set(rows)
    for name, row in rows.items():
        assert row["median"] > 0 and len(row["events_per_s"]) == 1, name
