"""Shared fixtures for tests that drive the reference bus with real producer threads.

* ``warm_bus_kernels`` (session): the first call of each jitted kernel compiles
  it, or loads it from Numba's disk cache; either can take seconds, during which
  a producer started with a deadline would find it already passed.
* ``bus_rig`` (uses the warm-up): builds buses and load generators and, whatever
  the test does, stops every thread it started (stalls released, producers
  joined, buses shut down).
* ``contract_violations``: the invariants of BUS.md, checked against a bus and
  its producers' own ground truth; an empty list when every one holds.

Helpers are reached through these fixtures, so test modules never import conftest.
"""
from __future__ import annotations

import time

import pytest

from busbench.bus.config import BusConfig
from busbench.bus.core import ReferenceBus
from busbench.load.generator import LoadGenerator, LoadSpec

# The verify adapter's per-producer bitmap, in events. Closed-loop producers
# offer up to ~40 M events/s each here; 2**27 covers seconds of that, where the
# default (2**30) would make every ground_truth() read 128 MB per producer.
VERIFY_EVENTS_PER_PRODUCER = 1 << 27


def bus_config(**overrides) -> BusConfig:
    """A BusConfig for tests: the defaults, with a test-sized verify bitmap."""
    overrides.setdefault("verify_events_per_producer", VERIFY_EVENTS_PER_PRODUCER)
    return BusConfig(**overrides)


def wait_for(condition, timeout_s: float, poll_s: float = 0.002) -> bool:
    """Poll ``condition()`` until it is true or ``timeout_s`` passes; its last value."""
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= end:
            return bool(condition())
        time.sleep(poll_s)
    return True


@pytest.fixture(scope="session")
def warm_bus_kernels():
    """Compile (or load from cache) every kernel the bus and the load generator
    call from Python: workers, producers, plain ingest, flush and a lossy shutdown."""
    bus = ReferenceBus(bus_config(shards=2, capacity=64, adapter="verify", latency=True,
                                  producers=2, verify_events_per_producer=1 << 16)).start()
    try:
        gen = LoadGenerator(bus, LoadSpec(producers=2, batch=16))
        gen.start(events=1000)
        gen.wait(timeout_s=120.0)
        gen.stop()
        bus.ingest([ReferenceBus.event(0, 1 << 14)], [0])
        bus.flush(timeout_s=60.0)
        bus.ground_truth()
        bus.latency_histograms()
        # A producer stalled mid-push past a zero grace: the abandon path's atomics.
        gen = LoadGenerator(bus, LoadSpec(producers=1, batch=16))
        bus.arm_producer_stall(0, after_ns=1, for_ns=5_000_000_000)
        gen.start(events=1000)
        wait_for(lambda: bus.producer_stalling(0), timeout_s=60.0)
        bus.shutdown(grace_s=0.0)
        bus.release_stalls()
        gen.stop()
    finally:
        bus.release_stalls()
        bus.close(grace_s=0.0)


class BusRig:
    """Buses and generators made for one test; ``teardown`` stops all of them."""

    def __init__(self):
        self.buses: list[ReferenceBus] = []
        self.generators: list[LoadGenerator] = []

    def bus(self, start: bool = True, **config) -> ReferenceBus:
        """A bus built from ``bus_config(**config)``, started unless ``start=False``."""
        bus = ReferenceBus(bus_config(**config))
        self.buses.append(bus)
        return bus.start() if start else bus

    def load(self, bus: ReferenceBus, **spec) -> LoadGenerator:
        """A load generator on ``bus`` (not started)."""
        gen = LoadGenerator(bus, LoadSpec(**spec))
        self.generators.append(gen)
        return gen

    def run_load(self, bus: ReferenceBus, duration_s: float, **spec) -> LoadGenerator:
        """Run a load on ``bus`` for ``duration_s``; returns the generator, stopped."""
        gen = self.load(bus, **spec)
        gen.start(duration_ns=int(duration_s * 1e9))
        try:
            gen.wait(timeout_s=duration_s + 10.0)
        finally:
            gen.stop()
        return gen

    wait_for = staticmethod(wait_for)

    def teardown(self):
        # Stalls first: a stalled producer or a frozen worker would block the joins.
        for bus in self.buses:
            bus.release_stalls()
        errors = []
        for gen in self.generators:
            try:
                gen.stop()
            except Exception as exc:   # a producer failed: report it after cleaning up
                errors.append(exc)
        for bus in self.buses:
            try:
                bus.close(grace_s=0.0)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def bus_rig(warm_bus_kernels):
    rig = BusRig()
    try:
        yield rig
    finally:
        rig.teardown()


