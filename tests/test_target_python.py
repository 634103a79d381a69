"""The python target, driven directly (no runner): a bus with a Python API, fed by Python
producer threads with the same tallies as the Numba producers, judged by the sink.

The example bus (examples/python_bus/pybus.py) has a switch that loses what is
queued at shutdown while reporting a clean one; comparing the producers' tallies
with the sink must catch it, and must not accuse the bus with the switch off.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from busbench.load import kernels as LK
from busbench.scenario.errors import ScenarioError
from busbench.scenario.foreign import load_target_text
from busbench.targets.errors import TargetError
from busbench.targets.protocol import PythonBus, protocol_problems
from busbench.targets.python_target import PythonTarget

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "python_bus"


def spec(factory="pybus:make_bus", path=EXAMPLE, **config):
    settings = {"factory": factory, "config": config}
    if path is not None:
        settings["path"] = str(path)
    import json
    return load_target_text("python: " + json.dumps(settings))


@pytest.fixture
def targets():
    made = []

    def make(s, producers=2, shards=4):
        target = PythonTarget(s, producers=producers, shards=shards)
        made.append(target)
        return target

    try:
        yield make
    finally:
        for target in made:
            target.close()


def run_producers(target, producers, events, batch=64):
    states = [np.zeros(LK.S_LEN, np.int64) for _ in range(producers)]
    errors = []
    prm = np.zeros(LK.P_LEN, np.int64)
    prm[LK.P_BATCH] = batch
    prm[LK.P_MAX_EVENTS] = events
    prm[LK.P_T0_NS] = time.monotonic_ns()

    def run(p):
        try:
            target.produce(p, prm.copy(), states[p])
        except Exception as error:  # noqa: BLE001 -- reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a producer did not finish within 120 s"
    if errors:
        raise errors[0]
    return states


def landed(states):
    return [int(s[LK.S_LANDED]) for s in states]


def shutdown_evidence(lose: bool, targets) -> list[str]:
    """Producers fill a slow bus, which is shut down without a flush; what the sink
    says against the producers' tallies."""
    # ~160 batches of 32 per shard at 10 ms each: well over a second to drain, so the
    # producers (a fraction of a second) always leave events queued at shutdown
    target = targets(spec(shards=2, capacity=1 << 20, max_batch=32, per_batch_delay=0.01,
                          lose_on_shutdown=lose), shards=2)
    target.prepare()
    target.start()
    states = run_producers(target, 2, events=10_000)
    claim = target.shutdown(5.0)
    assert claim is not None and claim.lossy is False       # the bus claims a clean shutdown
    return target.delivery().discrepancies(landed(states), target.landed_checksums(),
                                           settled=True)


def test_the_lossy_shutdown_switch_is_caught_by_comparing_producers_with_the_sink(targets):
    found = shutdown_evidence(True, targets)
    assert any("missing, and the bus counts no such drop" in line for line in found), found


def test_the_same_run_without_the_switch_shows_no_discrepancy(targets):
    assert shutdown_evidence(False, targets) == []


def test_events_from_python_producers_reach_the_sink_with_matching_checksums(targets):
    target = targets(spec(shards=4, capacity=4096), shards=4)
    target.prepare()
    target.start()
    states = run_producers(target, 2, events=10_000)
    assert target.flush(10.0).reached
    d = target.delivery()
    assert d.received == landed(states)
    assert d.checksum == target.landed_checksums()
    c = target.counters()
    assert c["events_ingested"] == sum(int(s[LK.S_OFFERED]) for s in states)
    assert c["events_dispatched"] == sum(landed(states))
    assert target.capabilities.witness == "sink" and target.capabilities.lossy_flag


def test_a_bus_that_refuses_events_in_the_middle_of_a_batch_is_tallied_per_event(targets):
    # tiny shards: the per-event bools refuse events here and there in a batch
    target = targets(spec(shards=4, capacity=2, per_batch_delay=0.001), shards=4)
    target.prepare()
    target.start()
    states = run_producers(target, 1, events=2_000, batch=64)
    target.flush(10.0)
    s = states[0]
    assert int(s[LK.S_REFUSED]) > 0
    assert int(s[LK.S_LANDED]) + int(s[LK.S_REFUSED]) == int(s[LK.S_OFFERED]) == 2_000
    d = target.delivery()
    assert d.discrepancies(landed(states), target.landed_checksums(), settled=True) == []
    assert target.counters()["events_dropped"] == int(s[LK.S_REFUSED])


