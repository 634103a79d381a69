"""One producer loop for every target (issue 18 part 1): the reference bus's ring
push, a C function called by address (``load.ccall.CallSpec``) and a Python
ingest step (``load.pyloop``) are driven with the same fake ingest, seed and
rate, and keep the same schedule: the same events offered per interval of the
schedule, the same late sends (within a batch or two: they depend on when a
stall ends), the same unsent count, and the step ends at its deadline plus the
call in progress.

The fake ingest takes every event and stalls twice, by time, measured from the
step's start: 95 ms from 205 ms (the producer falls ~95 ms behind and catches
up: those sends are late), and 200 ms from 455 ms (the call returns past the
step's 500 ms end: the producer stops there, and what its schedule wanted sent
by then is unsent). The stall times sit between two calls' due times (a call
every 10 ms, due at 10j + 9 ms), so scheduling noise of up to 4 ms does not
move a stall to another call, nor a batch across the late threshold.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

from busbench.common import names as N
from busbench.bus.config import BusConfig
from busbench.load import foreign as LF
from busbench.load import kernels as K
from busbench.load import pyloop
from busbench.native import text_payload as PL
from busbench.load.ccall import Arg, CallSpec, ErrorCode
from busbench.load.generator import LoadGenerator, LoadSpec
from busbench.native.payload import SEQ_BITS, SEQ_MASK
from busbench.targets.builtin import BuiltinTarget

CC = shutil.which("cc") or shutil.which("gcc")

RATE = 1000                  # events/s, one producer: an event every 1 ms
BATCH = 10                   # a call every 10 ms
STEP_NS = 500_000_000
STALLS = ((205_000_000, 95_000_000), (455_000_000, 200_000_000))   # (from t0 + at, for)
BUCKET = 100                 # events per 100 ms of schedule
# Offered: every batch up to the one whose call stalled past the deadline (450..459).
OFFERED = 460
UNSENT = 500 - OFFERED       # due by 500 ms: 501 events, 50 whole batches
# Late: a call made more than LATE_AFTER behind schedule; 20 ms, so that a sleep
# overshooting on a busy machine is not late, a batch due while the first stall held
# the producer (from the call due at 209 ms to ~304 ms) more than 20 ms before it
# ended is: due 219 .. 279 ms, 7 batches; a batch either way with timing.
LATE_AFTER_NS = 20_000_000
LATE_EXPECTED, LATE_SLACK = 70, BATCH

FAKE_C = r"""
#include <stdint.h>
#include <time.h>

/* f: [at0, for0, at1, for1, bucket, counts...]: stall once per pair, count seqs per bucket */
static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_ns(int64_t d) {
    struct timespec t = {d / 1000000000LL, d % 1000000000LL};
    while (nanosleep(&t, &t) != 0) {}
}

int fake_ingest(int64_t *f, int64_t value, const uint8_t *ptr, int64_t len) {
    if (len != 50 || ptr[0] != '{') return -99;          /* not busbench's payload */
    int64_t now = now_ns();
    for (int k = 0; k < 2; k++) {
        if (f[2 * k + 1] > 0 && now >= f[2 * k]) {
            int64_t d = f[2 * k + 1];
            f[2 * k + 1] = 0;
            sleep_ns(d);
        }
    }
    f[5 + (value & ((1LL << 40) - 1)) / f[4]] += 1;
    return 0;
}

