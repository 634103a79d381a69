"""The foreign step: how busbench's one producer loop offers events to a bus that
is not its own, and the pieces the Python loop shares with it.

``load.kernels.produce`` makes every ingest call through its target's step, a
C function it calls by address (``frame[F_STEP]``), as it calls a bus's own C
functions: the reference bus's ring push (``load.ring``) or *the foreign step*
here. The foreign step (``_foreign_step``, a ``numba.cfunc``) writes
the events' payloads and calls the bus's C ingest function as a
``load.ccall.CallSpec`` describes it (net-mesh, c-abi, Kafka: the address,
the arguments, the meaning of the return codes are runtime values), classifies
what the bus answered, and after ``produce`` tallied the call settles the
events given up or of unknown fate. It is compiled apart and only when a
target first asks for its address (``STEP.address``): a run of the reference
bus never compiles it, and ``produce`` is the same one kernel for every
target. The arrays it works on travel in ``frame`` (``load.kernels.F_*``:
address and length each), filled by ``new_frame`` on the target's side and by
``produce`` for the events of each call.

``produce_ccall`` runs ``produce`` with the foreign step: the one entry of
every C target. ``py_next`` / ``py_after`` / ``py_end_batch`` are what
``load.pyloop`` (producers that are Python threads) calls between its calls.
"""
import numpy as np

from ..native.ffi import ccall_i64, view
from ..native.jit import LazyCFunc, kernel, kernel_inline
from ..native.payload import SEQ_BITS, SEQ_MASK, add_wrap, mix
from ..native import hex_payload, text_payload
from ..common.names import (
    INGEST_AMBIGUOUS,
    INGEST_CLOSED,
    INGEST_ERROR,
    INGEST_FAILED,
    INGEST_OK,
    INGEST_REFUSED,
)
from .ccall import (
    A_CONST,
    A_LEN,
    A_LENS,
    A_N,
    A_PTR,
    A_PTRS,
    A_SHARD,
    A_SHARDS,
    A_VALUE,
    A_VALUES,
    C_ADDR,
    C_ARITY,
    C_BATCH,
    C_BATCH_COUNT,
    C_BITS,
    C_CODES,
    C_ERR_ADDR,
    C_ERR_BITS,
    C_ERR_WHEN,
    C_KINDS,
    C_LEN,
    C_N_CLOSED,
    C_N_OK,
    C_N_REFUSED,
    C_PAYLOAD,
    C_UNDECLARED,
    C_VALUES,
    COUNT_UNKNOWN,
    MAX_CODES,
    PAYLOAD_HEX,
    UNDECLARED_STOP,
)
from .kernels import (
    F_AMBIGUOUS,
    F_AMBIGUOUS_LEN,
    F_BATCH,
    F_CALLS,
    F_GOT,
    F_LANDED,
    F_LENS,
    F_MADE,
    F_OFFERED,
    F_PAYLOAD,
    F_PTRS,
    F_REFUSED,
    F_REFUSED_LEN,
    F_RETRY,
    F_ROWS,
    F_SHARDS,
    F_T_INT,
    F_VALUES,
    F_WIDTH,
    F_XSTATE,
    FRAME_LEN,
    STEP_SIGNATURE,
    GATE_LEN,
    LANDED,
    LOST,
    NOT_LANDED,
    P_BATCH,
    P_SHARDS,
    PHASE_SETTLE,
    S_LANDED,
    S_NEXT_SEQ,
    S_OFFERED,
    X_BEYOND_BITMAP,
    X_CLOSED,
    X_ERRORS,
    X_LAST_CODE,
    X_LEN,
    X_REFUSALS,
    X_REFUSED_SUM,
    X_UNDECLARED,
    after_call,
    done_upto,
    events_buffers,
    given_up,
    next_call,
    produce,
    publish_watermark,
    renumber,
    stall_if_armed,
    new_frame as loop_frame,
)

# a C code's class
TAKEN, REFUSED, CLOSED, UNDECLARED = 0, 1, 2, 3


# --------------------------------------------------------------------------- settling a call
@kernel_inline
def set_bit(bits, seq):
    """Set ``seq``'s bit; 0 when the bitmap is too small to hold it (1 without a bitmap)."""
    if bits.size == 0:
        return 1
    word = seq >> 6
    if word < bits.size:
        bits[word] |= np.int64(1) << (seq & 63)
        return 1
    return 0


