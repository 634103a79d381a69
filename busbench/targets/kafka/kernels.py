"""The kafka target's producer kernel and delivery-report callback (jitted).

The producer is busbench's one load loop (``load.kernels``: ``begin_step`` /
``next_call`` / ingest / ``after_call``), the builtin target's shape: the load's
key distribution chooses each event's shard and the shard *is* the partition
handed to ``rd_kafka_produce`` explicitly, so per (producer, shard) evidence
works as on the builtin bus. The ingest step calls ``rd_kafka_produce`` by
address (``bus.ffi.ccall_i32``, every argument an int64) with
``RD_KAFKA_MSG_F_COPY`` (busbench reuses its payload buffer), once per event,
and on -1 asks ``rd_kafka_last_error()`` (thread-local) why: -184
(QUEUE_FULL) is a refusal, any other code too, tallied apart in ``xstate``.

The payload is ``load.text_payload`` (50 bytes of JSON naming producer, seq and
intended send time), what the log is read back against; ``msg_opaque`` carries
``producer << SEQ_BITS | seq`` for the delivery report.

A gate (``gate``: closed flag, calls in flight) lets the target destroy the
producer only once no kernel is inside ``rd_kafka_produce`` on its handle.

``dr_msg_cb`` is a C callback compiled by Numba (``@cfunc``: no GIL), served by
whoever calls ``rd_kafka_poll`` (the target's poll thread) or ``rd_kafka_flush``.
It records, per (partition, producer), the messages librdkafka reported
delivered and failed, with ``payload.mix`` checksums, and per error code how
many failed.
"""
import numpy as np
from numba import carray, cfunc, types

from ...native.atomics import fetch_add, load_acquire
from ...native.ffi import ccall_i32
from ...native.jit import kernel, kernel_inline
from ...native import text_payload as PL
from ...load.kernels import S_DONE, after_call, begin_step, next_call
from ...common.names import INGEST_CLOSED, INGEST_FAILED, INGEST_OK, INGEST_REFUSED
from ...native.payload import SEQ_BITS, SEQ_MASK, mix

ERR_QUEUE_FULL = -184

# calls: int64 array describing the ingest call
(C_RKT, C_PRODUCE, C_LAST_ERROR, C_FLAGS, C_FAILED_STATUS, C_LEN) = range(6)
# gate: int64 array, one 128-byte block per word
G_CLOSED, G_INFLIGHT = 0, 16
GATE_LEN = 32
# xstate: a producer's tallies beyond pstate
X_QUEUE_FULL, X_OTHER_ERRORS, X_LAST_ERROR, X_LEN = 0, 1, 2, 16

# delivery-report state: header, error table, cells per (partition, producer)
(D_LEN, D_PRODUCERS, D_PARTITIONS, D_FOREIGN, D_REPORTS, D_ERR_OVERFLOW) = range(6)
D_HEADER = 16
D_ERR_SLOTS = 16                  # (code, count) pairs
D_CELLS = D_HEADER + 2 * D_ERR_SLOTS
(K_OK, K_OK_SUM, K_FAILED, K_FAILED_SUM, K_MAX_OFFSET) = range(5)
CELL = 5


@kernel_inline
def ingest(calls, gate, producer, shards_buf, values, t_int, m, landed, payloads, xstate):
    """Offer ``m`` events, one ``rd_kafka_produce`` each; busbench's status."""
    fetch_add(gate, G_INFLIGHT, 1)
    if load_acquire(gate, G_CLOSED) != 0:
        fetch_add(gate, G_INFLIGHT, -1)
        return INGEST_CLOSED
    rkt = calls[C_RKT]
    fn = calls[C_PRODUCE]
    flags = calls[C_FLAGS]
    base = payloads.ctypes.data
    all_landed = True
    for i in range(m):
        seq = values[i] & SEQ_MASK
        PL.encode(payloads, i, producer, seq, t_int[i])
        rc = ccall_i32(fn, (rkt, shards_buf[i], flags, base + i * PL.SIZE, np.int64(PL.SIZE),
                            np.int64(0), np.int64(0), values[i]))
        if rc == 0:
            landed[i] = 1
            continue
        landed[i] = 0
        all_landed = False
        err = ccall_i32(calls[C_LAST_ERROR], ())
        if err == ERR_QUEUE_FULL:
            xstate[X_QUEUE_FULL] += 1
        else:
            xstate[X_OTHER_ERRORS] += 1
            xstate[X_LAST_ERROR] = err
    fetch_add(gate, G_INFLIGHT, -1)
    if all_landed:
        return INGEST_OK
    return INGEST_FAILED if calls[C_FAILED_STATUS] != 0 else INGEST_REFUSED


