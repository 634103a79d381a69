"""The c-abi target, driven directly (no runner): a user's C bus described in YAML, fed by
the Numba producer kernel through function addresses, judged by the @cfunc sink.

Two C buses are compiled here with the system's C compiler: the example bus
(examples/c_bus/cbus.c: threads, rings, a real sink) and a scripted bus
(tests/data/scripted_cbus.c) that lies on request, so each kind of evidence is
shown to catch the lie it exists for.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from busbench.load import kernels as LK
from busbench.native import text_payload as PL
from busbench.native.payload import mix, mix_py
from busbench.scenario.errors import ScenarioError
from busbench.scenario.foreign import load_target_text
from busbench.targets.cabi import CAbiTarget
from busbench.targets.errors import TargetError

ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler (cc or gcc)")


def _build(source: Path, out: Path) -> Path:
    subprocess.run([CC, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(out), str(source)],
                   check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def libs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cabi")
    return {"cbus": _build(ROOT / "examples/c_bus/cbus.c", folder / "libcbus.so"),
            "scripted": _build(ROOT / "tests/data/scripted_cbus.c", folder / "libscripted.so")}


def cbus_spec(library: Path, shards: int = 4, capacity: int = 4096):
    text = (ROOT / "examples/c_bus/target.yaml").read_text()
    text = text.replace("./libcbus.so", str(library))
    text = text.replace("shards: 4 ", f"shards: {shards} ")
    text = text.replace("config: {shards: 4, capacity: 4096,",
                        f"config: {{shards: {shards}, capacity: {capacity},")
    return load_target_text("c-abi:\n" + "\n".join("  " + line for line in text.splitlines()))


def scripted_spec(path: Path, config: str = "", **extra):
    lines = [f"library: {path}", "shards: 2",
             f"init: {{symbol: sb_new, config: 'shards=2 {config}'}}",
             "ingest: {symbol: sb_push, args: [handle, ptr, len], ok: 0, refused: [-5], closed: [-8]}",
             "ingest_batch: {symbol: sb_push_many, returns: int64, closed: [-8]}",
             "flush: {symbol: sb_flush, args: [handle, timeout_ms], ok: 0}",
             ("stats: {symbol: sb_stats, struct: [events_ingested, events_dropped, batches_dispatched,"
             " events_dispatched]}"),
             "shutdown: {symbol: sb_shutdown, ok: 0}",
             "sink: {symbol: sb_set_sink}"]
    for key, value in extra.items():
        lines = [line for line in lines if not line.startswith(f"{key}:")]
        if value is not None:
            lines.append(f"{key}: {value}")
    return load_target_text("c-abi:\n" + "\n".join("  " + line for line in lines))


class Rig:
    """Targets made for one test; every one is closed (bus shut down) at the end."""

    def __init__(self):
        self.targets = []

    def target(self, spec, producers=2, **kw) -> CAbiTarget:
        target = CAbiTarget(spec, producers=producers, **kw)
        self.targets.append(target)
        target.prepare()
        target.start()
        return target


@pytest.fixture
def rig():
    r = Rig()
    try:
        yield r
    finally:
        for target in r.targets:
            target.close()


def params(batch=64, events=-1, retry=False, rate=None, duration_s=None):
    prm = np.zeros(LK.P_LEN, np.int64)
    prm[LK.P_BATCH] = batch
    prm[LK.P_MAX_EVENTS] = events
    prm[LK.P_RETRY_FAILED] = int(retry)
    prm[LK.P_LATE_AFTER_NS] = 1_000_000
    import time
    now = time.monotonic_ns()
    prm[LK.P_T0_NS] = now
    if rate:
        prm[LK.P_OPEN_LOOP] = 1
        prm[LK.P_INTERVAL_PS] = int(1e12 / rate)
    if duration_s:
        prm[LK.P_DEADLINE_NS] = now + int(duration_s * 1e9)
    return prm


def run_producers(target, producers, **kw):
    """Each producer in its own thread, joined with a bound; their pstate arrays."""
    states = [np.zeros(LK.S_LEN, np.int64) for _ in range(producers)]
    errors = []

    def run(p):
        try:
            target.produce(p, params(**kw), states[p])
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


# --- the example bus: events ingested by the kernel reach the sink -----------------------


@pytest.mark.parametrize("calls", ["batch", "single"])
def test_every_event_the_example_bus_took_reaches_the_sink_with_matching_checksums(rig, libs, calls):
    target = rig.target(cbus_spec(libs["cbus"]), calls=calls)
    states = run_producers(target, 2, events=30_000)
    assert target.flush(10.0).reached
    delivery = target.delivery()
    counters = target.counters()
    assert [int(s[LK.S_OFFERED]) for s in states] == [30_000, 30_000]
    assert delivery.received == landed(states)
    assert delivery.checksum == target.landed_checksums()
    assert delivery.discrepancies(landed(states), target.landed_checksums(), settled=True) == []
    assert counters["events_dispatched"] == sum(delivery.received_per_shard) == sum(landed(states))
    assert counters["events_ingested"] == sum(int(s[LK.S_OFFERED]) for s in states)
    refused = sum(int(s[LK.S_REFUSED]) for s in states)
    assert counters["events_dropped"] == refused
    assert all(n > 0 for n in delivery.received_per_shard)       # the bus spread them
    claim = target.shutdown(1.0)
    assert claim is not None and claim.lossy is False


def test_refusals_of_a_full_ring_are_tallied_and_never_delivered(rig, libs):
    # capacity 2 with 2 producers: refusals are certain, not timing luck, over 20k events
    target = rig.target(cbus_spec(libs["cbus"], shards=1, capacity=2))
    states = run_producers(target, 2, events=20_000, batch=32)
    target.flush(10.0)
    refused = sum(int(s[LK.S_REFUSED]) for s in states)
    assert refused > 0
    assert all(int(s[LK.S_LANDED]) + int(s[LK.S_REFUSED]) == int(s[LK.S_OFFERED]) for s in states)
    assert target.delivery().received == landed(states)
    assert target.counters()["events_dropped"] == refused


def test_open_loop_stamps_intended_times_and_counts_calls(rig, libs):
    target = rig.target(cbus_spec(libs["cbus"]), producers=1)
    states = run_producers(target, 1, events=2_000, rate=200_000, batch=16)
    assert int(states[0][LK.S_OFFERED]) == 2_000
    assert int(states[0][LK.S_CALLS]) >= 2_000 // 16
    target.flush(10.0)
    assert target.delivery().received == landed(states)


def test_after_shutdown_producers_are_turned_away_and_stats_stay_readable(rig, libs):
    target = rig.target(cbus_spec(libs["cbus"]), producers=1)
    run_producers(target, 1, events=1_000)
    before = target.counters()
    target.shutdown(1.0)
    states = run_producers(target, 1, events=500)
    assert int(states[0][LK.S_TURNED_AWAY]) == 64 and int(states[0][LK.S_OFFERED]) == 0
    assert int(states[0][LK.S_DONE]) == 1
    assert target.counters()["events_ingested"] == before["events_ingested"]


# --- the scripted bus: each lie is caught by the evidence meant for it -------------------


@pytest.mark.parametrize("calls", ["batch", "single"])
def test_an_honest_scripted_bus_shows_no_discrepancy(rig, libs, calls):
    target = rig.target(scripted_spec(libs["scripted"], "refuse_every=7"), calls=calls)
    states = run_producers(target, 2, events=5_000, batch=10)
    target.flush(5.0)
    d = target.delivery()
    assert sum(int(s[LK.S_REFUSED]) for s in states) > 0
    assert d.discrepancies(landed(states), target.landed_checksums(), settled=True) == []


@pytest.mark.parametrize("lie, expected", [
    (1, "missing"),                      # every 10th event lost, counted nowhere
    (2, "duplicated"),                   # every 10th delivered twice
    (3, "out of order"),                 # newest first
    (4, "not the same ones"),            # payload pointer kept, read after reuse
    (5, "not sent by busbench"),         # a foreign payload
    (6, "shard number outside"),         # a shard that does not exist
])
def test_each_lie_of_a_scripted_bus_is_caught_by_the_sink(rig, libs, lie, expected):
    target = rig.target(scripted_spec(libs["scripted"], f"lie={lie}"), calls="single")
    states = run_producers(target, 2, events=1_000, batch=10)
    target.flush(5.0)
    found = target.delivery().discrepancies(landed(states), target.landed_checksums(),
                                            settled=True)
    assert any(expected in line for line in found), found


def test_a_loss_the_bus_counts_as_dropped_is_accounted_for_and_a_silent_one_is_not(rig, libs):
    target = rig.target(scripted_spec(libs["scripted"], "lie=1"), producers=1, calls="single")
    states = run_producers(target, 1, events=100, batch=10)
    target.flush(5.0)
    d = target.delivery()
    assert d.discrepancies(landed(states), target.landed_checksums(), settled=True,
                           dropped_after_taken=10) == []
    assert any("counts 0 dropped" in line for line in d.discrepancies(
        landed(states), target.landed_checksums(), settled=True, dropped_after_taken=0))


def test_an_undeclared_return_code_stops_the_producer_with_a_clear_error(rig, libs):
    target = rig.target(scripted_spec(libs["scripted"], "undeclared_after=25"), producers=1,
                        calls="single")
    with pytest.raises(TargetError, match=r"sb_push returned -99, which the target does not "
                                          r"declare \(ok: 0, refused: -5, closed: -8\)") as caught:
        run_producers(target, 1, events=100, batch=10)
    assert caught.value.exit_code == 3
    batch_target = rig.target(scripted_spec(libs["scripted"], "undeclared_after=25"),
                              producers=1, calls="batch")
    with pytest.raises(TargetError, match="sb_push_many returned -99"):
        run_producers(batch_target, 1, events=100, batch=10)


def test_a_missing_symbol_is_named_at_load_before_anything_runs(libs):
    spec = scripted_spec(libs["scripted"], flush="{symbol: sb_flushh, args: [handle, timeout_ms]}")
    with pytest.raises(TargetError, match=r"does not export flush.symbol sb_flushh"):
        CAbiTarget(spec, producers=1).prepare()


def test_a_library_that_is_not_there_or_not_a_library_is_a_clear_error(tmp_path, libs):
    with pytest.raises(TargetError, match="does not exist"):
        CAbiTarget(scripted_spec(tmp_path / "nope.so"), producers=1).prepare()
    fake = tmp_path / "fake.so"
    fake.write_text("not a library")
    with pytest.raises(TargetError, match="cannot be loaded"):
        CAbiTarget(scripted_spec(fake), producers=1).prepare()


def test_init_returning_null_is_a_clear_error(libs):
    target = CAbiTarget(scripted_spec(libs["scripted"], "fail_init=1"), producers=1)
    with pytest.raises(TargetError, match="sb_new returned NULL"):
        target.start()


def test_a_bus_without_a_sink_has_no_witness(rig, libs):
    target = rig.target(scripted_spec(libs["scripted"], sink=None), producers=1)
    run_producers(target, 1, events=100)
    assert target.delivery() is None and target.capabilities.witness is None
    assert target.counters()["events_ingested"] == 100


def test_a_counter_the_struct_does_not_name_is_absent_not_zero(rig, libs):
    target = rig.target(scripted_spec(libs["scripted"],
                                      stats="{symbol: sb_stats, struct: [events_ingested, _pad, "
                                            "_pad2, {batches: u64}]}"), producers=1)
    run_producers(target, 1, events=10)
    target.flush(1.0)
    assert target.counters() == {"events_ingested": 10}
    assert target.stats() == {"events_ingested": 10, "batches": 10}
    assert target.capabilities.counters == frozenset({"events_ingested"})


def test_one_compiled_kernel_drives_two_libraries_in_one_process(rig, libs):
    from busbench.load.kernels import produce
    a = rig.target(cbus_spec(libs["cbus"]), producers=1)
    b = rig.target(scripted_spec(libs["scripted"]), producers=1)
    run_producers(a, 1, events=500)
    run_producers(b, 1, events=500)
    a.flush(5.0)
    b.flush(5.0)
    assert a.delivery().received == [500] and b.delivery().received == [500]
    assert len(produce.signatures) == 1


def test_the_sink_and_python_agree_on_the_mix_of_a_seq():
    from numba import njit

    @njit
    def mixes(seqs):
        out = np.empty_like(seqs)
        for i in range(seqs.size):
            out[i] = mix(seqs[i])
        return out

    seqs = np.array([0, 1, 6, 12345, 2**40 - 1, PL.MAX_SEQ], np.int64)
    assert [int(v) & PL.MASK64 for v in mixes(seqs)] == [mix_py(int(s)) for s in seqs]


# --- the target file: typed, validated with lines, never loaded by validation -------------


def test_the_example_target_file_validates_without_loading_the_library(tmp_path):
    spec = load_target_text(f"c-abi: {ROOT / 'examples/c_bus/target.yaml'}")
    assert spec.library == str((ROOT / "examples/c_bus/libcbus.so").resolve())
    assert spec.ingest.refused == (-5,) and spec.ingest_batch.returns == "int64"
    assert [f.name for f in spec.stats.struct][:2] == ["events_ingested", "events_dropped"]


@pytest.mark.parametrize("change, where", [
    (("ptr, len]", "ptr, lenn]"), ("t.yaml:4: c-abi.ingest.args.2: this call cannot take an "
                                  "argument 'lenn'")),
    (("refused: [-5]", "refused: [0]"), ("t.yaml:4: c-abi.ingest.refused: return code 0 is both "
                                        "ok and refused")),
    (("  flush:", "  flsh:"), "t.yaml:6: c-abi.flsh: unknown key"),
    (("returns: int64", "returns: float"), "t.yaml:5: c-abi.ingest_batch.returns: expected one of"),
    (("[handle, out]", "[handle]"), "t.yaml:7: c-abi.stats.args: expected out among the arguments"),
    (("sb_set_sink}", "sb_set_sink, args: [handle, callback]}"),
     "t.yaml:9: c-abi.sink.args: expected context"),
])
def test_a_target_mistake_names_file_line_and_key(change, where):
    text = """c-abi:
  library: ./libx.so
  init: {symbol: sb_new, config: {shards: 2}}
  ingest: {symbol: sb_push, args: [handle, ptr, len], ok: 0, refused: [-5], closed: [-8]}
  ingest_batch: {symbol: sb_push_many, args: [handle, ptrs, lens, n], returns: int64}
  flush: {symbol: sb_flush, args: [handle, timeout_ms], ok: 0}
  stats: {symbol: sb_stats, args: [handle, out], struct: [events_ingested]}
  shutdown: {symbol: sb_shutdown, args: [handle, grace_ms]}
  sink: {symbol: sb_set_sink}
