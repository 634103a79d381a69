"""A scripted fake target, for runner and check tests: a foreign bus that lies.

Plain Python (a lock and a queue per shard), slow and exact. It accepts every
event, delivers on ``flush()`` and ``shutdown()`` to its own witness, and can be
told to lie in the ways a foreign bus might (``Lies``): claim a flush reached
while keeping the events, set its lossy flag without cause or hide a real loss,
bend a counter, lose an event silently, report a delivered event as evicted
too. It may also export fewer counters or no witness at all, so checks must
say "not observable" instead of passing. Tests show each lie is caught.

The producer loop is busbench's own (``load.pyloop``),
so producer-side tallies are exactly as on a real target.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..common import names as N
from ..load import kernels as K
from ..load import pyloop
from ..native.payload import SEQ_BITS, SEQ_MASK, checksum
from .base import Capabilities, Delivery, FlushClaim, ShutdownClaim, Target


@dataclass(frozen=True)
class Lies:
    flush_claims_reached: bool = False      # flush says reached, delivers nothing
    lossy_flag: bool | None = None          # shutdown_was_lossy reported as this, whatever happened
    counter_offsets: dict = field(default_factory=dict)   # name -> added to what is reported
    lose_every: int = 0                     # every k-th delivered event vanishes (witness never sees it)
    evicted_and_delivered: int = 0          # this many delivered events also reported evicted
    strand_at_shutdown: int = 0             # shutdown strands (and counts) this many of producer 0's queued events
    hide_stranded: bool = False             # ... and reports 0 stranded per producer


class FakeTarget(Target):
    name = "fake"

    def __init__(self, shards=2, producers=2, capacity=1 << 20, lies: Lies = Lies(),
                 counters=N.ALL_COUNTERS, witness: bool = True):
        self.shards, self.capacity, self.producers = shards, capacity, producers
        self.lies = lies
        self._exported = frozenset(counters)
        self.capabilities = Capabilities(
            counters=self._exported, witness="fake witness" if witness else None,
            drops_attributed=witness, lossy_flag=N.SHUTDOWN_WAS_LOSSY in self._exported,
            shutdown_report=True, positions=False, shard_fill=True, latency=False)
        self._lock = threading.Lock()
        self._queues = [deque() for _ in range(shards)]
        self._c = dict.fromkeys(N.ALL_COUNTERS, 0)
        self._received = [[0] * producers for _ in range(shards)]
        self._recv_seqs = [[] for _ in range(producers)]
        self._last = [[-1] * producers for _ in range(shards)]
        self._evicted = [[0] * producers for _ in range(shards)]
        self._evicted_seqs = [[] for _ in range(producers)]
        self._order = 0
        self._delivered = 0
        self._closed = False
        self._claim = None
        self._stranded = [0] * producers
        self._xstate = [K.empty_xstate() for _ in range(producers)]

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, say=lambda msg: None) -> None:
        # the loop's jitted pieces, compiled (or loaded from the cache) before any step is
        # timed: compiled lazily in a producer thread, they took a 300 ms step's whole
        # schedule, and an open-loop step sent nothing
        pyloop.warm_up()

    def start(self) -> None:
        pass

    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        def step(values, t_int, m, landed):
            status = self._ingest(events[0], values, m, landed)
            return status, 0 if status == N.INGEST_CLOSED else m, 0, 1

        pyloop.run(step, params, pstate, self._xstate[p], by_shard, zipf_cdf, stop, events,
                   between_calls=lambda: time.sleep(0))

    def _ingest(self, shards_buf, values, m, landed) -> int:
        with self._lock:
            if self._closed:
                return N.INGEST_CLOSED
            for i in range(m):
                self._queues[int(shards_buf[i])].append(int(values[i]))
                landed[i] = 1
            self._c[N.EVENTS_INGESTED] += m
            return N.INGEST_OK

    def producer_stalling(self, p: int) -> bool:
        return False

    def _deliver_all(self) -> None:
        for s, q in enumerate(self._queues):
            while q:
                value = q.popleft()
                p, seq = value >> SEQ_BITS, value & SEQ_MASK
                self._delivered += 1
                self._c[N.EVENTS_DISPATCHED] += 1
                self._c[N.BATCHES_DISPATCHED] += 1
                if self.lies.lose_every and self._delivered % self.lies.lose_every == 0:
                    continue                     # counted dispatched, never reaches the witness
                if seq <= self._last[s][p]:
                    self._order += 1
                self._last[s][p] = seq
                self._received[s][p] += 1
                self._recv_seqs[p].append(seq)
                if self._delivered <= self.lies.evicted_and_delivered:
                    self._evicted[s][p] += 1     # reported evicted as well: a double report
                    self._evicted_seqs[p].append(seq)
                    self._c[N.EVENTS_DROPPED] += 1

    def flush(self, timeout_s: float) -> FlushClaim:
        t0 = time.monotonic()
        with self._lock:
            if not self.lies.flush_claims_reached:
                self._deliver_all()
        return FlushClaim(reached=True, timed_out=False, waited_s=time.monotonic() - t0)

    def shutdown(self, grace_s: float) -> ShutdownClaim:
        with self._lock:
            if self._claim is not None:
                return self._claim
            t0 = time.monotonic()
            self._closed = True
            stranded = 0
            q = self._queues[0]
            keep = deque()
            while q:
                value = q.popleft()
                if value >> SEQ_BITS == 0 and stranded < self.lies.strand_at_shutdown:
                    stranded += 1                # taken out of the ring and counted dropped
                    self._c[N.EVENTS_DROPPED] += 1
                else:
                    keep.append(value)
            self._queues[0] = keep
            self._deliver_all()
            lossy = stranded > 0
            if self.lies.lossy_flag is not None:
                lossy = self.lies.lossy_flag
            self._c[N.SHUTDOWN_WAS_LOSSY] = lossy
            self._stranded[0] = 0 if self.lies.hide_stranded else stranded
            self._claim = ShutdownClaim(lossy=lossy, stranded_by_producer=tuple(self._stranded),
                                        abandoned_producers=(0,) if lossy else (),
                                        duration_s=time.monotonic() - t0, grace_s=grace_s,
                                        residue=0)
            return self._claim

    @property
    def shut_down(self) -> bool:
        return self._claim is not None

    def shutdown_claim(self):
        return self._claim

    def close(self) -> None:
        self.shutdown(0.0)

    # ------------------------------------------------------------------ reading
    def counters(self) -> dict:
        with self._lock:
            out = {k: v + self.lies.counter_offsets.get(k, 0) for k, v in self._c.items()
                   if k in self._exported}
        if N.SHUTDOWN_WAS_LOSSY in out:
            out[N.SHUTDOWN_WAS_LOSSY] = bool(out[N.SHUTDOWN_WAS_LOSSY])
        return out

    def shard_fill(self) -> list:
        with self._lock:
            return [len(q) for q in self._queues]

    def drops_by_shard(self):
        if self.capabilities.witness is None:
            return None
        with self._lock:
            return [row[:] for row in self._evicted], [[0] * self.producers for _ in range(self.shards)]

    def delivery(self, next_seq=None) -> Delivery | None:
        if self.capabilities.witness is None:
            return None
        with self._lock:
            zeros = [[0] * self.producers for _ in range(self.shards)]
            return Delivery(
                witness="fake witness", received_by_shard=[r[:] for r in self._received],
                last_seq_by_shard=[r[:] for r in self._last],
                received_sum=[checksum(s) for s in self._recv_seqs],
                order_violations=self._order,
                evicted_by_shard=[r[:] for r in self._evicted], rejected_by_shard=zeros,
                evicted_sum=[checksum(s) for s in self._evicted_seqs],
                rejected_sum=[0] * self.producers)