@kernel
def settle_foreign(status, again, xstate, refused_bits, ambiguous_bits, values, landed, offered):
    """A foreign bus's per-event evidence after a call: the events given up
    (checksum, bitmap) and the events of a batch whose fate is unknown (bitmap)."""
    if status == INGEST_AMBIGUOUS:
        for i in range(offered):
            if set_bit(ambiguous_bits, values[i] & SEQ_MASK) == 0:
                xstate[X_BEYOND_BITMAP] += 1
    elif given_up(status, again, landed, offered):
        s = xstate[X_REFUSED_SUM]
        for i in range(offered):
            if landed[i] == NOT_LANDED:
                s = add_wrap(s, mix(values[i] & SEQ_MASK))
                if set_bit(refused_bits, values[i] & SEQ_MASK) == 0:
                    xstate[X_BEYOND_BITMAP] += 1
        xstate[X_REFUSED_SUM] = s


# --------------------------------------------------------------------------- Python loop's pieces
@kernel
def py_next(params, pstate, xstate, zipf_cdf, stop, shards_buf, values, t_int):
    """``load.pyloop``: pace and fill the next call's events (stall fault first)."""
    stall_if_armed(xstate, stop)
    return next_call(params, pstate, zipf_cdf, stop, shards_buf, values, t_int)


@kernel
def py_after(params, pstate, xstate, by_shard, stop, status, m, offered, got, made, landed,
             values, shards_buf, t_int, refused_bits, ambiguous_bits):
    """``load.pyloop``: tally a Python ingest call as ``produce`` tallies a C one."""
    again = after_call(params, pstate, xstate, by_shard, stop, status, m, offered, got, made,
                       landed, values, shards_buf, t_int, np.bool_(True))   # a value: one compile
    settle_foreign(status, max(again, 0), xstate, refused_bits, ambiguous_bits, values, landed,
                   offered)
    if again < 0:
        again = renumber(params, pstate, values, shards_buf, t_int, landed, m, offered)
    return again


@kernel
def py_end_batch(pstate, xstate, status, values, offered, m):
    publish_watermark(xstate, done_upto(status, values, offered, m, pstate[S_NEXT_SEQ]), pstate[S_LANDED])


# --------------------------------------------------------------------------- the C call
@kernel
def invoke(addr, bits, arity, a0, a1, a2, a3, a4, a5, a6, a7):
    """Call the C function at ``addr`` with ``arity`` int64 arguments; its return read
    at ``bits`` (32: the low half of the register, sign-extended, as native.ffi.ccall_i32
    reads an ``int``: on x86-64 and AArch64 the upper half is not defined)."""
    if arity == 0:
        r = ccall_i64(addr, ())
    elif arity == 1:
        r = ccall_i64(addr, (a0,))
    elif arity == 2:
        r = ccall_i64(addr, (a0, a1))
    elif arity == 3:
        r = ccall_i64(addr, (a0, a1, a2))
    elif arity == 4:
        r = ccall_i64(addr, (a0, a1, a2, a3))
    elif arity == 5:
        r = ccall_i64(addr, (a0, a1, a2, a3, a4))
    elif arity == 6:
        r = ccall_i64(addr, (a0, a1, a2, a3, a4, a5))
    elif arity == 7:
        r = ccall_i64(addr, (a0, a1, a2, a3, a4, a5, a6))
    else:
        r = ccall_i64(addr, (a0, a1, a2, a3, a4, a5, a6, a7))
    if bits == 64:
        return r
    low = r & 0xFFFFFFFF
    return low - 0x100000000 if low >= 0x80000000 else low


@kernel
def arg_value(calls, k, i, n, shards_buf, values, ptrs, lens):
    """Argument ``k`` for a call on events [i, i + n) (load.ccall's kinds)."""
    if k >= calls[C_ARITY]:
        return np.int64(0)
    kind = calls[C_KINDS + k]
    if kind == A_CONST:
        return calls[C_VALUES + k]
    if kind == A_PTR:
        return ptrs[i]
    if kind == A_LEN:
        return lens[i]
    if kind == A_SHARD:
        return shards_buf[i]
    if kind == A_VALUE:
        return values[i]
    if kind == A_PTRS:
        return ptrs.ctypes.data + 8 * i
    if kind == A_LENS:
        return lens.ctypes.data + 8 * i
    if kind == A_N:
        return np.int64(n)
    if kind == A_SHARDS:
        return shards_buf.ctypes.data + 8 * i
    if kind == A_VALUES:
        return values.ctypes.data + 8 * i
    return np.int64(0)


@kernel
def call_c(calls, i, n, shards_buf, values, ptrs, lens):
    """Make the described call for events [i, i + n); the code, or the error-code
    function's answer when the call returned the declared sentinel."""
    # Every argument below is an int64 value, never a constant: Numba compiles a kernel
    # once per literal it is handed (``arg_value(calls, 0, ...)`` and ``(calls, 1, ...)``
    # were 16 compiles of arg_value on a cold cache). tests/test_kernel_literals.py keeps it so.
    k = np.int64(0)
    rc = invoke(calls[C_ADDR], calls[C_BITS], calls[C_ARITY],
                arg_value(calls, k, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 1, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 2, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 3, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 4, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 5, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 6, i, n, shards_buf, values, ptrs, lens),
                arg_value(calls, k + 7, i, n, shards_buf, values, ptrs, lens))
    if calls[C_ERR_ADDR] != 0 and rc == calls[C_ERR_WHEN]:
        z = np.int64(0)
        rc = invoke(calls[C_ERR_ADDR], calls[C_ERR_BITS], z, z, z, z, z, z, z, z, z)
    return rc


