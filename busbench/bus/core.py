"""ReferenceBus: owns the arrays, the worker threads and the lifecycle.

The data path is in ``kernels.py`` (jitted, nogil). This class builds the
arrays from a ``BusConfig``, starts one thread per batch worker, and runs the
cold protocols in Python: ``flush()`` (an exact per-shard delivery barrier) and
``shutdown()`` (gate, in-flight wait, grace deadline, stranded events, final
drain). Mutations change these protocols exactly where net-mesh once did.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..native import histogram
from . import kernels
from ..native.atomics import compare_and_swap, exchange, fetch_add, load_acquire
from .config import (ABANDONED, ACTIVE, ADAPTER_KINDS, BACKPRESSURE_MODES, CFG_ADAPTER,
                     CFG_BLOCK_TIMEOUT_NS, CFG_CAPACITY, CFG_COLD_WRITER,
                     CFG_COUNTER_STRIDE, CFG_FLAKY_BACKOFF_NS, CFG_FLAKY_FAIL_PPM,
                     CFG_FLAKY_RETRIES, CFG_LATENCY, CFG_LEN, CFG_MASK, CFG_MAX_DELAY_NS,
                     CFG_MAX_EVENTS, CFG_MODE, CFG_MUTATIONS, CFG_PRODUCERS, CFG_PS_STRIDE, CFG_SHARDS,
                     CFG_SLOW_PER_BATCH_NS, CFG_SLOW_PER_EVENT_NS, CFG_VERIFY_WORDS,
                     CFG_WORKERS, CFG_WRITER_STRIDE, COMMIT, CTRL_FLUSHING, CTRL_GATE,
                     CTRL_LEN, CTRL_PHASE, CTRL_RELEASE, CTRL_STALL_FROM, CTRL_STALL_UNTIL,
                     LATENCY_ONE_STAMP, LATENCY_TWO_STAMPS, M_DISPATCH_FROZEN, M_FLUSH_GLOBAL_SUM, M_FLUSH_SINGLE_WINDOW,
                     M_LOSSY_NEVER_SET, M_NO_INFLIGHT_GATE, M_STRANDED_DOUBLE, NO_BATCH,
                     EVICT_BEGUN, EVICT_ENDED, PHASE_DRAIN, PHASE_STOP, POS_BATCH_START,
                     POS_EVICTIONS, POS_FIELDS, POS_HEAD, POS_SETTLED,
                     POS_TAIL, SEQ_BITS, SLOT, ST_PENDING, ST_STALL_FOR, ST_STALL_FROM,
                     ST_STALLING, ST_STATE, ST_STRANDED, STATUS_NAMES, BusConfig)
from .layout import (EVENTS_DROPPED, SHUTDOWN_WAS_LOSSY, CounterArray, aligned_zeros)

POLL_S = 0.0002


def _filled(array, value):
    array[:] = value
    return array


# Cold-path atomics callable from Python (the GIL is held; they are short).
@njit(cache=True)
def _py_exchange(a, i, v):
    return exchange(a, i, v)


@njit(cache=True)
def _py_cas(a, i, expected, desired):
    return compare_and_swap(a, i, expected, desired)


@njit(cache=True)
def _py_fetch_add(a, i, v):
    return fetch_add(a, i, v)


@njit(cache=True)
def _py_load(a, i):
    return load_acquire(a, i)


def warm_python_side() -> None:
    """The atomics above, with the types ReferenceBus hands them (a state array, Python
    ints), compiled or loaded now: a first run's flush and shutdown then compile nothing."""
    a = np.zeros(1, np.int64)
    _py_exchange(a, 0, 0)
    _py_cas(a, 0, 0, 0)
    _py_fetch_add(a, 0, 0)
    _py_load(a, 0)


@dataclass(frozen=True)
class EventBusStats:
    events_ingested: int
    events_dropped: int
    batches_dispatched: int
    events_dispatched: int
    shutdown_was_lossy: bool

    def as_dict(self) -> dict:
        return {"events_ingested": self.events_ingested, "events_dropped": self.events_dropped,
                "batches_dispatched": self.batches_dispatched,
                "events_dispatched": self.events_dispatched,
                "shutdown_was_lossy": self.shutdown_was_lossy}


