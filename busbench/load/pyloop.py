"""The producer loop for targets whose producers are Python threads (the python
target, net-mesh's official binding, the test suite's fake target).

Same loop, same semantics as the jitted ``load.kernels.produce``: the pacing
(``next_call``: open-loop schedule, late sends, the step's deadline, the
stop-aware wait), the tallies, retries and backoff (``after_call``) are the very
jitted functions that loop inlines, called from here around the target's
Python ingest step; their waits release the GIL. Only the step is the target's:

    step(values, t_int, m, landed) -> (status, offered, got, calls made)

It offers events [0, m) (``values[i]``: ``producer << SEQ_BITS | seq``;
``t_int[i]``: the intended send time; it writes the payloads it needs from
them), fills ``landed[i]`` (``load.kernels.LANDED`` / ``NOT_LANDED`` / ``LOST``)
for the events it offered, and answers in ``names.INGEST_*``: OK (all taken),
FAILED (some refused: the retry policy decides), CLOSED (events from
``offered`` on turned away: the bus is shut down), AMBIGUOUS (a batch partly
taken, ``got`` of them, which unknown).
"""
from __future__ import annotations

import numpy as np

from . import foreign as F
from . import kernels as K

_NONE = np.zeros(0, np.int64)


def run(step, params, pstate, xstate, by_shard, zipf_cdf, stop, events, *, refused_bits=None,
        ambiguous_bits=None, between_calls=None) -> int:
    """Run one producer until its stop condition; returns the events offered.
    ``between_calls()``: called after every batch (the fake target yields the GIL)."""
    shards_buf, values, t_int, landed = events
    refused_bits = _NONE if refused_bits is None else refused_bits
    ambiguous_bits = _NONE if ambiguous_bits is None else ambiguous_bits
    before = int(pstate[K.S_OFFERED])
    K.begin_step(pstate)
    while True:
        n = F.py_next(params, pstate, xstate, zipf_cdf, stop, shards_buf, values, t_int)
        if n == 0:
            break
        m = n
        while True:
            status, offered, got, made = step(values, t_int, m, landed)
            again = F.py_after(params, pstate, xstate, by_shard, stop, status, m, offered, got,
                               made, landed, values, shards_buf, t_int, refused_bits,
                               ambiguous_bits)
            if again == 0:
                break
            m = again
        F.py_end_batch(pstate, xstate, status, values, offered, m)
        if pstate[K.S_DONE]:
            break
        if between_calls is not None:
            between_calls()
    return int(pstate[K.S_OFFERED]) - before


def buffers(batch: int, shards: int) -> tuple:
    """(events, by_shard, zipf_cdf) for a producer driven without a load generator."""
    by_shard = np.zeros(2 * max(1, shards), np.int64)
    by_shard[max(1, shards):] = -1
    return K.events_buffers(batch), by_shard, np.ones(max(1, shards))


def warm_up() -> None:
    """Compile (or load from Numba's cache) the jitted pieces this loop calls, so a
    target's ``prepare`` pays for it and no step's time is spent compiling."""
    params = np.zeros(K.P_LEN, np.int64)
    params[K.P_BATCH] = 1
    params[K.P_MAX_EVENTS] = 1
    params[K.P_SHARDS] = 1
    events, by_shard, zipf_cdf = buffers(1, 1)

    def step(values, t_int, m, landed):
        landed[:m] = K.LANDED
        return 0, m, 0, 1

    run(step, params, np.zeros(K.S_LEN, np.int64), K.empty_xstate(), by_shard, zipf_cdf,
        np.zeros(16, np.int64), events)