@kernel
def produce(calls, gate, producer, params, pstate, by_shard, zipf_cdf, stop,
            shards_buf, values, t_int, landed, payloads, xstate):
    """Run one producer until its stop condition (GIL released)."""
    begin_step(pstate)
    while True:
        n = next_call(params, pstate, zipf_cdf, stop, shards_buf, values, t_int)
        if n == 0:
            break
        m = n
        while m > 0:
            status = ingest(calls, gate, producer, shards_buf, values, t_int, m, landed,
                            payloads, xstate)
            m = after_call(params, pstate, by_shard, stop, status, m, landed, values,
                           shards_buf, t_int)
        if pstate[S_DONE] != 0:
            break


@kernel
def bare_produce(calls, partitions, count, payloads):
    """The same call with nothing around it, round robin over ``partitions`` as the
    benchmark's load (benchmarks: the kernels' own overhead); returns how many calls
    returned 0."""
    ok = 0
    base = payloads.ctypes.data
    for i in range(count):
        rc = ccall_i32(calls[C_PRODUCE], (calls[C_RKT], i % partitions, calls[C_FLAGS], base,
                                          np.int64(PL.SIZE), np.int64(0), np.int64(0), np.int64(i)))
        if rc == 0:
            ok += 1
    return ok


#: ``void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)``
DR_SIGNATURE = types.void(types.voidptr, types.voidptr, types.voidptr)


@kernel_inline
def _count_error(st, err):
    for j in range(D_ERR_SLOTS):
        at = D_HEADER + 2 * j
        if st[at + 1] != 0 and st[at] == err:
            fetch_add(st, at + 1, 1)
            return
    for j in range(D_ERR_SLOTS):
        at = D_HEADER + 2 * j
        if st[at + 1] == 0:
            st[at] = err
            fetch_add(st, at + 1, 1)
            return
    fetch_add(st, D_ERR_OVERFLOW, 1)


@cfunc(DR_SIGNATURE, nopython=True, cache=True)
def dr_msg_cb(rk, message, opaque):
    # rd_kafka_message_t: err (int) @0, rkt @8, partition (int32) @16, payload @24,
    # len @32, key @40, key_len @48, offset (int64) @56, _private (msg_opaque) @64
    head = carray(opaque, (D_HEADER,), np.int64)
    st = carray(opaque, (head[D_LEN],), np.int64)
    msg = carray(message, (9,), np.int64)
    err = np.int64(np.int32(msg[0] & 0xFFFFFFFF))
    partition = np.int64(np.int32(msg[2] & 0xFFFFFFFF))
    value = msg[8]
    producer = value >> SEQ_BITS
    seq = value & SEQ_MASK
    fetch_add(st, D_REPORTS, 1)
    if partition < 0 or partition >= st[D_PARTITIONS] or producer < 0 or producer >= st[D_PRODUCERS]:
        fetch_add(st, D_FOREIGN, 1)
        return
    c = D_CELLS + (partition * st[D_PRODUCERS] + producer) * CELL
    if err == 0:
        fetch_add(st, c + K_OK, 1)
        fetch_add(st, c + K_OK_SUM, mix(seq))
        if msg[7] > st[c + K_MAX_OFFSET]:
            st[c + K_MAX_OFFSET] = msg[7]
    else:
        fetch_add(st, c + K_FAILED, 1)
        fetch_add(st, c + K_FAILED_SUM, mix(seq))
        _count_error(st, err)


def new_report_state(producers: int, partitions: int) -> np.ndarray:
    st = np.zeros(D_CELLS + producers * partitions * CELL, np.int64)
    st[D_LEN] = st.size
    st[D_PRODUCERS] = producers
    st[D_PARTITIONS] = partitions
    for p in range(partitions * producers):
        st[D_CELLS + p * CELL + K_MAX_OFFSET] = -1
    return st