"""
    assert change[0] in text
    with pytest.raises(ScenarioError) as caught:
        load_target_text(text.replace(*change), "t.yaml")
    assert where in caught.value.format()


def test_the_sink_measures_delivery_latency_from_the_time_each_payload_carries(rig, libs):
    from busbench.native import histogram as H
    target = rig.target(scripted_spec(libs["scripted"]), producers=1)
    states = run_producers(target, 1, events=500, batch=10)
    import time
    time.sleep(0.2)                      # the scripted bus delivers only at flush
    target.flush(5.0)
    corrected, uncorrected = target.latency_histograms()
    assert corrected[H.COUNT] == landed(states)[0] == 500
    assert corrected[H.MIN] >= 200_000_000        # every event waited for the flush
    assert uncorrected is corrected               # closed loop: one time per payload
    assert target.capabilities.latency


def test_a_flush_that_returns_before_delivering_leaves_a_barrier_shortfall(rig, libs):
    honest = rig.target(scripted_spec(libs["scripted"]), producers=1)
    early = rig.target(scripted_spec(libs["scripted"], "lie=7"), producers=1)
    for target, expected in ((honest, [0]), (early, [300])):
        states = run_producers(target, 1, events=300, batch=10)
        at_call = landed(states)
        claim = target.flush(5.0)
        assert claim.reached                               # both buses claim success
        assert target.delivery().barrier_shortfall(at_call) == expected


def test_a_bus_whose_shutdown_frees_the_handle_is_never_called_with_it_again(rig, libs):
    target = rig.target(scripted_spec(libs["scripted"],
                                      shutdown="{symbol: sb_shutdown, ok: 0, frees_handle: true}"),
                        producers=1)
    run_producers(target, 1, events=100, batch=10)
    before = target.counters()
    target.shutdown(1.0)
    target._handle = 1      # were the handle used again, this would crash the process
    states = run_producers(target, 1, events=100, batch=10)
    assert int(states[0][LK.S_TURNED_AWAY]) == 10 and int(states[0][LK.S_CALLS]) == 0
    assert target.counters() == before


@pytest.mark.parametrize("module, message", [
    ("bb_no_such_pkg._native", "cannot import the package of bb_no_such_pkg._native"),
    ("json.decoder", "json.decoder is .*decoder.py, not an extension module"),
])
def test_a_python_module_library_that_is_not_an_extension_is_a_clear_error(libs, module, message):
    spec = scripted_spec(libs["scripted"], library=f"{{python_module: {module}}}")
    target = CAbiTarget(spec, producers=1)
    assert any(module in line for line in target.describe_native())
    with pytest.raises(TargetError, match=message) as caught:
        target.prepare()
    assert caught.value.exit_code == 2
