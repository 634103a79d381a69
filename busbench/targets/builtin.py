"""The builtin target: busbench's reference bus (bus/) behind the Target interface.

Everything specific to the reference bus lives here or in ``bus/``: the
translation of the scenario's ``bus:`` section into a ``BusConfig`` (explicit
per adapter kind: a renamed schema field fails here, loudly, instead of
silently becoming a default), the kernels' warm-up, the producer entry, the
faults, and the readers of its evidence.
"""
from __future__ import annotations

import numpy as np

from ..common import names as N
from ..bus.config import BusConfig
from ..bus.core import ReferenceBus, warm_python_side
from ..bus.layout import CounterLayout
from ..load import kernels as K
from ..load import ring
from . import coldstart
from .base import (
    Capabilities,
    Delivery,
    FlushClaim,
    ShutdownClaim,
    Target,
    TargetConfigError,
)

#: verify bitmaps, when asked for: capped at 1 GiB each in all, whatever the
#: number of producers (calloc'd: untouched pages cost nothing)
BITMAP_BYTES = 1 << 30


def adapter_settings(adapter) -> dict:
    """BusConfig fields for the scenario's adapter, one explicit case per kind."""
    kind = adapter.tag
    if kind == "noop":
        return {"adapter": "noop"}
    if kind == "verify":
        return {"adapter": "verify", "verify_bitmaps": adapter.bitmaps}
    if kind == "slow":
        return {"adapter": "slow", "slow_per_batch_ns": adapter.per_batch,
                "slow_per_event_ns": adapter.per_event}
    if kind == "flaky":
        return {"adapter": "flaky", "flaky_failure_rate": adapter.failure_rate,
                "flaky_retries": adapter.retries, "flaky_backoff_ns": adapter.backoff}
    if kind == "stall":
        return {"adapter": "stall", "stall_at_ns": adapter.at, "stall_for_ns": adapter.duration}
    raise TargetConfigError("bus.adapter.kind", f"the builtin target has no adapter {kind!r}")


