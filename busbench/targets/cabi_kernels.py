"""Producer kernel for a bus with a C ABI: closed and open loop, GIL-free.

The bus's functions are reached through addresses held in an int64 array
(``calls``, built by ``cabi.CAbiTarget`` from the target's description), with
``bus.ffi``: one cached kernel drives any library, and several libraries (or
releases of one) in one process. Argument order, arity, return width and the
meaning of return codes are runtime values too.

Each event is a fixed-width JSON payload (``load.text_payload``) naming producer,
seq and intended send time, written into a per-producer buffer the bus must copy
before its ingest call returns (busbench reuses the buffer for the next call).
The producer keeps busbench's own tallies in ``pstate`` (``load.kernels``
layout: offered, landed, refused, turned away, late, calls, ...) and a few more
in ``xstate`` (below): the sum of ``payload.mix`` over the events the bus accepted,
which the delivery sink's checksum must match, and any return code the target
file did not declare (the producer stops at once; the target reports it).

Pacing follows ``load.kernels.produce``: open loop schedules event k at
``t0 + k/rate`` and counts a call made more than ``late_after`` behind as late;
closed loop goes as fast as the bus takes events and backs off after refusals.
"""
import numpy as np

from ..native.atomics import load_relaxed
from ..native.clock import monotonic_ns, yield_cpu
from ..native.ffi import ccall_i32, ccall_i64
from ..native.jit import kernel, kernel_inline
from ..bus.kernels import backoff
from ..native import text_payload as PL
from ..load.kernels import (
    P_BATCH,
    P_DEADLINE_NS,
    P_INTERVAL_PS,
    P_LATE_AFTER_NS,
    P_MAX_EVENTS,
    P_OPEN_LOOP,
    P_RETRY_FAILED,
    P_T0_NS,
    S_CALLS,
    S_DONE,
    S_LANDED,
    S_LATE,
    S_NEXT_SEQ,
    S_OFFERED,
    S_REFUSED,
    S_RETRIES,
    S_STEP_EVENTS,
    S_TURNED_AWAY,
    STOP_FLAG,
    wait_until_due,
)
from ..native.payload import add_wrap, mix
from ..scenario.foreign import HANDLE, LEN, LENS, PTR, PTRS, N

# --- calls: the int64 array describing how to call the bus ----------------------------
(K_HANDLE, K_MODE, K_ADDR, K_ARITY, K_BITS, K_ARG0, K_ARG1, K_ARG2, K_ARG3,
 K_N_OK, K_N_REFUSED, K_N_CLOSED, K_CODES) = range(13)
MAX_CODES = 8                      # per kind: ok, refused, closed
K_LEN = K_CODES + 3 * MAX_CODES
MODE_SINGLE, MODE_BATCH = 0, 1     # one ingest call per event, or ingest_batch

# --- outcome of a return code -----------------------------------------------------------
TAKEN, REFUSED, CLOSED, UNDECLARED = 0, 1, 2, 3

# --- xstate: a C ABI producer's tallies beyond pstate -----------------------------------
X_LANDED_SUM, X_UNDECLARED, X_LAST_CODE, X_UNKNOWN_EVENTS, X_LEN = range(5)


@kernel_inline
def _arg(kind, handle, a, b, n):
    """The value of one argument: ``a``/``b`` are (ptr, len) or (ptrs, lens)."""
    if kind == HANDLE:
        return handle
    if kind == PTR or kind == PTRS:
        return a
    if kind == LEN or kind == LENS:
        return b
    if kind == N:
        return n
    return 0


@kernel_inline
def call_bus(calls, a, b, n):
    """Call the ingest function described in ``calls`` (arity 1 to 4, int or int64 return)."""
    addr = calls[K_ADDR]
    h = calls[K_HANDLE]
    x0 = _arg(calls[K_ARG0], h, a, b, n)
    x1 = _arg(calls[K_ARG1], h, a, b, n)
    x2 = _arg(calls[K_ARG2], h, a, b, n)
    x3 = _arg(calls[K_ARG3], h, a, b, n)
    arity = calls[K_ARITY]
    if calls[K_BITS] == 64:
        if arity == 4:
            return ccall_i64(addr, (x0, x1, x2, x3))
        if arity == 3:
            return ccall_i64(addr, (x0, x1, x2))
        if arity == 2:
            return ccall_i64(addr, (x0, x1))
        return ccall_i64(addr, (x0,))
    if arity == 4:
        return ccall_i32(addr, (x0, x1, x2, x3))
    if arity == 3:
        return ccall_i32(addr, (x0, x1, x2))
    if arity == 2:
        return ccall_i32(addr, (x0, x1))
    return ccall_i32(addr, (x0,))


@kernel_inline
def _listed(calls, rc, at, count):
    for i in range(count):
        if calls[at + i] == rc:
            return True
    return False


@kernel_inline
def classify(calls, rc):
    """What a single ingest's return code means, by the target's declaration."""
    if _listed(calls, rc, K_CODES, calls[K_N_OK]):
        return TAKEN
    if _listed(calls, rc, K_CODES + MAX_CODES, calls[K_N_REFUSED]):
        return REFUSED
    if _listed(calls, rc, K_CODES + 2 * MAX_CODES, calls[K_N_CLOSED]):
        return CLOSED
    return UNDECLARED