@dataclass(frozen=True)
class ShardBarrier:
    """One shard's side of a flush: where its ring was filled to at the call,
    and how far its consumer had settled (dispatched or dropped) at return."""
    shard: int
    target: int          # tail position when flush() was called
    head: int            # positions taken out of the ring at return
    batch_start: int     # first position of the batch still being assembled, if any
    settled: int         # events dispatched, rejected or evicted from this shard

    @property
    def reached(self) -> bool:
        return self.head >= self.target and self.batch_start >= self.target

    @property
    def unsettled(self) -> int:
        """Events ingested before the call and not yet dispatched or dropped (lower bound)."""
        return max(0, self.target - min(self.head, self.batch_start))


@dataclass(frozen=True)
class FlushResult:
    reached: bool               # what flush() itself reports
    timed_out: bool
    waited_s: float
    shards: tuple               # ShardBarrier per shard, measured when flush returned
    method: str                 # "per_shard" or the mutation's name
    in_flight_at_call: int = 0  # events ingested and not yet settled when flush was called

    @property
    def barrier_held(self) -> bool:
        """The evidence: did every shard really pass its target?"""
        return all(s.reached for s in self.shards)


@dataclass(frozen=True)
class ShutdownReport:
    lossy: bool                 # grace deadline passed with producers mid-push
    flag_set: bool              # what shutdown_was_lossy says
    stranded_events: int
    abandoned_producers: tuple
    duration_s: float
    grace_s: float
    residue: int = 0            # events left in rings after the final drain (should be 0)


@dataclass
class GroundTruthBus:
    """What the bus side saw: the verify adapter (the witness) and the drops the
    bus attributes to each producer. Arrays ``*_by_shard`` are (shards, producers);
    ``*_sum`` are per producer checksums (payload.mix), ints in [0, 2**64)."""
    received_by_shard: np.ndarray    # by the verify adapter
    evicted_by_shard: np.ndarray     # drop_oldest evictions, by the producer that sent them
    rejected_by_shard: np.ndarray    # rejected by the adapter after retries
    last_seq_by_shard: np.ndarray    # last seq received (-1: none)
    received_sum: list
    evicted_sum: list
    rejected_sum: list
    stranded: np.ndarray             # per producer, counted by shutdown
    order_violations: int            # a seq not above the last received on its shard
    duplicates: int | None           # bitmaps only: None when the bitmaps are off
    received_and_dropped: int | None  # bitmaps only: events (not words) in both
    beyond_bitmap: int
    verify: bool
    bitmaps: bool

    @property
    def received(self) -> np.ndarray:
        return self.received_by_shard.sum(axis=0)

    @property
    def evicted(self) -> np.ndarray:
        return self.evicted_by_shard.sum(axis=0)

    @property
    def rejected(self) -> np.ndarray:
        return self.rejected_by_shard.sum(axis=0)