@kernel
def _listed(calls, rc, at, count):
    for i in range(count):
        if calls[at + i] == rc:
            return True
    return False


@kernel
def classify(calls, rc):
    """What a return code means, by the call's declaration (TAKEN ... UNDECLARED)."""
    if _listed(calls, rc, np.int64(C_CODES), calls[C_N_OK]):
        return TAKEN
    if _listed(calls, rc, C_CODES + MAX_CODES, calls[C_N_REFUSED]):
        return REFUSED
    if _listed(calls, rc, C_CODES + 2 * MAX_CODES, calls[C_N_CLOSED]):
        return CLOSED
    return UNDECLARED


@kernel
def undeclared(calls, xstate, rc, events):
    xstate[X_UNDECLARED] += 1
    xstate[X_LAST_CODE] = rc
    xstate[X_ERRORS] += events
    return INGEST_ERROR if calls[C_UNDECLARED] == UNDECLARED_STOP else INGEST_REFUSED


@kernel
def c_step(calls, xstate, retry, m, landed, shards_buf, values, ptrs, lens):
    """Offer events [0, m) through the C function ``calls`` describes. Fills
    ``landed`` and returns (status, events offered, events taken when the status
    is AMBIGUOUS, calls made)."""
    one = np.int64(1)       # a value, not a constant (see call_c)
    if calls[C_BATCH] == 0:
        status = INGEST_OK
        for i in range(m):
            rc = call_c(calls, i, one, shards_buf, values, ptrs, lens)
            what = classify(calls, rc)
            if what == TAKEN:
                landed[i] = LANDED
            elif what == REFUSED:
                landed[i] = NOT_LANDED
                xstate[X_REFUSALS] += 1
                status = INGEST_FAILED
                if retry:
                    return status, i + 1, 0, i + 1     # retried before the rest, in order
            elif what == CLOSED:
                xstate[X_CLOSED] += 1
                return INGEST_CLOSED, i, 0, i + 1
            else:
                landed[i] = LOST
                verdict = undeclared(calls, xstate, rc, one)
                if verdict == INGEST_ERROR:
                    return verdict, i + 1, 0, i + 1
                if status == INGEST_OK:
                    status = verdict
        return status, m, 0, m
    rc = call_c(calls, one - 1, m, shards_buf, values, ptrs, lens)
    if rc == m:
        for i in range(m):
            landed[i] = LANDED
        return INGEST_OK, m, m, 1
    if 0 <= rc < m:
        xstate[X_REFUSALS] += 1
        if calls[C_BATCH_COUNT] == COUNT_UNKNOWN:
            return INGEST_AMBIGUOUS, m, rc, 1
        for i in range(m):
            landed[i] = LANDED if i < rc else NOT_LANDED
        return INGEST_FAILED, m, rc, 1
    what = classify(calls, rc) if rc < 0 else UNDECLARED
    if what == CLOSED:
        xstate[X_CLOSED] += 1
        return INGEST_CLOSED, 0, 0, 1
    if what == REFUSED:
        xstate[X_REFUSALS] += 1
        for i in range(m):
            landed[i] = NOT_LANDED
        return INGEST_FAILED, m, 0, 1
    for i in range(m):
        landed[i] = LOST
    return undeclared(calls, xstate, rc, m), m, 0, 1


@kernel
def write_payloads(calls, payload, values, t_int, m):
    """The payloads of events [0, m), by the writer ``calls`` names."""
    if calls[C_PAYLOAD] == PAYLOAD_HEX:
        for i in range(m):
            hex_payload.encode(payload, i, values[i] >> SEQ_BITS, values[i] & SEQ_MASK, t_int[i])
    else:
        for i in range(m):
            text_payload.encode(payload, i, values[i] >> SEQ_BITS, values[i] & SEQ_MASK, t_int[i])