def bus_config(scenario) -> BusConfig:
    b, load = scenario.bus, scenario.load
    counters = b.counters
    layout = (CounterLayout.parse(counters.stride) if counters.layout == "stride"
              else CounterLayout.parse(counters.layout))
    return BusConfig(
        shards=b.shards, capacity=b.capacity, backpressure=b.backpressure,
        block_timeout_ns=b.block_timeout, max_events=b.batch.max_events,
        max_delay_ns=b.batch.max_delay, workers=b.workers, counters=layout,
        mutations=tuple(b.mutations), latency=b.latency, intended_times=load.is_open_loop,
        producers=load.producers, seed=scenario.seed,
        verify_events_per_producer=min(1 << 30, (BITMAP_BYTES * 8) // load.producers),
        **adapter_settings(b.adapter))


def _tiny_target() -> BuiltinTarget:
    return BuiltinTarget(BusConfig(shards=2, capacity=64, producers=1, adapter="verify"))


def _generator(target):
    from ..load.generator import LoadGenerator, LoadSpec
    return LoadGenerator(LoadSpec(producers=1, batch=8), target.shards, target.produce,
                         target.producer_stalling)


def warm_worker_side() -> None:
    """Compile ``worker_loop`` and what it calls, and the flush and shutdown
    helpers: a bus with a worker and no producer, flushed and shut down."""
    target = _tiny_target()
    target.start()
    try:
        target.flush(5.0)
    finally:
        target.close()


def warm_everything() -> None:
    """Run every kernel once: a bus with a worker, a producer, a flush and a
    shutdown, and the witness's tallies read (what the runner needs before its
    clock starts)."""
    target = _tiny_target()
    target.start()
    gen = _generator(target)
    try:
        gen.start(events=256)
        gen.wait()
        target.flush(5.0)
        target.delivery()
    finally:
        gen.stop()
        target.close()


def _bus_type():
    from numba import typeof
    return typeof(_tiny_target().bus.state)


def precompile_worker_loop() -> None:
    """``bus.kernels.worker_loop`` by the signature ``ReferenceBus`` starts it with
    (without starting a bus: ``warm_everything`` runs it once afterwards)."""
    from numba import types
    from ..bus import kernels
    i = types.int64
    kernels.worker_loop.compile((_bus_type(), i, i, types.Array(types.int64, 1, "C")))


def precompile_dispatch() -> None:
    """The worker side's bulk (``bus.kernels.dispatch``) by the signature
    ``worker_loop`` calls it with."""
    from numba import types
    from ..bus import kernels
    i = types.int64
    kernels.dispatch.compile((_bus_type(), i, i, i))


#: On a cold cache one helper process (coldstart.py) compiles the worker side's bulk, then
#: the load loop, while this process compiles the ring step, then ``worker_loop`` around
#: the helper's bulk (loaded from the cache once the helper said it is there). Measured
#: alone on 2 cores: the ring step 4.3 s (ingest_batch 3.4), the loop 3.2 s, dispatch
#: 1.9 s, worker_loop around it 1.0 s: both processes end after ~5.4 s (5.7 s in all); the
#: helper then compiles what a run calls from Python after its load (0.3 s).
def warm_run_side() -> None:
    """What a run of the reference bus calls from Python around its load."""
    K.warm_run_side()
    warm_python_side()


HELPERS = ((("dispatch", precompile_dispatch), ("loop", K.warm_produce),
            ("run side", warm_run_side)),)


def _here(wait) -> None:
    ring.STEP.compile()
    wait("dispatch")
    precompile_worker_loop()


def compile_kernels(announce=None, helper: bool | None = None) -> coldstart.ColdStart:
    """``coldstart.compile_kernels`` for the reference bus and its load loop (see
    HELPERS)."""
    from ..bus import kernels
    return coldstart.compile_kernels(announce, helper, key="builtin", here=_here,
                                     helpers=HELPERS, everything=warm_everything,
                                     probe=kernels.ingest_batch)


def warm_up(say=None) -> float:
    """Compile (or load from the on-disk cache) every kernel once per process,
    so no run's measured time is spent compiling (busbench/targets/coldstart.py: on a
    cold cache a forked helper process shares the work, see HELPERS). ``say`` gets
    "compiling Numba kernels (first run only, cached afterwards)…" as soon as
    a compile starts and the seconds it took at the end; nothing on a warm
    cache. Returns seconds spent."""
    return compile_kernels(announce=say).seconds


class BuiltinTarget(Target):
    name = "builtin"

    def __init__(self, config: BusConfig, bus: ReferenceBus | None = None):
        self.config = config
        self.bus = bus if bus is not None else ReferenceBus(config)
        self.shards = config.shards
        self.capacity = config.capacity
        self.layout = config.counters.label
        self._adapter_stall_armed = False
        # per producer: the kernel's scratch (grouping by shard)
        self._scratch = [(np.zeros(0, np.int64), np.zeros(config.shards + 1, np.int64))
                         for _ in range(config.producers)]
        # the one producer kernel's arguments for a foreign bus, unused by the ring push
        self._no_xstate = K.empty_xstate()
        self._no_gate = np.zeros(0, np.int64)
        verify = config.adapter == "verify"
        self.capabilities = Capabilities(
            counters=frozenset(N.ALL_COUNTERS), witness="verify adapter" if verify else None,
            drops_attributed=True, lossy_flag=True, shutdown_report=True, positions=True,
            shard_fill=True, latency=config.latency,
            faults=frozenset({"stall_producer", "stall_adapter"}),
            witness_hint="" if verify else "bus.adapter.kind: verify")

    @classmethod
    def from_scenario(cls, scenario) -> BuiltinTarget:
        return cls(bus_config(scenario))

    @classmethod
    def around(cls, bus: ReferenceBus) -> BuiltinTarget:
        """The target interface over a bus built elsewhere (tests, benchmarks)."""
        return cls(bus.config, bus)

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, say=lambda msg: None) -> None:
        warm_up(say)

    def start(self) -> None:
        self.bus.start()

    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        shards_buf, values, t_int, landed = events
        order, shard_counts = self._scratch[p]
        if order.shape[0] < values.shape[0]:
            order = np.zeros(values.shape[0], np.int64)
            self._scratch[p] = (order, shard_counts)
        frame, bus = ring.new_frame(self.bus.state, p, order, shard_counts)
        K.produce(params, pstate, self._no_xstate, by_shard, zipf_cdf, stop, shards_buf, values,
                  t_int, landed, frame, self._no_gate)
        del bus             # what ``frame`` points at, kept alive until the run ended

    def producer_stalling(self, p: int) -> bool:
        return self.bus.producer_stalling(p)

    def flush(self, timeout_s: float) -> FlushClaim:
        return self.flush_claim(self.bus.flush(timeout_s))

    @staticmethod
    def flush_claim(r) -> FlushClaim:
        """The reference bus's FlushResult as a claim, its positions as a second opinion."""
        positions = {"method": r.method, "in_flight_at_call": r.in_flight_at_call,
                     "reached": r.barrier_held,
                     "shards": [{"shard": s.shard, "target": s.target, "head": s.head,
                                 "batch_start": s.batch_start, "settled": s.settled,
                                 "reached": s.reached, "unsettled": s.unsettled}
                                for s in r.shards]}
        return FlushClaim(reached=r.reached, timed_out=r.timed_out, waited_s=r.waited_s,
                          positions=positions)

    def shutdown(self, grace_s: float) -> ShutdownClaim:
        return self._claim(self.bus.shutdown(grace_s))

    def _claim(self, report) -> ShutdownClaim:
        stranded = tuple(int(x) for x in self.bus.ground_truth_stranded())
        return ShutdownClaim(lossy=report.lossy, stranded_by_producer=stranded,
                             abandoned_producers=tuple(report.abandoned_producers),
                             duration_s=report.duration_s, grace_s=report.grace_s,
                             residue=report.residue)

    @property
    def shut_down(self) -> bool:
        return self.bus.shut_down

    def shutdown_claim(self) -> ShutdownClaim | None:
        report = self.bus.shutdown_report
        return None if report is None else self._claim(report)

    def close(self) -> None:
        self.bus.close(0.0)

    def threads(self) -> list:
        return list(self.bus._workers)

    # ------------------------------------------------------------------ reading
    def counters(self) -> dict:
        return self.bus.stats().as_dict()

    def worker_threads(self) -> list:
        return list(self.bus._workers)

    def shard_fill(self) -> list:
        return self.bus.shard_fill()

    def latency_histograms(self):
        return self.bus.latency_histograms()

    def drops_by_shard(self):
        evicted, rejected = self.bus.drops_by_shard()
        return evicted.tolist(), rejected.tolist()

    def delivery(self, next_seq=None) -> Delivery | None:
        if self.config.adapter != "verify":
            return None
        gt = self.bus.ground_truth(next_seq)
        return Delivery(
            witness="verify adapter", received_by_shard=gt.received_by_shard.tolist(),
            last_seq_by_shard=gt.last_seq_by_shard.tolist(), received_sum=gt.received_sum,
            order_violations=gt.order_violations,
            evicted_by_shard=gt.evicted_by_shard.tolist(),
            rejected_by_shard=gt.rejected_by_shard.tolist(),
            evicted_sum=gt.evicted_sum, rejected_sum=gt.rejected_sum,
            duplicates=gt.duplicates, received_and_dropped=gt.received_and_dropped,
            beyond_bitmap=gt.beyond_bitmap)

    # ------------------------------------------------------------------ faults
    def before_load(self) -> None:
        """The `stall` adapter freezes from `at` after the first run step starts."""
        c = self.config
        if c.stall_at_ns is not None and not self._adapter_stall_armed:
            self.bus.schedule_adapter_stall(c.stall_at_ns, c.stall_for_ns)
            self._adapter_stall_armed = True

    def arm_fault(self, fault) -> dict:
        kind = fault.tag
        if kind == "stall_producer":
            self.bus.arm_producer_stall(fault.producer, fault.after, fault.duration)
            return {"fault": kind, "producer": fault.producer, "after_s": fault.after / 1e9,
                    "for_s": fault.duration / 1e9}
        if kind == "stall_adapter":
            self.bus.schedule_adapter_stall(fault.after, fault.duration)
            return {"fault": kind, "after_s": fault.after / 1e9, "for_s": fault.duration / 1e9}
        return super().arm_fault(fault)

    def release_faults(self) -> None:
        self.bus.release_stalls()