class ReferenceBus:
    """The reference bus of BUS.md. Create, ``start()``, ingest, ``flush()``,
    ``shutdown()``. Producers get a writer id from ``producer_writer(i)``."""

    def __init__(self, config: BusConfig):
        self.config = c = config
        self.producers = c.producers
        self.python_writer = c.producers            # for plain-Python ingest (tests)
        self.worker_writers = [c.producers + 1 + w for w in range(c.workers)]
        self.cold_writer = c.producers + 1 + c.workers
        writers = self.cold_writer + 1
        self.counters = CounterArray.allocate(c.counters, writers)
        verify = c.adapter == "verify"
        verify_words = ((c.verify_events_per_producer + 63) // 64
                        if verify and c.verify_bitmaps else 0)
        # Per (shard, producer) tallies: each shard's row padded to whole 128-byte
        # blocks, since shards of different workers must not share a line.
        self.ps_stride = ps = (c.producers + SLOT - 1) // SLOT * SLOT

        cfg = np.zeros(CFG_LEN, np.int64)
        cfg[CFG_SHARDS] = c.shards
        cfg[CFG_CAPACITY] = c.capacity
        cfg[CFG_MASK] = c.capacity - 1
        cfg[CFG_MODE] = BACKPRESSURE_MODES[c.backpressure]
        cfg[CFG_BLOCK_TIMEOUT_NS] = c.block_timeout_ns
        cfg[CFG_MAX_EVENTS] = c.max_events
        cfg[CFG_MAX_DELAY_NS] = c.max_delay_ns
        cfg[CFG_MUTATIONS] = c.mutation_bits
        cfg[CFG_COUNTER_STRIDE] = self.counters.counter_stride
        cfg[CFG_WRITER_STRIDE] = self.counters.writer_stride
        cfg[CFG_ADAPTER] = ADAPTER_KINDS[c.adapter]
        cfg[CFG_SLOW_PER_BATCH_NS] = c.slow_per_batch_ns
        cfg[CFG_SLOW_PER_EVENT_NS] = c.slow_per_event_ns
        cfg[CFG_FLAKY_FAIL_PPM] = int(round(c.flaky_failure_rate * 1_000_000))
        cfg[CFG_FLAKY_RETRIES] = c.flaky_retries
        cfg[CFG_FLAKY_BACKOFF_NS] = c.flaky_backoff_ns
        cfg[CFG_LATENCY] = c.latency_mode
        cfg[CFG_PRODUCERS] = c.producers
        cfg[CFG_VERIFY_WORDS] = verify_words
        cfg[CFG_WORKERS] = c.workers
        cfg[CFG_COLD_WRITER] = self.cold_writer
        cfg[CFG_PS_STRIDE] = ps

        slots = c.shards * c.capacity
        ring_seq = np.arange(slots, dtype=np.int64) % c.capacity   # slot i free for position i
        lat_slots = slots if c.latency else 1
        batch_slots = c.shards * c.max_events
        pos = aligned_zeros(c.shards * POS_FIELDS * SLOT)
        for s in range(c.shards):
            pos[(s * POS_FIELDS + POS_BATCH_START) * SLOT] = NO_BATCH
        wrk = aligned_zeros(c.workers * SLOT)
        for w in range(c.workers):
            wrk[w * SLOT + kernels.W_RNG] = (c.seed * 0x9E3779B97F4A7C15 + w + 1) & 0x7FFFFFFFFFFFFFFF or 1
        hist_rows = c.workers if c.latency else 1
        self.state = kernels.BusState(
            cfg=cfg,
            ctrl=aligned_zeros(CTRL_LEN * SLOT),
            pos=pos,
            ring_seq=ring_seq,
            ring_val=np.zeros(slots, np.int64),
            ring_t_int=np.zeros(lat_slots, np.int64),
            ring_t_sent=np.zeros(slots if c.latency_mode == LATENCY_TWO_STAMPS else 1, np.int64),
            counters=self.counters.words,
            stripes=aligned_zeros(writers * SLOT),
            batch_val=np.zeros(batch_slots, np.int64),
            batch_t_int=np.zeros(batch_slots if c.latency else 1, np.int64),
            batch_t_sent=np.zeros(batch_slots if c.latency_mode == LATENCY_TWO_STAMPS else 1,
                                  np.int64),
            wshard=aligned_zeros(c.shards * SLOT),
            # calloc'd: untouched pages of the bitmaps cost no memory
            v_recv=np.zeros(max(1, c.producers * verify_words), np.int64),
            v_drop=np.zeros(max(1, c.producers * verify_words), np.int64),
            v_last=_filled(aligned_zeros(c.shards * ps), -1),
            v_count=aligned_zeros(c.shards * ps),
            v_sum=aligned_zeros(c.shards * ps),
            ev_count=aligned_zeros(c.shards * ps),
            ev_sum=aligned_zeros(c.shards * ps),
            rj_count=aligned_zeros(c.shards * ps),
            rj_sum=aligned_zeros(c.shards * ps),
            v_anomaly=aligned_zeros(c.workers * SLOT),
            hist_int=histogram.new_histograms(hist_rows),
            hist_sent=histogram.new_histograms(hist_rows),
            wrk=wrk,
        )
        self._shard_lists = [np.array([s for s in range(c.shards) if s % c.workers == w], np.int64)
                             for w in range(c.workers)]
        self._workers: list[threading.Thread] = []
        self._worker_errors: list[BaseException] = []
        self._stranded = np.zeros(c.producers, np.int64)
        self._reports: list[ShutdownReport] = []      # shared with the finaliser
        self._started = False
        self._lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        # Dropping a bus without shutdown must not lose events silently: the
        # finaliser runs the same protocol, with grace 0 (anything mid-push is
        # counted as stranded and flagged). It holds the arrays, not the bus.
        self._finalizer = weakref.finalize(
            self, _finalize, self.state, c, self.counters, self._workers, self._stranded,
            self.cold_writer, self._reports, self._lock)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ReferenceBus":
        if self._started:
            return self
        self._started = True
        for w in range(self.config.workers):
            # The thread gets the arrays, not the bus: a bus dropped without
            # shutdown must stay collectable so its finaliser can run.
            t = threading.Thread(target=_worker_main,
                                 args=(self.state, w, self.worker_writers[w],
                                       self._shard_lists[w], self._worker_errors),
                                 name=f"busbench-worker-{w}", daemon=True)
            self._workers.append(t)
            t.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self, grace_s: float = 0.0) -> ShutdownReport:
        """Teardown: release every stall, then shut down if not done yet."""
        self.release_stalls()
        return self.shutdown(grace_s)

    # ------------------------------------------------------------------ reading
    def stats(self) -> EventBusStats:
        v = self.counters.read_all()
        return EventBusStats(v["events_ingested"], v["events_dropped"], v["batches_dispatched"],
                             v["events_dispatched"], bool(v["shutdown_was_lossy"]))

    def _eviction(self, shard, which) -> int:
        return int(_py_load(self.state.pos, (shard * POS_FIELDS + POS_EVICTIONS) * SLOT + which))

    def _pos(self, shard, field_):
        return int(self.state.pos[(shard * POS_FIELDS + field_) * SLOT])

    def shard_fill(self) -> list[int]:
        """Events queued in each shard's ring now (claimed and not yet taken out).

        The head is read before the tail: both only grow and tail >= head, so
        a reader delayed between the two reads (a loaded machine) can only
        overstate, never show a full ring as empty; the capacity bounds it."""
        cap = self.config.capacity
        fills = []
        for s in range(self.config.shards):
            head = self._pos(s, POS_HEAD)
            fills.append(min(cap, max(0, self._pos(s, POS_TAIL) - head)))
        return fills

    def producer_stalling(self, producer: int) -> bool:
        return bool(self.state.stripes[producer * SLOT + ST_STALLING])

    def latency_histograms(self):
        """(merged corrected, merged uncorrected) histograms, or None when off."""
        if not self.config.latency:
            return None
        corrected = histogram.merge(self.state.hist_int)
        if self.config.latency_mode == LATENCY_ONE_STAMP:
            return corrected, corrected      # closed loop: intended time == actual time
        return corrected, histogram.merge(self.state.hist_sent)

    def _by_shard(self, array) -> np.ndarray:
        c = self.config
        return array.reshape(c.shards, self.ps_stride)[:, :c.producers].copy()

    def ground_truth_stranded(self) -> np.ndarray:
        """Events stranded by shutdown, per producer (as counted by the bus)."""
        return self._stranded[:self.config.producers].copy()

    def drops_by_shard(self) -> tuple:
        """(evicted, rejected) per (shard, producer) now: cheap, for flush evidence."""
        return self._by_shard(self.state.ev_count), self._by_shard(self.state.rj_count)

    def ground_truth(self, next_seq=None) -> GroundTruthBus:
        """The verify adapter's tallies and the drops the bus attributes to each
        producer. ``next_seq[p]`` (one past the highest sequence number producer
        p sent) bounds the bitmap scan, when the bitmaps are on."""
        st, c = self.state, self.config
        verify = c.adapter == "verify"
        words = int(st.cfg[CFG_VERIFY_WORDS])
        both = None
        if words:
            both = 0
            for p in range(c.producers):
                used = words if next_seq is None else min(words, (int(next_seq[p]) + 63) // 64)
                lo = p * words
                # events, not words: a word may hold several such events
                both += int(np.bitwise_count(st.v_recv[lo:lo + used]
                                             & st.v_drop[lo:lo + used]).sum())
        an = st.v_anomaly.reshape(c.workers, SLOT)

        def sums(array):
            return [int(v) % (1 << 64) for v in self._by_shard(array).sum(axis=0, dtype=np.int64)]
        return GroundTruthBus(
            received_by_shard=self._by_shard(st.v_count),
            evicted_by_shard=self._by_shard(st.ev_count),
            rejected_by_shard=self._by_shard(st.rj_count),
            last_seq_by_shard=self._by_shard(st.v_last),
            received_sum=sums(st.v_sum), evicted_sum=sums(st.ev_sum), rejected_sum=sums(st.rj_sum),
            stranded=self._stranded.copy(),
            order_violations=int(an[:, kernels.V_ORDER].sum()),
            duplicates=int(an[:, kernels.V_DUPLICATES].sum()) if words else None,
            received_and_dropped=both,
            beyond_bitmap=int(an[:, kernels.V_BEYOND_BITMAP].sum()),
            verify=verify, bitmaps=bool(words))

    # ------------------------------------------------------------------ plain-Python ingest
    def ingest(self, values, shards, t_int=None, writer=None):
        """Ingest events from Python (tests, tools). Returns (status name, landed mask)."""
        values = np.ascontiguousarray(values, np.int64)
        shards = np.ascontiguousarray(shards, np.int64)
        n = len(values)
        now = time.monotonic_ns()
        if t_int is None:
            t_int = np.full(n, now, np.int64)
        order = np.empty(max(n, 1), np.int64)
        counts = np.empty(self.config.shards + 1, np.int64)
        landed = np.zeros(max(n, 1), np.int64)
        t_int = np.ascontiguousarray(t_int, np.int64)
        if writer is None:
            # One in-flight stripe serves every Python caller: one push at a time.
            with self._ingest_lock:
                status, _ = kernels.ingest_batch(self.state, self.python_writer, shards, values,
                                                 t_int, now, n, order, counts, landed)
        else:
            status, _ = kernels.ingest_batch(self.state, writer, shards, values, t_int, now, n,
                                             order, counts, landed)
        return STATUS_NAMES[status], landed[:n].astype(bool)

    @staticmethod
    def event(producer: int, seq: int) -> int:
        return (producer << SEQ_BITS) | seq

    # ------------------------------------------------------------------ faults
    def arm_producer_stall(self, producer: int, after_ns: int, for_ns: int) -> None:
        """Make the producer stall mid-push (slots claimed, not yet published) on
        its first push at least ``after_ns`` from now, for ``for_ns``."""
        base = producer * SLOT
        self.state.stripes[base + ST_STALL_FOR] = for_ns
        _py_exchange(self.state.stripes, base + ST_STALL_FROM, time.monotonic_ns() + max(after_ns, 1))

    def schedule_adapter_stall(self, after_ns: int, for_ns: int) -> None:
        """Freeze the downstream (every on_batch blocks) from now + after for for_ns."""
        start = time.monotonic_ns() + after_ns
        ctrl = self.state.ctrl
        ctrl[CTRL_STALL_UNTIL * SLOT] = 0
        ctrl[CTRL_STALL_FROM * SLOT] = start
        _py_exchange(ctrl, CTRL_STALL_UNTIL * SLOT, start + for_ns)

    def release_stalls(self) -> None:
        """End every stall now (teardown: threads we start, we stop)."""
        _py_exchange(self.state.ctrl, CTRL_RELEASE * SLOT, 1)
        self.state.ctrl[CTRL_STALL_UNTIL * SLOT] = 0

    # ------------------------------------------------------------------ flush
    def _barrier_evidence(self, targets) -> tuple:
        out = []
        for s, target in enumerate(targets):
            # Read head before batch start: the worker announces a batch before taking it.
            head = int(_py_load(self.state.pos, (s * POS_FIELDS + POS_HEAD) * SLOT))
            start = int(_py_load(self.state.pos, (s * POS_FIELDS + POS_BATCH_START) * SLOT))
            settled = int(_py_load(self.state.pos, (s * POS_FIELDS + POS_SETTLED) * SLOT))
            out.append(ShardBarrier(s, int(target), head, start, settled))
        return tuple(out)

    def flush(self, timeout_s: float = 5.0) -> FlushResult:
        """Block until every event ingested before the call is dispatched or
        dropped, on every shard; says whether it got there within the timeout."""
        c = self.config
        t0 = time.monotonic()
        targets = [int(_py_load(self.state.pos, (s * POS_FIELDS + POS_TAIL) * SLOT))
                   for s in range(c.shards)]
        in_flight = sum(max(0, t - self._pos(s, POS_SETTLED)) for s, t in enumerate(targets))
        deadline = t0 + timeout_s
        bits = c.mutation_bits
        workers_alive = any(t.is_alive() for t in self._workers)
        _py_fetch_add(self.state.ctrl, CTRL_FLUSHING * SLOT, 1)   # dispatch partial batches now
        try:
            if bits & M_FLUSH_SINGLE_WINDOW:
                method = "flush_single_window"
                time.sleep(c.max_delay_ns / 1e9)
                reached, timed_out = True, False
            elif bits & M_DISPATCH_FROZEN:
                # net-mesh's old probe: wait while batches_dispatched moves.
                method = "dispatch_counters_frozen"
                last = self.stats().batches_dispatched
                while True:
                    time.sleep(c.max_delay_ns / 1e9)
                    now_b = self.stats().batches_dispatched
                    if now_b == last or time.monotonic() > deadline:
                        break
                    last = now_b
                reached, timed_out = True, False
            elif bits & M_FLUSH_GLOBAL_SUM:
                method = "flush_global_sum"
                goal = sum(targets)
                reached = _poll_until(lambda: sum(self._pos(s, POS_SETTLED)
                                                  for s in range(c.shards)) >= goal,
                                      deadline, workers_alive)
                timed_out = not reached
            else:
                method = "per_shard"
                reached = _poll_until(lambda: all(b.reached for b in self._barrier_evidence(targets)),
                                      deadline, workers_alive)
                if reached:
                    # An eviction moves the head first and counts the event after:
                    # wait for those begun before the head was seen past the target.
                    begun = [self._eviction(s, EVICT_BEGUN) for s in range(c.shards)]
                    reached = _poll_until(lambda: all(self._eviction(s, EVICT_ENDED) >= b
                                                      for s, b in enumerate(begun)),
                                          deadline, True)
                timed_out = not reached
        finally:
            _py_fetch_add(self.state.ctrl, CTRL_FLUSHING * SLOT, -1)
        evidence = self._barrier_evidence(targets)
        return FlushResult(reached=reached, timed_out=timed_out, waited_s=time.monotonic() - t0,
                           shards=evidence, method=method, in_flight_at_call=in_flight)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, grace_s: float = 5.0) -> ShutdownReport:
        """Close the gate, wait for in-flight pushes up to the grace deadline,
        count what is stranded, drain the rings, stop the workers."""
        if not self._started:
            self.start()          # the final drain needs the workers
        report = _run_shutdown(self.state, self.config, self.counters, self._workers,
                               self._stranded, self.cold_writer, self._reports, self._lock,
                               grace_s)
        if self._worker_errors:
            raise RuntimeError(f"a batch worker failed: {self._worker_errors[0]!r}")
        return report

    @property
    def shut_down(self) -> bool:
        return bool(self._reports)

    @property
    def shutdown_report(self) -> ShutdownReport | None:
        return self._reports[0] if self._reports else None