# --------------------------------------------------------------------------- the step, by address
def _foreign_step(at, phase, m, status, again, offered):
    """PHASE_CALL: write the payloads of events [0, m) and make the call; returns its
    status, with the events offered, taken (AMBIGUOUS) and calls made in the frame.
    PHASE_SETTLE: the events given up, or of unknown fate, into the checksums and
    bitmaps."""
    frame = view(at, (FRAME_LEN,), np.int64)
    n = frame[F_BATCH]
    xstate = view(frame[F_XSTATE], (X_LEN,), np.int64)
    values = view(frame[F_VALUES], (n,), np.int64)
    landed = view(frame[F_LANDED], (n,), np.int64)
    if phase == PHASE_SETTLE:
        settle_foreign(status, again, xstate,
                       view(frame[F_REFUSED], (frame[F_REFUSED_LEN],), np.int64),
                       view(frame[F_AMBIGUOUS], (frame[F_AMBIGUOUS_LEN],), np.int64),
                       values, landed, offered)
        return np.int64(0)
    calls = view(frame[F_CALLS], (C_LEN,), np.int64)
    shards_buf = view(frame[F_SHARDS], (n,), np.int64)
    t_int = view(frame[F_T_INT], (n,), np.int64)
    ptrs = view(frame[F_PTRS], (n,), np.int64)
    lens = view(frame[F_LENS], (n,), np.int64)
    payload = view(frame[F_PAYLOAD], (frame[F_ROWS], frame[F_WIDTH]), np.uint8)
    write_payloads(calls, payload, values, t_int, m)
    got_status, got_offered, got, made = c_step(calls, xstate, frame[F_RETRY] != 0, m, landed,
                                                shards_buf, values, ptrs, lens)
    frame[F_OFFERED] = got_offered
    frame[F_GOT] = got
    frame[F_MADE] = made
    return got_status


#: the foreign step, compiled on first use
STEP = LazyCFunc(STEP_SIGNATURE, _foreign_step)


def new_frame(calls, payload, ptrs, lens, refused_bits, ambiguous_bits) -> np.ndarray:
    """The frame of one ``produce`` run with the foreign step (the arrays must outlive
    the run); ``ptrs``/``lens`` are pointed at the rows of ``payload``."""
    rows, width = payload.shape
    k = min(ptrs.shape[0], rows)
    ptrs[:k] = payload.ctypes.data + np.arange(k, dtype=np.int64) * width
    lens[:k] = width
    frame = loop_frame(STEP.address, foreign=True)
    frame[F_CALLS] = calls.ctypes.data
    frame[F_PAYLOAD], frame[F_ROWS], frame[F_WIDTH] = payload.ctypes.data, rows, width
    frame[F_PTRS], frame[F_LENS] = ptrs.ctypes.data, lens.ctypes.data
    frame[F_REFUSED], frame[F_REFUSED_LEN] = refused_bits.ctypes.data, refused_bits.shape[0]
    frame[F_AMBIGUOUS], frame[F_AMBIGUOUS_LEN] = ambiguous_bits.ctypes.data, ambiguous_bits.shape[0]
    return frame


# --------------------------------------------------------------------------- from Python
def produce_ccall(calls, params, pstate, xstate, stop, payload, ptrs, lens, *, zipf_cdf=None,
                  by_shard=None, events=None, refused_bits=None, ambiguous_bits=None,
                  gate=None) -> int:
    """``produce`` with the foreign step, for a target calling a C ingest function
    (``calls``: ``load.ccall.CallSpec.to_array()``; ``payload``: ``(batch, width)``
    uint8, a ``text_payload.template_array`` for json). Buffers left out are made
    here. ``gate``: ``new_gate()`` shared by the target's producers, when the target
    must not free its handle while a call is inside it (``produce``). Returns the
    events offered."""
    batch = int(params[P_BATCH])
    # the kernel does not check bounds: a buffer shorter than a batch would be written past
    if min(payload.shape[0], ptrs.shape[0], lens.shape[0]) < batch or xstate.shape[0] < X_LEN \
            or calls.shape[0] < C_LEN or (gate is not None and gate.shape[0] < GATE_LEN):
        raise ValueError(f"produce_ccall: buffers for {batch} events and an xstate of {X_LEN} "
                         f"expected, got payload {payload.shape}, ptrs {ptrs.shape}, lens "
                         f"{lens.shape}, xstate {xstate.shape}, calls {calls.shape}"
                         + ("" if gate is None else f", gate {gate.shape} ({GATE_LEN} expected)"))
    events = events if events is not None and events[0].shape[0] >= batch else events_buffers(batch)
    if by_shard is None:
        by_shard = np.zeros(2 * max(1, int(params[P_SHARDS])), np.int64)
    zipf_cdf = zipf_cdf if zipf_cdf is not None else np.ones(max(1, int(params[P_SHARDS])))
    none = np.zeros(0, np.int64)
    frame = new_frame(calls, payload, ptrs, lens,
                      none if refused_bits is None else refused_bits,
                      none if ambiguous_bits is None else ambiguous_bits)
    before = int(pstate[S_OFFERED])
    produce(params, pstate, xstate, by_shard, zipf_cdf, stop, *events, frame,
            none if gate is None else gate)
    return int(pstate[S_OFFERED]) - before
