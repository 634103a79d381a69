"""Shared fixtures for tests that drive the reference bus with real producer threads.

* ``warm_bus_kernels`` (session): the first call of each jitted kernel compiles
  it, or loads it from Numba's disk cache; either can take seconds, during which
  a producer started with a deadline would find it already passed.
* ``bus_rig`` (uses the warm-up): builds buses and load generators and, whatever
  the test does, stops every thread it started (stalls released, producers
  joined, buses shut down).
* ``contract_violations``: the invariants of BUS.md, judged by the product's own
  checker (busbench/verdicts/checks.py) from a bus, its producers' own ground truth and
  the flush evidence ``bus_rig.flush`` records; an empty list when every one holds.

Helpers are reached through these fixtures, so test modules never import conftest.
"""
from __future__ import annotations

import time

import pytest

from busbench.verdicts import checks as C
from busbench.common import names as N
from busbench.bus.config import BusConfig
from busbench.bus.core import ReferenceBus
from busbench.evidence.collector import flush_record
from busbench.evidence.types import ShutdownEvidence
from busbench.load.generator import LoadGenerator, LoadSpec
from busbench.scenario.schema import CheckSpec
from busbench.targets.builtin import BuiltinTarget

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


def generator(bus: ReferenceBus, spec: LoadSpec) -> LoadGenerator:
    """A load generator on ``bus``, through the builtin target's producer entry."""
    target = BuiltinTarget.around(bus)
    return LoadGenerator(spec, bus.config.shards, target.produce, target.producer_stalling)


class SeenFlush:
    """A FlushResult (attributes delegated) with the evidence recorded around it."""

    def __init__(self, result, record):
        self.result, self.record = result, record

    def __getattr__(self, name):
        return getattr(self.result, name)


class _NoProducers:
    def landed_by_shard(self):
        return [], []


def flush_with_evidence(bus: ReferenceBus, gen=None, timeout_s: float = 10.0) -> SeenFlush:
    """``bus.flush(timeout_s)`` between the evidence snapshots the product takes."""
    target = BuiltinTarget.around(bus)
    seen = {}

    def call():
        seen["result"] = bus.flush(timeout_s)
        return BuiltinTarget.flush_claim(seen["result"])
    record = flush_record(0, target, gen if gen is not None else _NoProducers(), timeout_s,
                          False, call)
    return SeenFlush(seen["result"], record)


@pytest.fixture(scope="session")
def warm_bus_kernels():
    """Compile (or load from cache) every kernel the bus and the load generator
    call from Python: workers, producers, plain ingest, flush and a lossy shutdown."""
    bus = ReferenceBus(bus_config(shards=2, capacity=64, adapter="verify", latency=True,
                                  producers=2, verify_events_per_producer=1 << 16)).start()
    try:
        gen = generator(bus, LoadSpec(producers=2, batch=16))
        gen.start(events=1000)
        gen.wait(timeout_s=120.0)
        gen.stop()
        bus.ingest([ReferenceBus.event(0, 1 << 14)], [0])
        bus.flush(timeout_s=60.0)
        bus.ground_truth()
        bus.latency_histograms()
        # A producer stalled mid-push past a zero grace: the abandon path's atomics.
        gen = generator(bus, LoadSpec(producers=1, batch=16))
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
        gen = generator(bus, LoadSpec(**spec))
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
    flush = staticmethod(flush_with_evidence)

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


_SPECS = {kind: CheckSpec(kind=kind) for kind in
          (N.CONSERVATION, N.GROUND_TRUTH, N.FLUSH_BARRIER, N.LOSSY_SHUTDOWN)}


def check_contract(bus: ReferenceBus, truths=(), *, flush=None, report=None,
                   quiescent: bool = True) -> list[str]:
    """Every promise of BUS.md the bus's state breaks, one line each, as the
    product's checker (busbench/verdicts/checks.py) judges it: "<check>: <evidence>".

    ``truths``: the producers' own ground truth (``LoadGenerator.truths()``), when
    every event came from that generator (ground truth and the lossy flag are
    judged only then). ``quiescent``: no ingest is running. ``flush``: a flush
    seen through ``bus_rig.flush`` (its evidence recorded around the call);
    ``report``: the ShutdownReport, when shut down.
    """
    target = BuiltinTarget.around(bus)
    delivery = target.delivery()
    claim = target.shutdown_claim() if report is not None else None
    ev = C.Evidence(counters=target.counters(), producers=list(truths),
                    delivery=None if delivery is None else delivery.to_dict(),
                    flushes=[flush.record] if flush is not None else [],
                    shutdown=None if claim is None else ShutdownEvidence.from_claim(claim),
                    metrics={},
                    quiescent=quiescent, capabilities=target.capabilities.to_dict(),
                    backpressure=bus.config.backpressure)
    kinds = [N.CONSERVATION]
    if flush is not None:
        kinds.append(N.FLUSH_BARRIER)
    if truths:
        kinds.append(N.GROUND_TRUTH)
        if report is not None:
            kinds.append(N.LOSSY_SHUTDOWN)
    out = []
    for kind in kinds:
        v = C.evaluate(_SPECS[kind], ev)
        if v.outcome == C.FAILED:
            out.append(f"{N.CHECK_DISPLAY[kind]}: {v.evidence}")
    if report is not None and report.residue:          # also judged by ground_truth
        out.append(f"final drain: {report.residue} event(s) left in the rings")
    return out


@pytest.fixture
def contract_violations():
    """``check_contract`` as a fixture."""
    return check_contract
