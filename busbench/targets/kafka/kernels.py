"""The kafka target's ingest call (as data) and delivery-report callback (jitted).

The producer is busbench's one load loop (``load.foreign.produce_ccall``); the
kafka target writes no loop of its own, only ``call_spec``: its ingest call,
``rd_kafka_produce``, described as data (``load.ccall.CallSpec``). The load's key
distribution chooses each event's shard and the shard *is* the partition handed
to ``rd_kafka_produce`` explicitly, so per (producer, shard) evidence works as on
the builtin bus. One call per event with ``RD_KAFKA_MSG_F_COPY`` (busbench reuses
its payload buffer; ``block`` adds ``RD_KAFKA_MSG_F_BLOCK``); on -1 the loop asks
``rd_kafka_last_error()`` (thread-local) why: -184 (QUEUE_FULL) is a refusal, -150
(FATAL: the producer instance can take no more) closes it, any other code
(unknown partition, message too large, a transactional state: a run librdkafka
cannot serve) stops the producer and the target says which (``target.produce``).

The payload is the loop's ``json`` writer (``native.text_payload``: 50 bytes of
JSON naming producer, seq and intended send time), what the log is read back
against; ``msg_opaque`` carries the event's value ``producer << SEQ_BITS | seq``
for the delivery report.

The loop's gate (``load.kernels.new_gate``: closed flag, calls in flight) lets the
target destroy the producer only once no kernel is inside ``rd_kafka_produce`` on
its handle.

``dr_msg_cb`` is a C callback compiled by Numba (``@cfunc``: no GIL), served by
whoever calls ``rd_kafka_poll`` (the target's poll thread) or ``rd_kafka_flush``.
It records, per (partition, producer), the messages librdkafka reported
delivered and failed, with ``payload.mix`` checksums, and per error code how
many failed.
"""
import numpy as np
from numba import carray, cfunc, types

from ...load.ccall import Arg, CallSpec, ErrorCode
from ...native.atomics import fetch_add
from ...native.ffi import ccall_i32
from ...native.jit import kernel, kernel_inline
from ...native import text_payload as PL
from ...native.payload import SEQ_BITS, SEQ_MASK, mix
from .abi import ERR_FATAL, ERR_QUEUE_FULL

# delivery-report state: header, error table, cells per (partition, producer)
(D_LEN, D_PRODUCERS, D_PARTITIONS, D_FOREIGN, D_REPORTS, D_ERR_OVERFLOW) = range(6)
D_HEADER = 16
D_ERR_SLOTS = 16                  # (code, count) pairs
D_CELLS = D_HEADER + 2 * D_ERR_SLOTS
(K_OK, K_OK_SUM, K_FAILED, K_FAILED_SUM, K_MAX_OFFSET) = range(5)
CELL = 5


def call_spec(rkt: int, produce: int, last_error: int, flags: int) -> CallSpec:
    """``int rd_kafka_produce(rkt, partition, msgflags, payload, len, key, keylen,
    msg_opaque)`` as data: the event's shard is the partition, ``flags`` (``abi.MSG_F_*``),
    no key, the event's value the opaque the delivery report carries back; -1 answered
    by ``rd_kafka_last_error()``."""
    return CallSpec(address=produce,
                    args=(Arg.const(rkt), Arg.SHARD, Arg.const(flags), Arg.PTR, Arg.LEN,
                          Arg.const(0), Arg.const(0), Arg.VALUE),
                    returns=32, ok=(0,), refused=(ERR_QUEUE_FULL,), closed=(ERR_FATAL,),
                    error_code=ErrorCode(address=last_error, when=-1),
                    undeclared="stop", payload="json", name="rd_kafka_produce")


@kernel
def bare_produce(rkt, produce, flags, partitions, count, payloads):
    """``rd_kafka_produce`` with nothing around it, round robin over ``partitions``,
    as the benchmark's load (benchmarks: the loop's own overhead); returns how many
    calls returned 0."""
    ok = 0
    base = payloads.ctypes.data
    for i in range(count):
        rc = ccall_i32(produce, (rkt, i % partitions, flags, base, np.int64(PL.SIZE),
                                 np.int64(0), np.int64(0), np.int64(i)))
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
