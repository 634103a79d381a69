"""Ring fill as the sampler reads it (the report's heat map and the long-step line)."""
from __future__ import annotations

from busbench.bus.config import POS_HEAD, POS_TAIL, BusConfig
from busbench.bus.core import ReferenceBus


def test_a_reader_delayed_between_its_two_reads_never_shows_a_full_ring_as_empty():
    """A full ring whose worker takes out more than a ring's worth between the
    reader's reads of head and tail (the reader descheduled on a loaded
    machine): read head first, it reads full (bounded by the capacity); read
    tail first, it read 0."""
    cap = 64
    bus = ReferenceBus(BusConfig(shards=1, capacity=cap, producers=1))
    positions = {POS_HEAD: 1000, POS_TAIL: 1000 + cap}

    def pos(shard, field):
        value = positions[field]
        positions[POS_HEAD] += 2 * cap       # the worker drains, producers refill
        positions[POS_TAIL] += 2 * cap
        return value

    bus._pos = pos
    assert bus.shard_fill() == [cap]
