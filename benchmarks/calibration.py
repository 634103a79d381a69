"""The bare ring: the ceiling the bus's throughput is expressed against.

The same bounded ring as the reference bus (``busbench/bus/kernels.py``):
Vyukov-style per-slot sequence numbers, capacity a power of two, producers
claiming runs of positions with one CAS on the tail and publishing each slot
with a release store, the consumer waiting for a run of ``MIN_RUN`` published
events (unless idle a while) and taking up to ``POP_MAX`` with one CAS on the
head. The waiting policy is the bus's own ``backoff``. Everything else the bus
does is left out: one shard, no counters, no in-flight stripes, no shutdown
gate, no batch assembly, no adapter, no clock in the consumer. The producer
pushes runs of 64 events and waits (backs off) when the ring is full, so what
it measures is what the ring itself can carry between two threads.

The functions here are a minimal copy of ``claim``, ``publish`` and
``pop_into_batch`` over bare arrays (the bus's versions take its whole
``BusState``); the logic, line for line, is the same.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from busbench.native.atomics import compare_and_swap, load_acquire, load_relaxed, store_release
from busbench.native.clock import monotonic_ns
from busbench.bus.config import SEQ_BITS, SEQ_MASK, SLOT
from busbench.native.jit import kernel
from busbench.bus.kernels import EAGER_AFTER, MIN_RUN, backoff
from busbench.bus.layout import aligned_zeros

RUN = 64            # events a producer pushes per run (the bus's ingest batch)
POP_MAX = 512       # events the consumer takes at most per pop (the bus's max_events)
CAPACITY = 4096

# pos: tail and head, each on its own 128-byte block
POS_TAIL, POS_HEAD = 0, SLOT
# ctrl: stop (producers are done: drain and leave), abort (error: leave now)
CTRL_STOP, CTRL_ABORT = 0, SLOT


@kernel
def ring_claim(seq, pos, mask, want):
    """Claim up to ``want`` consecutive free positions; (first, how many), 0 when full."""
    t = load_relaxed(pos, POS_TAIL)
    while True:
        j = 0
        while j < want:
            if load_acquire(seq, (t + j) & mask) != t + j:
                break
            j += 1
        if j == 0:
            if load_acquire(seq, t & mask) < t:
                return t, 0          # the slot still holds last lap's event: full
            t = load_relaxed(pos, POS_TAIL)
            continue
        old = compare_and_swap(pos, POS_TAIL, t, t + j)
        if old == t:
            return t, j
        t = old


@kernel
def ring_publish(seq, val, mask, first, k, value0):
    """Write and publish k events (values value0, value0 + 1, ...) at [first, first + k)."""
    for j in range(k):
        slot = (first + j) & mask
        val[slot] = value0 + j
        store_release(seq, slot, first + j + 1)


@kernel
def ring_pop(seq, val, pos, cap, mask, room, eager, acc):
    """Take up to ``room`` published events; adds their sequence numbers to acc[0]."""
    h = load_acquire(pos, POS_HEAD)
    if not eager and room >= MIN_RUN:
        last = h + MIN_RUN - 1
        if load_acquire(seq, last & mask) != last + 1:
            return 0
    while True:
        j = 0
        while j < room:
            if load_acquire(seq, (h + j) & mask) != h + j + 1:
                break
            j += 1
        if j == 0:
            return 0
        old = compare_and_swap(pos, POS_HEAD, h, h + j)
        if old != h:
            h = old
            continue
        total = 0
        for k in range(j):
            slot = (h + k) & mask
            total += val[slot] & SEQ_MASK
            store_release(seq, slot, h + k + cap)
        acc[0] += total
        return j


@kernel
def produce(seq, val, pos, cap, producer, run, deadline, ctrl):
    """Push runs of ``run`` events until the deadline; returns the events pushed.

    Event values are ``producer << SEQ_BITS | n``, n counting from 0, so the
    consumer's checksum can prove every event arrived exactly once.
    """
    mask = cap - 1
    high = np.int64(producer) << SEQ_BITS
    pushed = 0
    spins = 0
    while monotonic_ns() < deadline:
        done = 0
        while done < run:
            first, k = ring_claim(seq, pos, mask, run - done)
            if k == 0:
                if load_relaxed(ctrl, CTRL_ABORT) != 0:
                    return pushed + done
                spins = backoff(spins)
                continue
            ring_publish(seq, val, mask, first, k, high | (pushed + done))
            done += k
            spins = 0
        pushed += run
    return pushed


@kernel
def consume(seq, val, pos, cap, room, ctrl, acc):
    """Pop until told to stop and the ring is empty; returns the events popped."""
    mask = cap - 1
    popped = 0
    spins = 0
    while True:
        stopping = load_acquire(ctrl, CTRL_STOP) != 0
        got = ring_pop(seq, val, pos, cap, mask, room, stopping or spins >= EAGER_AFTER, acc)
        if got > 0:
            popped += got
            spins = 0
            continue
        if load_relaxed(ctrl, CTRL_ABORT) != 0:
            return popped
        # Every producer has returned, so every claimed slot is published.
        if stopping and load_acquire(pos, POS_HEAD) >= load_acquire(pos, POS_TAIL):
            return popped
        spins = backoff(spins)


@dataclass(frozen=True)
class CalibrationSample:
    producers: int
    seconds: float          # of load (the producers' deadline)
    wall_seconds: float     # start of the threads to the consumer's return
    pushed: int
    popped: int
    checksum_ok: bool       # every event popped exactly once (sum of sequence numbers)

    @property
    def events_per_s(self) -> float:
        return self.popped / self.seconds

    def to_dict(self) -> dict:
        return {"producers": self.producers, "seconds": self.seconds,
                "wall_seconds": self.wall_seconds, "pushed": self.pushed,
                "popped": self.popped, "checksum_ok": self.checksum_ok,
                "events_per_s": self.events_per_s}


def run_calibration(seconds: float, producers: int = 1, capacity: int = CAPACITY,
                    run: int = RUN, pop_max: int = POP_MAX) -> CalibrationSample:
    """One measurement: ``producers`` threads push runs for ``seconds``, one
    thread pops; every thread is joined before this returns, also on error."""
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"capacity must be a power of two >= 2, got {capacity}")
    seq = np.arange(capacity, dtype=np.int64)       # slot i free for position i
    val = np.zeros(capacity, np.int64)
    pos = aligned_zeros(2 * SLOT)
    ctrl = aligned_zeros(2 * SLOT)
    acc = aligned_zeros(SLOT)
    pushed = [0] * producers
    popped = [0]
    errors: list[BaseException] = []

    def consumer():
        try:
            popped[0] = consume(seq, val, pos, capacity, pop_max, ctrl, acc)
        except BaseException as exc:   # reported below; a thread must not die silently
            errors.append(exc)

    def producer(p, deadline):
        try:
            pushed[p] = produce(seq, val, pos, capacity, p, run, deadline, ctrl)
        except BaseException as exc:
            errors.append(exc)

    duration_ns = int(seconds * 1e9)
    consumer_thread = threading.Thread(target=consumer, name="calibration-consumer", daemon=True)
    producer_threads = []
    t0 = time.monotonic_ns()
    try:
        consumer_thread.start()
        deadline = time.monotonic_ns() + duration_ns
        for p in range(producers):
            t = threading.Thread(target=producer, args=(p, deadline),
                                 name=f"calibration-producer-{p}", daemon=True)
            producer_threads.append(t)
            t.start()
        for t in producer_threads:
            t.join()
        ctrl[CTRL_STOP] = 1
        consumer_thread.join()
    finally:
        ctrl[CTRL_STOP] = 1
        if any(t.is_alive() for t in producer_threads + [consumer_thread]):
            ctrl[CTRL_ABORT] = 1
        for t in producer_threads + [consumer_thread]:
            if t.ident is not None:
                t.join()
    wall = (time.monotonic_ns() - t0) / 1e9
    if errors:
        raise RuntimeError(f"a calibration thread failed: {errors[0]!r}") from errors[0]
    expected = sum(n * (n - 1) // 2 for n in pushed)
    return CalibrationSample(producers=producers, seconds=duration_ns / 1e9, wall_seconds=wall,
                             pushed=sum(pushed), popped=popped[0],
                             checksum_ok=popped[0] == sum(pushed) and int(acc[0]) == expected)


if __name__ == "__main__":
    run_calibration(0.01)   # compile (or load from cache) outside the timing
    for producers in (1, 2):
        sample = run_calibration(1.0, producers)
        print(f"bare ring, {producers} producer(s): {sample.events_per_s / 1e6:.1f} M events/s "
              f"(checksum {'ok' if sample.checksum_ok else 'WRONG'})")