/* librdkafka's shape: 8 arguments, -1 on failure with the code from a second call */
static int last = 0;
int produce8(int64_t *f, int32_t partition, int flags, const uint8_t *p, size_t len,
             const void *key, size_t keylen, int64_t opaque) {
    if (flags != 2 || key != 0 || keylen != 0 || len != 50) { last = -1000; return -1; }
    int64_t seq = opaque & ((1LL << 40) - 1);
    f[1 + seq] = partition;
    if (seq % 5 == 3 && f[0]-- > 0) { last = -184; return -1; }   /* queue full, a few times */
    return 0;
}
int last_error(void) { return last; }
"""


@pytest.fixture(scope="module")
def fake_lib(tmp_path_factory):
    if CC is None:
        pytest.skip("needs a C compiler (cc or gcc)")
    import ctypes
    folder = tmp_path_factory.mktemp("fake_c")
    (folder / "fake.c").write_text(FAKE_C, encoding="utf-8")
    lib = folder / "libfake.so"
    subprocess.run([CC, "-O2", "-shared", "-fPIC", "-o", str(lib), str(folder / "fake.c")],
                   check=True, capture_output=True)
    handle = ctypes.CDLL(str(lib), mode=getattr(ctypes, "RTLD_LOCAL", 0))
    return {name: ctypes.cast(getattr(handle, name), ctypes.c_void_p).value
            for name in ("fake_ingest", "produce8", "last_error")} | {"_lib": handle}


def _generator(produce, producer_stalling=lambda p: False, shards=1):
    spec = LoadSpec(producers=1, rate_per_producer=RATE, batch=BATCH, seed=7,
                    late_after_ns=LATE_AFTER_NS)
    return LoadGenerator(spec, shards, produce, producer_stalling)


def _warm(produce):
    """Compile (or load) the kernels before the timed step: a count step of one batch."""
    gen = _generator(produce)
    try:
        gen.start(events=BATCH)
        assert gen.wait(timeout_s=600.0)
    finally:
        gen.stop()


def _run_step(gen, arm):
    """Start a 500 ms step, arm the stalls from its t0, wait; the time it ended at."""
    gen.start(duration_ns=STEP_NS)
    t0 = int(gen.params[0][K.P_T0_NS])
    timers = arm(t0)
    try:
        assert gen.wait(timeout_s=5.0), "the step did not end"
        ended = time.monotonic_ns() - t0
    finally:
        gen.stop()
        for t in timers:
            t.cancel()
    return gen.truth(0), ended


def _ring():
    target = BuiltinTarget(BusConfig(shards=1, capacity=1 << 12, producers=1, adapter="verify",
                                     latency=False))
    target.prepare()
    target.start()
    gen = _generator(target.produce, target.producer_stalling)

    def arm(t0):
        # the reference bus's own stall_producer fault: a push that holds its slots
        (at0, for0), (at1, for1) = STALLS
        target.bus.arm_producer_stall(0, t0 + at0 - time.monotonic_ns(), for0)
        timer = threading.Timer((t0 + 350_000_000 - time.monotonic_ns()) / 1e9,
                                lambda: target.bus.arm_producer_stall(
                                    0, t0 + at1 - time.monotonic_ns(), for1))
        timer.start()
        return [timer]

    try:
        truth, ended = _run_step(gen, arm)
        target.flush(5.0)
        received = sum(sum(row) for row in target.delivery().received_by_shard)
    finally:
        target.shutdown(1.0)
    # the bus took every event: the seqs offered are [0, next_seq), once each, all received
    assert truth.refused == 0 and truth.retries == 0 and truth.next_seq == truth.offered
    assert received == truth.offered
    buckets = np.bincount(np.arange(truth.offered) // BUCKET, minlength=5)
    return truth, ended, buckets


def _ccall(fake_lib):
    f = np.zeros(5 + 8, np.int64)      # stalls, bucket width, counts per bucket
    f[4] = BUCKET
    calls = CallSpec(address=fake_lib["fake_ingest"], args=(Arg.const(f.ctypes.data), Arg.VALUE,
                                                          Arg.PTR, Arg.LEN),
                     ok=(0,), undeclared="stop", name="fake_ingest").to_array()
    xstate = K.empty_xstate()
    payload, ptrs, lens = PL.template_array(BATCH), np.zeros(BATCH, np.int64), np.zeros(BATCH, np.int64)

    def produce(p, params, pstate, by_shard, zipf_cdf, stop, events):
        LF.produce_ccall(calls, params, pstate, xstate, stop, payload, ptrs, lens,
                        zipf_cdf=zipf_cdf, by_shard=by_shard, events=events)

    def arm(t0):
        (at0, for0), (at1, for1) = STALLS
        f[0], f[2] = t0 + at0, t0 + at1
        f[1], f[3] = for0, for1
        return []

    _warm(produce)
    f[5:] = 0
    truth, ended = _run_step(_generator(produce), arm)
    assert xstate[K.X_UNDECLARED] == 0, f"fake_ingest refused a payload: {xstate[K.X_LAST_CODE]}"
    return truth, ended, f[5:10].copy()


def _python():
    state = {"stalls": [], "buckets": np.zeros(8, np.int64)}

    def step(values, t_int, m, landed):
        for i, (v, t) in enumerate(zip(values[:m].tolist(), t_int[:m].tolist())):
            payload = PL.encode_bytes(v >> SEQ_BITS, v & SEQ_MASK, t)
            assert PL.decode_bytes(payload) == (v >> SEQ_BITS, v & SEQ_MASK, t)
            now = time.monotonic_ns()
            for stall in state["stalls"]:
                if stall[1] > 0 and now >= stall[0]:
                    d, stall[1] = stall[1], 0
                    time.sleep(d / 1e9)
            state["buckets"][(v & SEQ_MASK) // BUCKET] += 1
            landed[i] = K.LANDED
        return N.INGEST_OK, m, 0, m

    xstate = K.empty_xstate()

    def produce(p, params, pstate, by_shard, zipf_cdf, stop, events):
        pyloop.run(step, params, pstate, xstate, by_shard, zipf_cdf, stop, events)

    def arm(t0):
        state["stalls"] = [[t0 + at, d] for at, d in STALLS]
        return []

    _warm(produce)
    state["buckets"][:] = 0
    truth, ended = _run_step(_generator(produce), arm)
    return truth, ended, state["buckets"][:5].copy()


def _schedule_problems(truth, ended, buckets) -> list[str]:
    problems = []
    expected_buckets = [BUCKET] * 4 + [OFFERED - 4 * BUCKET]
    if buckets.tolist() != expected_buckets:
        problems.append(f"offered per 100 ms {buckets.tolist()}, expected {expected_buckets}")
    if truth.offered != OFFERED or truth.landed != OFFERED:
        problems.append(f"offered {truth.offered} / landed {truth.landed}, expected {OFFERED}")
    if truth.unsent != UNSENT:
        problems.append(f"unsent {truth.unsent}, expected {UNSENT}")
    if truth.turned_away or truth.refused:
        problems.append(f"turned away {truth.turned_away}, refused {truth.refused}")
    if abs(truth.late - LATE_EXPECTED) > LATE_SLACK:
        problems.append(f"late {truth.late}, expected {LATE_EXPECTED} +- {LATE_SLACK}")
    # ends at the deadline plus the call in progress (the stall to ~659 ms), not
    # after sending the rest of its schedule; generous bounds for a busy machine
    if not 655_000_000 <= ended < 950_000_000:
        problems.append(f"ended at {ended / 1e6:.1f} ms, expected 655 to 950")
    return problems


@pytest.mark.slow
def test_every_targets_loop_keeps_the_same_schedule(fake_lib):
    """Each loop gets up to 3 attempts: on a shared 2-core machine another process can
    hold a producer thread off the CPU for 100 ms, which moves late sends (a
    disturbance of the machine, not of the loop). A loop whose schedule differs
    fails all three."""
    loops = {"ring": _ring, "c call": lambda: _ccall(fake_lib), "python": _python}
    lates = {}
    for name, run in loops.items():
        tried = []
        for _ in range(3):
            truth, ended, buckets = run()
            problems = _schedule_problems(truth, ended, buckets)
            if not problems:
                lates[name] = truth.late
                break
            tried.append(f"{'; '.join(problems)} ({truth})")
        assert name in lates, f"{name}: " + "\n  ".join(tried)
    assert max(lates.values()) - min(lates.values()) <= LATE_SLACK, lates
    # one compiled kernel served the ring push and the C call
    assert len(K.produce.signatures) == 1


def test_a_kafka_shaped_call_routes_shard_and_error_code(fake_lib):
    """8 arguments with the event's shard and value, -1 answered by an error-code
    function: -184 refused (retried under the retry policy), the rest taken."""
    f = np.zeros(1 + 400, np.int64)
    f[0] = 6                         # refuse six times, then take everything
    calls = CallSpec(address=fake_lib["produce8"],
                     args=(Arg.const(f.ctypes.data), Arg.SHARD, Arg.const(2), Arg.PTR, Arg.LEN,
                           Arg.const(0), Arg.const(0), Arg.VALUE),
                     ok=(0,), refused=(-184,), closed=(-172,),
                     error_code=ErrorCode(address=fake_lib["last_error"], when=-1),
                     name="produce8").to_array()
    shards = 4
    for retry in (False, True):
        f[:] = 0
        f[0] = 6
        spec = LoadSpec(producers=1, batch=16, keys="round_robin", retry_failed=retry)
        xstate = K.empty_xstate()
        payload = PL.template_array(16)

        def produce(p, params, pstate, by_shard, zipf_cdf, stop, events, xstate=xstate,
                    payload=payload):
            LF.produce_ccall(calls, params, pstate, xstate, stop, payload, np.zeros(16, np.int64),
                            np.zeros(16, np.int64), zipf_cdf=zipf_cdf, by_shard=by_shard,
                            events=events)

        gen = LoadGenerator(spec, shards, produce, lambda p: False)
        try:
            gen.start(events=320)
            assert gen.wait(timeout_s=10.0)
        finally:
            gen.stop()
        truth = gen.truth(0)
        assert xstate[K.X_UNDECLARED] == 0, xstate[K.X_LAST_CODE]
        assert xstate[K.X_REFUSALS] == 6 and truth.refused == 6
        # round-robin keys: event seq went to partition seq % 4, as the call was told
        assert f[1:321].tolist() == [s % shards for s in range(320)]
        counts, _ = gen.landed_by_shard()
        assert sum(counts[0]) == truth.landed
        if retry:
            assert truth.landed == 320 and truth.retries == 6 and truth.offered == 326
        else:
            assert truth.landed == 314 and truth.offered == 320 and truth.retries == 0
            assert truth.unsent == 0


def test_a_stop_ends_every_loop_in_its_wait(fake_lib):
    """A producer waiting on a slow schedule (an event every 5 s) sees the stop flag
    (the watchdog, a flush under load ending) instead of sleeping until its next
    event is due: the c-abi and net-mesh loops used to sleep through it."""
    f = np.zeros(5 + 8, np.int64)
    f[4] = 1 << 40
    calls = CallSpec(address=fake_lib["fake_ingest"], args=(Arg.const(f.ctypes.data), Arg.VALUE,
                                                          Arg.PTR, Arg.LEN)).to_array()
    target = BuiltinTarget(BusConfig(shards=1, capacity=64, producers=1, adapter="verify"))
    target.prepare()
    target.start()

    def c_produce(p, params, pstate, by_shard, zipf_cdf, stop, events):
        batch = int(params[K.P_BATCH])
        LF.produce_ccall(calls, params, pstate, K.empty_xstate(), stop, PL.template_array(batch),
                        np.zeros(batch, np.int64), np.zeros(batch, np.int64), events=events)

    def py_produce(p, params, pstate, by_shard, zipf_cdf, stop, events):
        def step(values, t_int, m, landed):
            landed[:m] = K.LANDED
            return N.INGEST_OK, m, 0, 1
        pyloop.run(step, params, pstate, K.empty_xstate(), by_shard, zipf_cdf, stop, events)

    try:
        for name, produce in (("ring", target.produce), ("c call", c_produce), ("python", py_produce)):
            _warm(produce)
            gen = LoadGenerator(LoadSpec(producers=1, rate_per_producer=0.2, batch=1), 1, produce,
                                lambda p: False)
            gen.start(duration_ns=60_000_000_000)
            time.sleep(0.2)          # the first event went out at t0; the next is due at 5 s
            t = time.monotonic()
            assert gen.stop(timeout_s=10.0), name
            assert time.monotonic() - t < 1.0, f"{name}: the stop took {time.monotonic() - t:.2f} s"
            truth = gen.truth(0)
            assert truth.offered == 1 and truth.unsent == 0, f"{name}: {truth}"
    finally:
        target.shutdown(1.0)


def test_a_closed_gate_lets_the_call_in_flight_end_and_turns_the_rest_away(fake_lib):
    """The loop's gate (what lets the kafka target destroy its handle safely): while a
    call is inside the C function the gate counts it in flight, closing the gate says
    so, and once it has left the bus sees no further call: the producer's next events
    are turned away, untouched, and the producer stops."""
    f = np.zeros(5 + 8, np.int64)
    f[0], f[1] = 0, 1_000_000_000        # the first call stalls 1 s (from any time)
    f[4] = 1 << 40                       # every seq counts in f[5]: calls the bus saw
    calls = CallSpec(address=fake_lib["fake_ingest"], args=(Arg.const(f.ctypes.data), Arg.VALUE,
                                                          Arg.PTR, Arg.LEN)).to_array()
    params = np.zeros(K.P_LEN, np.int64)
    params[K.P_BATCH] = 4
    params[K.P_MAX_EVENTS] = 1000
    params[K.P_SHARDS] = 1
    pstate = np.zeros(K.S_LEN, np.int64)
    gate = K.new_gate()
    th = threading.Thread(target=LF.produce_ccall, args=(calls, params, pstate, K.empty_xstate(),
                                                        np.zeros(16, np.int64), PL.template_array(4),
                                                        np.zeros(4, np.int64), np.zeros(4, np.int64)),
                          kwargs={"gate": gate})
    th.start()
    try:
        end = time.monotonic() + 30.0
        while K.gate_inflight(gate) == 0 and th.is_alive() and time.monotonic() < end:
            time.sleep(0.001)
        assert K.close_gate(gate) == 1             # the stalled call is inside
        while K.gate_inflight(gate) != 0 and time.monotonic() < end:
            time.sleep(0.001)
        assert K.gate_inflight(gate) == 0
        seen = int(f[5])
    finally:
        th.join(30.0)
    assert not th.is_alive()
    assert int(f[5]) == seen == pstate[K.S_LANDED] == pstate[K.S_OFFERED] == 4   # the batch in flight
    assert pstate[K.S_TURNED_AWAY] == 4 and pstate[K.S_DONE] == 1                # the next one, untouched
