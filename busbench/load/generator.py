"""LoadGenerator: the producer threads, their parameters and ground truth.

The kernels are pure functions over arrays (kernels.py); this class owns the
arrays and the threads. It knows no bus: a target hands it its ``produce``
entry (``produce(p, params, pstate, by_shard, zipf_cdf, stop, events)``, run in
the producer's thread) and ``producer_stalling(p)``. Threads it starts, it
stops: ``stop()`` raises the stop flag and joins them, also on error and Ctrl-C.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields

import numpy as np

from ..bus.layout import aligned_zeros
from ..common.strict import field_values
from ..native.payload import MOD, RangeChecksum, as_checksum
from . import kernels as K


@dataclass(frozen=True)
class LoadSpec:
    """The load, in plain values (the scenario's `load:` section, parsed)."""
    producers: int = 2
    rate_per_producer: float | None = None     # events/s; None = closed loop
    batch: int = 64
    keys: str = "uniform"                      # uniform | round_robin | hot | zipf
    hot_shard: int = 0
    hot_share: float = 0.9
    zipf_exponent: float = 1.1
    late_after_ns: int = 1_000_000
    retry_failed: bool = False
    seed: int = 1


@dataclass(frozen=True)
class ProducerTruth:
    offered: int        # events offered past the shutdown gate (every attempt)
    landed: int         # events that reached a ring
    refused: int        # events refused (drop_newest, fail_producer, block timeout)
    turned_away: int    # events turned away at the gate (shutting down), not counted
    stranded: int       # events of a push that shutdown abandoned
    late: int           # open loop: events sent more than late_after behind schedule
    unsent: int         # events a step's schedule or count wanted and that were never sent
    calls: int
    retries: int
    next_seq: int
    offered_sum: int = 0     # checksums (payload.mix), ints in [0, 2**64)
    refused_sum: int = 0
    stranded_sum: int = 0

    def to_dict(self) -> dict:
        """For the run record (evidence.py): every field, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    as_dict = to_dict

    @classmethod
    def from_dict(cls, d: dict) -> ProducerTruth:
        """Strict: every field present, no other key (ValueError naming them)."""
        return cls(**field_values(cls, d, "producer tallies"))


class LoadGenerator:
    def __init__(self, spec: LoadSpec, shards: int, produce, producer_stalling):
        self.spec = spec
        self.shards = shards
        self._produce = produce
        self.producer_stalling = producer_stalling
        self.params = []
        self.pstate = []
        self.by_shard = []       # per producer: events landed per shard (flush evidence)
        self.events = []
        for p in range(spec.producers):
            prm = np.zeros(K.P_LEN, np.int64)
            prm[K.P_OPEN_LOOP] = 1 if spec.rate_per_producer else 0
            prm[K.P_BATCH] = spec.batch
            prm[K.P_KEYS] = K.KEY_KINDS[spec.keys]
            prm[K.P_HOT_SHARD] = spec.hot_shard
            prm[K.P_HOT_PPM] = int(round(spec.hot_share * 1_000_000))
            prm[K.P_RETRY_FAILED] = 1 if spec.retry_failed else 0
            prm[K.P_LATE_AFTER_NS] = spec.late_after_ns
            prm[K.P_SHARDS] = shards
            prm[K.P_PRODUCER] = p
            prm[K.P_KEY_SALT] = (spec.seed * 0x9E3779B1 + p * 0x85EBCA77) & 0x7FFFFFFFFFFFFFFF
            if spec.rate_per_producer:
                prm[K.P_INTERVAL_PS] = max(1, int(round(1e12 / spec.rate_per_producer)))
            self.params.append(prm)
            ps = aligned_zeros(max(K.S_LEN, 16))
            ps[K.S_RNG] = (spec.seed * 1_000_003 + p * 7919 + 1)
            self.pstate.append(ps[:K.S_LEN])
            counts_and_last = aligned_zeros(2 * shards)
            counts_and_last[shards:] = -1
            self.by_shard.append(counts_and_last)
            n = spec.batch
            # shards, values, intended times, landed mask: one ingest call's events
            self.events.append(tuple(np.zeros(n, np.int64) for _ in range(4)))
        ranks = np.arange(1, shards + 1, dtype=np.float64)
        weights = ranks ** -spec.zipf_exponent
        self.zipf_cdf = np.cumsum(weights) / weights.sum()
        self._offered_sums = [RangeChecksum() for _ in range(spec.producers)]
        self.stop_flag = np.zeros(16, np.int64)
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self.cpu_ns = [0] * spec.producers     # each producer's thread CPU time (threadcpu.py)
        self.thread_setup = None               # called in each producer thread first (pinning)

    # ------------------------------------------------------------------ running
    def start(self, duration_ns: int | None = None, events: int | None = None) -> None:
        """Start every producer thread; they stop at the deadline, after their
        share of ``events``, or at ``stop()``."""
        if self._threads:
            self.stop()     # a producer left stalled by a fault: wait for it first
        now = time.monotonic_ns()
        self.stop_flag[K.STOP_FLAG] = 0
        for p in range(self.spec.producers):
            prm = self.params[p]
            prm[K.P_T0_NS] = now
            prm[K.P_DEADLINE_NS] = now + duration_ns if duration_ns else 0
            if events is not None:
                share = events // self.spec.producers + (1 if p < events % self.spec.producers else 0)
                prm[K.P_MAX_EVENTS] = share
            else:
                prm[K.P_MAX_EVENTS] = -1
            t = threading.Thread(target=self._run, args=(p,), name=f"busbench-producer-{p}",
                                 daemon=True)
            t.producer = p
            self._threads.append(t)
        for t in self._threads:
            t.start()

    def _run(self, p):
        started = time.thread_time_ns()
        try:
            if self.thread_setup is not None:
                self.thread_setup(p)
            self._produce(p, self.params[p], self.pstate[p], self.by_shard[p], self.zipf_cdf,
                          self.stop_flag, self.events[p])
            # The step's end for this producer: what its schedule or count wanted
            # sent and it never sent (counted here, once, whatever the target's loop).
            self.pstate[p][K.S_UNSENT] += K.unsent(self.params[p], self.pstate[p],
                                                    time.monotonic_ns())
        except BaseException as exc:
            self._errors.append(exc)
        finally:
            self.cpu_ns[p] += time.thread_time_ns() - started

    def threads(self) -> list:
        """The producer threads started and not yet joined."""
        return list(self._threads)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def only_stalled_left(self) -> bool:
        """Every producer still running is stalled mid-push by a fault."""
        return all(self.producer_stalling(t.producer)
                   for t in self._threads if t.is_alive())

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the producers to finish by themselves; True when they have.
        Joins in short slices so Ctrl-C reaches the main thread promptly."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            while t.is_alive():
                if end is not None and time.monotonic() >= end:
                    return False
                t.join(0.05)
        self._reap()
        return True

    def stop(self, wait_for_stalled: bool = True, timeout_s: float | None = None) -> bool:
        """Raise the stop flag and join the producer threads; True when none is left.

        With ``wait_for_stalled=False`` a producer stalled mid-push by a fault is
        left in flight (that is the point of the fault: shutdown must meet it);
        a later ``stop()`` joins it once its stall ends. ``timeout_s`` bounds
        the whole wait (the watchdog's teardown).
        """
        self.stop_flag[K.STOP_FLAG] = 1
        end = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            while t.is_alive():
                if not wait_for_stalled and self.producer_stalling(t.producer):
                    break
                if end is not None and time.monotonic() >= end:
                    return False
                t.join(0.02)
        self._reap()
        return not self._threads

    def _reap(self):
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._errors:
            err = self._errors[0]
            self._errors = []
            raise RuntimeError(f"a producer failed: {err!r}") from err

    # ------------------------------------------------------------------ truth
    def truth(self, p: int) -> ProducerTruth:
        s = self.pstate[p]
        return ProducerTruth(offered=int(s[K.S_OFFERED]), landed=int(s[K.S_LANDED]),
                             refused=int(s[K.S_REFUSED]), turned_away=int(s[K.S_TURNED_AWAY]),
                             stranded=int(s[K.S_STRANDED]), late=int(s[K.S_LATE]),
                             unsent=int(s[K.S_UNSENT]),
                             calls=int(s[K.S_CALLS]), retries=int(s[K.S_RETRIES]),
                             next_seq=int(s[K.S_NEXT_SEQ]),
                             # the sum over [0, next_seq) plus the producer's adjustments
                             # (turned away, offered again): see kernels.next_call
                             offered_sum=(self._offered_sums[p].upto(int(s[K.S_NEXT_SEQ]))
                                          + as_checksum(s[K.S_OFFERED_SUM])) % MOD,
                             refused_sum=as_checksum(s[K.S_REFUSED_SUM]),
                             stranded_sum=as_checksum(s[K.S_STRANDED_SUM]))

    def truths(self) -> list[ProducerTruth]:
        return [self.truth(p) for p in range(self.spec.producers)]

    def landed_by_shard(self) -> tuple[list, list]:
        """Per producer, events landed per shard so far and the last seq landed
        on each (-1: none): producer-side tallies, updated after each ingest
        call returns, so a call in progress is not in them."""
        snap = [b.copy() for b in self.by_shard]
        return ([s[:self.shards].tolist() for s in snap], [s[self.shards:].tolist() for s in snap])