def test_after_shutdown_producers_are_turned_away(targets):
    target = targets(spec(), producers=1)
    target.prepare()
    target.start()
    target.shutdown(1.0)
    states = run_producers(target, 1, events=100, batch=10)
    assert int(states[0][LK.S_TURNED_AWAY]) == 10 and int(states[0][LK.S_OFFERED]) == 0


def test_the_example_bus_implements_the_protocol():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import pybus
        bus = pybus.make_bus(shards=1)
        try:
            assert isinstance(bus, PythonBus) and protocol_problems(bus) == []
        finally:
            bus.shutdown(0)
    finally:
        sys.path.remove(str(EXAMPLE))


# --- mistakes: clear errors, exit 2, naming module and attribute ---------------------------


def write_module(folder: Path, name: str, source: str) -> Path:
    (folder / f"{name}.py").write_text(source)
    return folder


def test_validation_never_imports_the_module(tmp_path, targets):
    marker = tmp_path / "imported"
    write_module(tmp_path, "bb_marker_bus", f"open({str(marker)!r}, 'w').close()\n"
                                            "raise RuntimeError('boom at import')\n")
    s = spec("bb_marker_bus:make", path=tmp_path)          # validated: fine
    target = targets(s)
    assert any("importing bb_marker_bus" in line for line in target.describe_native())
    assert not marker.exists()
    with pytest.raises(TargetError, match="importing bb_marker_bus raised RuntimeError: boom") as e:
        target.prepare()
    assert e.value.exit_code == 2 and marker.exists()


@pytest.mark.parametrize("source, factory, message", [
    (None, "bb_no_such_module:make", ("cannot import bb_no_such_module: no module named "
                                     "bb_no_such_module")),
    ("def make_bus(): pass\n", "bb_mod_a:make_bsu", ("bb_mod_a has no attribute make_bsu; did you "
                                                    "mean 'make_bus'?")),
    ("make_bus = 3\n", "bb_mod_b:make_bus", "bb_mod_b.make_bus is a int, not a callable"),
    ("def make_bus(): raise ValueError('no config')\n", "bb_mod_c:make_bus",
     r"calling make_bus\(\*\*config\) raised ValueError: no config"),
    (("class B:\n    def ingest_batch(self, payloads): return 0\n    def stats(self): return {}\n"
     "def make_bus(): return B()\n"), "bb_mod_d:make_bus",
     ("returned a B, which does not implement busbench's PythonBus protocol "
     r"\(busbench/targets/protocol.py\): it has no flush\(\); it has no shutdown\(\)")),
    (("class B:\n    def ingest_batch(self): return 0\n    def flush(self, t): return True\n"
     "    def stats(self): return {}\n    def shutdown(self, g): return None\n"
     "def make_bus(): return B()\n"), "bb_mod_e:make_bus",
     r"its ingest_batch\(\) cannot be called with one argument"),
])
def test_a_module_or_factory_that_is_not_a_bus_is_a_clear_error(tmp_path, targets, source,
                                                                  factory, message):
    if source is not None:
        write_module(tmp_path, factory.partition(":")[0], source)
    with pytest.raises(TargetError, match=message) as caught:
        targets(spec(factory, path=tmp_path)).prepare()
    assert caught.value.exit_code == 2


def test_an_answer_outside_the_protocol_stops_the_run_with_exit_3(tmp_path, targets):
    write_module(tmp_path, "bb_mod_f", "class B:\n"
                 "    def ingest_batch(self, payloads): return 'yes'\n"
                 "    def flush(self, t): return 'done'\n"
                 "    def stats(self): return {'events_ingested': 0}\n"
                 "    def shutdown(self, g): return None\n"
                 "def make_bus(): return B()\n")
    target = targets(spec("bb_mod_f:make_bus", path=tmp_path), producers=1)
    target.prepare()
    target.start()
    with pytest.raises(TargetError, match="ingest_batch of 64 event.s. returned 'yes'") as caught:
        run_producers(target, 1, events=100)
    assert caught.value.exit_code == 3
    with pytest.raises(TargetError, match="flush returned 'done'"):
        target.flush(1.0)
    assert target.shutdown(1.0) is None          # the bus says nothing: no claim to judge


def test_a_python_target_mistake_names_file_line_and_key():
    with pytest.raises(ScenarioError, match=r"t.yaml:2: python.factory: expected module:callable"):
        load_target_text("python:\n  factory: make_bus\n", "t.yaml")
    with pytest.raises(ScenarioError, match=r"t.yaml:2: python.confg: unknown key.*did you mean "
                                            r"'config'"):
        load_target_text("python:\n  confg: {}\n  factory: a:b\n", "t.yaml")
