"""The builtin target's ``produce``: busbench's load loop around the reference
bus's ``ingest_batch`` (one kernel per target, see load/kernels.py).

The bus's own status codes are translated to busbench's (names.INGEST_*)
here, at the one place that knows both.
"""
from ..bus.config import DROPPED, FAILED, OK, SHUTTING_DOWN
from ..native.jit import kernel, kernel_inline
from ..bus.kernels import ingest_batch, mark_dropped
from ..load.kernels import S_DONE, S_NOW, after_call, begin_step, next_call
from ..common.names import (
    INGEST_CLOSED,
    INGEST_FAILED,
    INGEST_OK,
    INGEST_REFUSED,
    INGEST_STRANDED,
)


@kernel_inline
def busbench_status(status):
    if status == OK:
        return INGEST_OK
    if status == DROPPED:
        return INGEST_REFUSED
    if status == FAILED:
        return INGEST_FAILED
    if status == SHUTTING_DOWN:
        return INGEST_CLOSED
    return INGEST_STRANDED


@kernel
def produce(st, writer, params, pstate, by_shard, zipf_cdf, stop,
            shards_buf, values, t_int, order, shard_counts, landed):
    """Run one producer until its stop condition (GIL released)."""
    begin_step(pstate)
    while True:
        n = next_call(params, pstate, zipf_cdf, stop, shards_buf, values, t_int)
        if n == 0:
            break
        m = n
        while m > 0:
            raw, _ = ingest_batch(st, writer, shards_buf, values, t_int, pstate[S_NOW], m,
                                  order, shard_counts, landed)
            status = busbench_status(raw)
            again = after_call(params, pstate, by_shard, stop, status, m, landed, values,
                               shards_buf, t_int)
            if again == 0 and (status == INGEST_REFUSED or status == INGEST_FAILED):
                # Given up: tell the verify adapter's bitmaps (when on) it was dropped.
                for i in range(m):
                    if landed[i] == 0:
                        mark_dropped(st, values[i])
            m = again
        if pstate[S_DONE] != 0:
            break
