"""Where the EventBusStats counters live (BUS.md, "Counters"): padded, packed,
stride N and striped, checked on the addresses of a real bus's counter array,
and on what the kernels actually write there."""
import numpy as np
import pytest

from busbench.bus.config import BusConfig
from busbench.bus.core import ReferenceBus
from busbench.bus.layout import (COUNTER_NAMES, EVENTS_INGESTED, N_COUNTERS, CounterLayout)

PAIR = 128      # crossbeam's CachePadded on x86-64 / aarch64
LINE = 64


def _counters(layout, producers=2, workers=1):
    config = BusConfig(shards=workers, producers=producers, workers=workers,
                       counters=CounterLayout.parse(layout), adapter="noop",
                       verify_events_per_producer=1 << 16)
    return ReferenceBus(config).counters     # not started: no thread to stop


def _addresses(counters, writer=0):
    return [counters.address_of(c, writer) for c in range(N_COUNTERS)]


def test_padded_layout_puts_each_counter_alone_in_its_own_128_byte_block():
    counters = _counters("padded")
    addresses = _addresses(counters)
    assert [b - a for a, b in zip(addresses, addresses[1:])] == [PAIR] * (N_COUNTERS - 1)
    assert all(a % PAIR == 0 for a in addresses)
    assert len({a // PAIR for a in addresses}) == N_COUNTERS
    # Nothing else in the array shares a block with a counter.
    assert counters.words.nbytes % PAIR == 0


def test_packed_layout_puts_every_counter_in_one_64_byte_line_8_bytes_apart():
    counters = _counters("packed")
    addresses = _addresses(counters)
    assert [b - a for a, b in zip(addresses, addresses[1:])] == [8] * (N_COUNTERS - 1)
    assert addresses[-1] + 8 - addresses[0] <= LINE
    assert len({a // LINE for a in addresses}) == 1        # one cache line, as net-mesh had
    assert addresses[0] % PAIR == 0


@pytest.mark.parametrize("stride", [8, 64, 128, 256])
def test_stride_layout_puts_counters_stride_bytes_apart(stride):
    counters = _counters(stride)
    addresses = _addresses(counters)
    assert [b - a for a, b in zip(addresses, addresses[1:])] == [stride] * (N_COUNTERS - 1)
    assert all(a % min(stride, PAIR) == 0 for a in addresses)
    if stride >= LINE:
        assert len({a // LINE for a in addresses}) == N_COUNTERS


def test_stride_64_puts_counters_64_bytes_apart_each_on_its_own_line():
    counters = _counters(64)
    assert counters.layout.label == "stride 64"
    addresses = _addresses(counters)
    assert [b - a for a, b in zip(addresses, addresses[1:])] == [64] * (N_COUNTERS - 1)
    assert all(a % LINE == 0 for a in addresses)


def test_striped_layout_gives_each_writer_its_own_128_byte_slot_of_every_counter():
    counters = _counters("striped", producers=3, workers=2)
    writers = counters.writers
    assert writers >= 3 + 2          # producers, workers, the Python and the shutdown writers
    slots = [counters.address_of(c, w) for c in range(N_COUNTERS) for w in range(writers)]
    assert all(a % PAIR == 0 for a in slots)
    assert len({a // PAIR for a in slots}) == len(slots)       # no two slots share a block
    for c in range(N_COUNTERS):
        row = [counters.address_of(c, w) for w in range(writers)]
        assert [b - a for a, b in zip(row, row[1:])] == [PAIR] * (writers - 1)


@pytest.mark.parametrize("spec, name, stride", [
    ("padded", "padded", 128), ("packed", "packed", 8), ("striped", "striped", 128),
    (64, "stride", 64), ({"stride": 256}, "stride", 256)])
def test_layout_spec_is_parsed(spec, name, stride):
    layout = CounterLayout.parse(spec)
    assert (layout.name, layout.stride_bytes) == (name, stride)
    assert CounterLayout.parse(layout) is layout


@pytest.mark.parametrize("spec", ["wide", 12, 0, True, None, {"stride": "x"}])
def test_unknown_layout_spec_is_refused(spec):
    with pytest.raises(ValueError):
        CounterLayout.parse(spec)


LAYOUTS = ["padded", "packed", "striped", 64]


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_kernels_write_the_counters_where_the_layout_says(bus_rig, layout):
    """The layout is data the kernels obey, not just arithmetic in Python."""
    bus = bus_rig.bus(start=False, shards=2, capacity=64, backpressure="drop_newest",
                      adapter="noop", counters=CounterLayout.parse(layout))
    n = 100   # no worker yet: 64 fit in shard 0's ring, 36 are refused
    status, landed = bus.ingest([ReferenceBus.event(0, s) for s in range(n)], [0] * n)
    assert status == "dropped" and landed.sum() == 64
    bus.start()
    assert bus.flush(timeout_s=5.0).barrier_held
    counters = bus.counters
    base = counters.words.ctypes.data
    expected = {"events_ingested": n, "events_dropped": n - 64, "events_dispatched": 64}
    writer = bus.python_writer
    index = (counters.address_of(EVENTS_INGESTED, writer) - base) // 8
    assert counters.words[index] == n
    # Every non-zero word of the array is a counter's word (at its address), nothing else.
    counter_words = {(counters.address_of(c, w) - base) // 8
                     for c in range(N_COUNTERS) for w in range(counters.writers)}
    assert set(np.flatnonzero(counters.words).tolist()) <= counter_words
    stats = bus.stats().as_dict()
    for name, value in expected.items():
        assert stats[name] == value
    assert stats["batches_dispatched"] >= 1
    assert list(counters.read_all()) == list(COUNTER_NAMES)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_every_layout_conserves_under_concurrent_producers_and_workers(
        bus_rig, contract_violations, layout):
    # Producers count ingested and evictions, two workers count dispatches: all hot at once.
    bus = bus_rig.bus(shards=4, capacity=64, backpressure="drop_oldest", workers=2,
                      adapter="verify", counters=CounterLayout.parse(layout))
    gen = bus_rig.run_load(bus, 0.2, producers=2, batch=64)
    assert bus.flush(timeout_s=10.0).barrier_held
    assert bus.stats().events_dropped > 0
    assert contract_violations(bus, gen.truths()) == []
    report = bus.shutdown(grace_s=5.0)
    assert contract_violations(bus, gen.truths(), report=report) == []