@kernel_inline
def _undeclared(pstate, xstate, rc, events):
    xstate[X_UNDECLARED] += 1
    xstate[X_LAST_CODE] = rc
    xstate[X_UNKNOWN_EVENTS] += events
    pstate[S_DONE] = 1


@kernel
def produce_cabi(calls, producer, params, pstate, xstate, stop, payloads, ptrs, lens, t_int):
    """Run one producer until its stop condition; returns the events offered.

    ``payloads``: ``payload.template_array(batch)``; ``ptrs``/``lens``: int64
    arrays of ``batch`` slots (filled here); ``t_int``: int64 scratch.
    """
    batch = params[P_BATCH]
    open_loop = params[P_OPEN_LOOP]
    max_events = params[P_MAX_EVENTS]
    deadline = params[P_DEADLINE_NS]
    interval_ps = params[P_INTERVAL_PS]
    t0 = params[P_T0_NS]
    late_after = params[P_LATE_AFTER_NS]
    retry = params[P_RETRY_FAILED]
    batch_mode = calls[K_MODE] == MODE_BATCH
    base = payloads.ctypes.data
    for i in range(batch):
        ptrs[i] = base + i * PL.SIZE
        lens[i] = PL.SIZE
    ptrs_at = ptrs.ctypes.data
    lens_at = lens.ctypes.data
    offered_here = 0
    pstate[S_STEP_EVENTS] = 0
    refusal_spins = 0
    while True:
        if load_relaxed(stop, STOP_FLAG) != 0 or pstate[S_DONE] != 0:
            break
        n = batch
        if max_events >= 0:
            left = max_events - pstate[S_STEP_EVENTS]
            if left <= 0:
                break
            n = min(n, left)
        k = pstate[S_STEP_EVENTS]
        if open_loop:
            due_last = t0 + ((k + n - 1) * interval_ps) // 1000
            if deadline > 0 and due_last > deadline:
                break
            now = wait_until_due(due_last)
            for i in range(n):
                t_int[i] = t0 + ((k + i) * interval_ps) // 1000
            if now - due_last > late_after:
                pstate[S_LATE] += n
        else:
            now = monotonic_ns()
            if deadline > 0 and now >= deadline:
                break
            for i in range(n):
                t_int[i] = now
        seq0 = pstate[S_NEXT_SEQ]
        for i in range(n):
            PL.encode(payloads, i, producer, seq0 + i, t_int[i])
        pstate[S_NEXT_SEQ] = seq0 + n
        pstate[S_STEP_EVENTS] = k + n
        start = 0            # events [start, n) are not yet taken
        while start < n:
            refused = 0
            if batch_mode:
                m = n - start
                rc = call_bus(calls, ptrs_at + 8 * start, lens_at + 8 * start, m)
                pstate[S_CALLS] += 1
                if rc < 0 or rc > m:
                    if rc < 0 and _listed(calls, rc, K_CODES + 2 * MAX_CODES, calls[K_N_CLOSED]):
                        pstate[S_TURNED_AWAY] += m
                        pstate[S_DONE] = 1
                    else:
                        _undeclared(pstate, xstate, rc, m)
                    break
                pstate[S_OFFERED] += m
                offered_here += m
                pstate[S_LANDED] += rc
                for i in range(start, start + rc):
                    xstate[X_LANDED_SUM] = add_wrap(xstate[X_LANDED_SUM], mix(seq0 + i))
                start += rc
                refused = m - rc
            else:
                for i in range(start, n):
                    rc = call_bus(calls, ptrs[i], lens[i], 1)
                    pstate[S_CALLS] += 1
                    outcome = classify(calls, rc)
                    if outcome == TAKEN:
                        pstate[S_OFFERED] += 1
                        offered_here += 1
                        pstate[S_LANDED] += 1
                        xstate[X_LANDED_SUM] = add_wrap(xstate[X_LANDED_SUM], mix(seq0 + i))
                        start = i + 1
                    elif outcome == REFUSED:
                        pstate[S_OFFERED] += 1
                        offered_here += 1
                        refused = 1
                        start = i
                        break
                    elif outcome == CLOSED:
                        pstate[S_TURNED_AWAY] += n - i
                        pstate[S_DONE] = 1
                        break
                    else:
                        _undeclared(pstate, xstate, rc, n - i)
                        break
            if pstate[S_DONE] != 0:
                break
            if refused == 0:
                refusal_spins = 0
                continue
            pstate[S_REFUSED] += refused
            if not open_loop:
                refusal_spins = backoff(refusal_spins)
            if retry:
                # Offer the refused events again (same seq, in order) until taken or stopped.
                if load_relaxed(stop, STOP_FLAG) != 0 or (
                        deadline > 0 and monotonic_ns() >= deadline):
                    break
                pstate[S_RETRIES] += 1
                yield_cpu()
                continue
            if batch_mode:
                break              # the rest of the batch was refused: given up
            start += 1             # this event given up: on to the next one
        if pstate[S_DONE] != 0:
            break
    return offered_here


def empty_xstate() -> np.ndarray:
    return np.zeros(X_LEN, np.int64)