def _poll_until(condition, deadline, workers_alive) -> bool:
    """Poll ``condition`` until it holds (True) or the deadline passes or there
    is no worker left to make progress (False)."""
    while True:
        if condition():
            return True
        if time.monotonic() > deadline or not workers_alive:
            return False
        time.sleep(POLL_S)


def _worker_main(state, worker, writer, shards, errors):
    try:
        kernels.worker_loop(state, worker, writer, shards)
    except BaseException as exc:      # surfaced by shutdown(): a worker must not die silently
        errors.append(exc)


def _in_flight(stripes, writers):
    return [w for w in range(writers) if stripes[w * SLOT + ST_STATE] in (ACTIVE, COMMIT)]


def _run_shutdown(st, c, counters, workers, stranded_by_producer, cold_writer, reports, lock,
                  grace_s) -> ShutdownReport:
    """The shutdown protocol of BUS.md, over the bus's arrays and threads."""
    with lock:
        if reports:
            return reports[0]
        t0 = time.monotonic()
        ctrl = st.ctrl
        writers = cold_writer + 1
        _py_exchange(ctrl, CTRL_GATE * SLOT, 1)      # full barrier: see the in-flight stripes
        abandoned = []
        stranded = 0
        bits = c.mutation_bits
        if not bits & M_NO_INFLIGHT_GATE:
            deadline = t0 + grace_s
            # Wait for in-flight pushes; only past the deadline abandon those
            # still ACTIVE. (A push seen ACTIVE after an earlier wait found none
            # entered after the gate closed: it will see the gate and leave.)
            # One in COMMIT is mid-write and never blocks there: wait for it.
            while True:
                busy = _in_flight(st.stripes, writers)
                if not busy:
                    break
                if time.monotonic() >= deadline:
                    for w in busy:
                        if _py_cas(st.stripes, w * SLOT + ST_STATE, ACTIVE, ABANDONED) != ACTIVE:
                            continue
                        # ABANDONED now: the push can no longer change PENDING.
                        # Nothing pending (it just entered and will see the gate,
                        # or every event landed and it is about to leave) is no
                        # push cut off: not listed, not lossy.
                        pending = int(st.stripes[w * SLOT + ST_PENDING])
                        if pending == 0:
                            continue
                        abandoned.append(w)
                        stranded += pending
                        st.stripes[w * SLOT + ST_STRANDED] += pending
                        if w < c.producers:
                            stranded_by_producer[w] += pending
                time.sleep(POLL_S)
        lossy = bool(abandoned)
        cold = cold_writer * counters.writer_stride
        if stranded:
            times = 2 if bits & M_STRANDED_DOUBLE else 1
            _py_fetch_add(counters.words, EVENTS_DROPPED * counters.counter_stride + cold,
                          stranded * times)
        if lossy and not bits & M_LOSSY_NEVER_SET:
            counters.words[SHUTDOWN_WAS_LOSSY * counters.counter_stride + cold] = 1
        # Final drain: the workers empty the rings and exit.
        _py_exchange(ctrl, CTRL_PHASE * SLOT, PHASE_DRAIN)
        for t in workers:
            t.join()
        _py_exchange(ctrl, CTRL_PHASE * SLOT, PHASE_STOP)
        residue = sum(max(0, int(st.pos[(s * POS_FIELDS + POS_TAIL) * SLOT]) - int(st.pos[(s * POS_FIELDS + POS_HEAD) * SLOT]))
                      for s in range(c.shards))
        report = ShutdownReport(
            lossy=lossy, flag_set=bool(counters.read(SHUTDOWN_WAS_LOSSY)), stranded_events=stranded,
            abandoned_producers=tuple(abandoned), duration_s=time.monotonic() - t0,
            grace_s=grace_s, residue=residue)
        reports.append(report)
        return report


def _finalize(st, c, counters, workers, stranded_by_producer, cold_writer, reports, lock):
    """weakref finaliser of a bus dropped without shutdown (see ReferenceBus.__init__)."""
    if reports or not workers:
        return
    try:
        _py_exchange(st.ctrl, CTRL_RELEASE * SLOT, 1)
        _run_shutdown(st, c, counters, workers, stranded_by_producer, cold_writer, reports, lock, 0.0)
    except Exception:
        pass