def check_contract(bus: ReferenceBus, truths=(), *, flush=None, report=None,
                   quiescent: bool = True) -> list[str]:
    """Every promise of BUS.md the bus's state breaks, one readable line each.

    ``truths``: the producers' own ground truth (``LoadGenerator.truths()``), when
    every event came from that generator. ``quiescent``: no ingest is running,
    so the counters must conserve. ``flush``/``report``: a FlushResult and a
    ShutdownReport to hold to their promises too.
    """
    out = []
    s = bus.stats()
    gt = bus.ground_truth()
    if quiescent and s.events_dispatched + s.events_dropped != s.events_ingested:
        out.append(f"conservation: dispatched {s.events_dispatched} + dropped "
                   f"{s.events_dropped} != ingested {s.events_ingested}")
    if flush is not None and flush.reached and not flush.barrier_held:
        lagging = [b for b in flush.shards if not b.reached]
        out.append(f"flush barrier: flush reported reached, but {len(lagging)} shard(s) had not "
                   f"passed their target: {lagging}")
    if gt.verify:
        if gt.duplicates:
            out.append(f"ground truth: {gt.duplicates} duplicate(s) received")
        if gt.order_violations:
            out.append(f"ground truth: {gt.order_violations} per-shard order violation(s)")
        if gt.received_and_dropped:
            out.append(f"ground truth: {gt.received_and_dropped} event(s) received and reported dropped")
        if gt.beyond_bitmap:
            out.append(f"test setup: {gt.beyond_bitmap} event(s) beyond the verify bitmap")
        if int(gt.received.sum()) != s.events_dispatched:
            out.append(f"ground truth: events_dispatched {s.events_dispatched} != "
                       f"events the adapter received {int(gt.received.sum())}")
    if truths:
        offered = sum(t.offered for t in truths)
        if s.events_ingested != offered:
            out.append(f"ground truth: events_ingested {s.events_ingested} != offered {offered}")
        for p, t in enumerate(truths):
            if t.stranded != int(gt.stranded[p]):
                out.append(f"ground truth: producer {p} saw {t.stranded} stranded, "
                           f"the bus counted {int(gt.stranded[p])}")
            if gt.verify and quiescent:
                accounted = (int(gt.received[p]) + t.refused + int(gt.evicted[p])
                             + int(gt.rejected[p]) + t.stranded)
                if t.offered != accounted:
                    out.append(f"ground truth: producer {p} offered {t.offered} != received "
                               f"{int(gt.received[p])} + refused {t.refused} + evicted "
                               f"{int(gt.evicted[p])} + rejected {int(gt.rejected[p])} + "
                               f"stranded {t.stranded}")
        if quiescent:
            lost = (sum(t.refused + t.stranded for t in truths) + int(gt.evicted.sum())
                    + int(gt.rejected.sum()))
            if s.events_dropped != lost:
                out.append(f"ground truth: events_dropped {s.events_dropped} != refused + stranded "
                           f"+ evicted + rejected {lost}")
    if report is not None:
        if report.flag_set != report.lossy or s.shutdown_was_lossy != report.lossy:
            out.append(f"lossy shutdown: report.lossy {report.lossy}, report.flag_set "
                       f"{report.flag_set}, stats.shutdown_was_lossy {s.shutdown_was_lossy}")
        if report.stranded_events != int(gt.stranded.sum()):
            out.append(f"lossy shutdown: report says {report.stranded_events} stranded, "
                       f"per producer {gt.stranded.tolist()}")
        if report.residue:
            out.append(f"final drain: {report.residue} event(s) left in the rings")
    return out


@pytest.fixture
def contract_violations():
    """``check_contract`` as a fixture."""
    return check_contract
