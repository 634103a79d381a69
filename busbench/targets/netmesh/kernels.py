"""Jitted producer kernel for net-mesh, and the witness's accounting kernel.

The producer follows ``load.kernels.produce`` (same ``params``/``pstate``
layout, open and closed loop, stop conditions, refusal backoff) but pushes
through net-mesh's C ABI: ``net_ingest_raw`` once per event (``call = SINGLE``:
each refusal is known per event) or ``net_ingest_raw_batch`` once per batch
(``call = BATCH``: net-mesh only says how many it accepted, not which). The
two functions arrive as addresses (``ingest_fn``, ``batch_fn``: runtime
values, ``bus.ffi.ccall_i32``), taken from whichever release's library the
target loaded by path, so one cached kernel drives several releases side by
side in one process, without the GIL.

Payload: 34 bytes of valid JSON, a string of 32 hex digits
``"PPPPSSSSSSSSSSSSTTTTTTTTTTTTTTTT"``: producer id (16 bits), sequence number
(48 bits), and a time (64 bits): the intended send time in open loop, the send
time in closed loop. net-mesh stores it verbatim, so the Redis stream entry is
``{"r":"<32 hex>","t":...,"s":<shard>}`` and the witness finds the hex at a
fixed offset. net-mesh picks the shard from a hash of the payload; busbench's
key distributions cannot steer it.

Producer-side tallies beyond ``pstate`` (``nm``, one 128-byte block each):
checksums (``payload.mix``) of the events known accepted and known
refused, the events of batch calls that were partly refused ("ambiguous":
which ones landed is unknown), -8 and other error returns, and a seqlock-
protected watermark (events whose call had returned, and how many of them
landed) that flush evidence reads at the moment flush is called.
"""
import numpy as np

from ...native.atomics import load_relaxed, store_release
from ...native.clock import monotonic_ns, sleep_ns
from ...native.ffi import ccall_i32
from ...native.jit import kernel, kernel_inline
from ...bus.kernels import backoff
from ...load.kernels import (
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
from ...native.payload import add_wrap, mix

RC_OK, RC_BACKPRESSURE, RC_SHUTTING_DOWN = 0, -5, -8
SINGLE, BATCH = 0, 1

PAYLOAD_LEN = 34
PRODUCER_DIGITS, SEQ_DIGITS, TIME_DIGITS = 4, 12, 16
HEX_DIGITS = PRODUCER_DIGITS + SEQ_DIGITS + TIME_DIGITS
MAX_PRODUCERS = 1 << (4 * PRODUCER_DIGITS)

# nm: int64[NM_LEN], the producer's net-mesh tallies
(NM_ACCEPTED_SUM, NM_REFUSED_SUM, NM_SHUTTING_DOWN, NM_ERRORS, NM_LAST_ERROR,
 NM_AMBIG_OFFERED, NM_AMBIG_LANDED, NM_BEYOND_BITMAP, NM_VERSION, NM_DONE_SEQ,
 NM_DONE_LANDED, NM_STALL_FROM, NM_STALL_FOR, NM_STALLING, NM_BP_RETURNS) = range(15)
NM_LEN = 16


@kernel_inline
def put_hex(buf, at, value, digits):
    for j in range(digits):
        d = (value >> (4 * (digits - 1 - j))) & 15
        buf[at + j] = d + 48 if d < 10 else d + 87


@kernel_inline
def write_payload(payload, i, producer, seq, t):
    at = i * PAYLOAD_LEN
    payload[at] = 34        # '"'
    put_hex(payload, at + 1, producer, PRODUCER_DIGITS)
    put_hex(payload, at + 1 + PRODUCER_DIGITS, seq, SEQ_DIGITS)
    put_hex(payload, at + 1 + PRODUCER_DIGITS + SEQ_DIGITS, t, TIME_DIGITS)
    payload[at + PAYLOAD_LEN - 1] = 34


@kernel_inline
def set_bit(bits, seq):
    """Set ``seq``'s bit; 0 when the bitmap is too small to hold it."""
    word = seq >> 6
    if word < bits.size:
        bits[word] |= np.int64(1) << (seq & 63)
        return 1
    return 0


@kernel_inline
def publish_watermark(nm, done_seq, landed):
    """Seqlock: odd version while the pair changes, so a reader never mixes two calls."""
    v = nm[NM_VERSION]
    store_release(nm, NM_VERSION, v + 1)
    store_release(nm, NM_DONE_SEQ, done_seq)
    store_release(nm, NM_DONE_LANDED, landed)
    store_release(nm, NM_VERSION, v + 2)


@kernel_inline
def stall_if_armed(nm, stop):
    """``stall_producer``: sleep between two calls from STALL_FROM for STALL_FOR ns
    (net-mesh's ingest cannot be paused from outside, so not mid-push)."""
    start = nm[NM_STALL_FROM]
    if start <= 0 or monotonic_ns() < start:
        return
    until = start + nm[NM_STALL_FOR]
    nm[NM_STALL_FROM] = 0
    store_release(nm, NM_STALLING, 1)
    while load_relaxed(stop, STOP_FLAG) == 0:
        left = until - monotonic_ns()
        if left <= 0:
            break
        sleep_ns(min(left, 1_000_000))
    store_release(nm, NM_STALLING, 0)


@kernel
def produce(handle, producer, params, pstate, stop, nm, payload, ptrs, lens,
            refused_bits, ambiguous_bits, call, ingest_fn, batch_fn):
    """Run one producer until its stop condition; returns the events offered.
    ``ingest_fn`` / ``batch_fn``: addresses of ``net_ingest_raw`` /
    ``net_ingest_raw_batch`` in the library that made ``handle``."""
    batch = params[P_BATCH]
    open_loop = params[P_OPEN_LOOP]
    max_events = params[P_MAX_EVENTS]
    deadline = params[P_DEADLINE_NS]
    interval_ps = params[P_INTERVAL_PS]
    t0 = params[P_T0_NS]
    late_after = params[P_LATE_AFTER_NS]
    retry = params[P_RETRY_FAILED]
    base = payload.ctypes.data
    for i in range(batch):
        ptrs[i] = base + i * PAYLOAD_LEN
        lens[i] = PAYLOAD_LEN
    offered_here = 0
    pstate[S_STEP_EVENTS] = 0
    refusal_spins = 0
    while True:
        if load_relaxed(stop, STOP_FLAG) != 0 or pstate[S_DONE] != 0:
            break
        stall_if_armed(nm, stop)
        n = batch
        if max_events >= 0:
            left = max_events - pstate[S_STEP_EVENTS]
            if left <= 0:
                break
            n = min(n, left)
        k = pstate[S_STEP_EVENTS]
        seq0 = pstate[S_NEXT_SEQ]
        if open_loop:
            due_last = t0 + ((k + n - 1) * interval_ps) // 1000
            if deadline > 0 and due_last > deadline:
                break
            now = wait_until_due(due_last)
            for i in range(n):
                write_payload(payload, i, producer, seq0 + i, t0 + ((k + i) * interval_ps) // 1000)
            if now - due_last > late_after:
                pstate[S_LATE] += n
        else:
            now = monotonic_ns()
            if deadline > 0 and now >= deadline:
                break
            for i in range(n):
                write_payload(payload, i, producer, seq0 + i, now)
        pstate[S_NEXT_SEQ] = seq0 + n
        pstate[S_STEP_EVENTS] = k + n
        refused_now = 0
        done_upto = seq0 + n
        if call == BATCH:
            got = ccall_i32(batch_fn, (handle, ptrs.ctypes.data, lens.ctypes.data, n))
            pstate[S_CALLS] += 1
            if got == RC_SHUTTING_DOWN:
                pstate[S_TURNED_AWAY] += n
                nm[NM_SHUTTING_DOWN] += 1
                pstate[S_DONE] = 1
            elif got < 0:
                nm[NM_ERRORS] += n
                nm[NM_LAST_ERROR] = got
                pstate[S_OFFERED] += n
                offered_here += n
            else:
                pstate[S_OFFERED] += n
                offered_here += n
                pstate[S_LANDED] += got
                refused_now = n - got
                pstate[S_REFUSED] += refused_now
                if got == n:
                    for i in range(n):
                        nm[NM_ACCEPTED_SUM] = add_wrap(nm[NM_ACCEPTED_SUM], mix(seq0 + i))
                else:
                    nm[NM_BP_RETURNS] += 1
                    nm[NM_AMBIG_OFFERED] += n
                    nm[NM_AMBIG_LANDED] += got
                    for i in range(n):
                        if set_bit(ambiguous_bits, seq0 + i) == 0:
                            nm[NM_BEYOND_BITMAP] += 1
        else:
            for i in range(n):
                seq = seq0 + i
                addr = base + i * PAYLOAD_LEN
                while True:
                    rc = ccall_i32(ingest_fn, (handle, addr, np.int64(PAYLOAD_LEN)))
                    pstate[S_CALLS] += 1
                    if rc == RC_SHUTTING_DOWN:
                        pstate[S_TURNED_AWAY] += n - i
                        nm[NM_SHUTTING_DOWN] += 1
                        pstate[S_DONE] = 1
                        done_upto = seq
                        break
                    pstate[S_OFFERED] += 1
                    offered_here += 1
                    if rc == RC_OK:
                        pstate[S_LANDED] += 1
                        nm[NM_ACCEPTED_SUM] = add_wrap(nm[NM_ACCEPTED_SUM], mix(seq))
                        break
                    if rc != RC_BACKPRESSURE:
                        nm[NM_ERRORS] += 1
                        nm[NM_LAST_ERROR] = rc
                        break
                    nm[NM_BP_RETURNS] += 1
                    pstate[S_REFUSED] += 1
                    refused_now += 1
                    if retry and load_relaxed(stop, STOP_FLAG) == 0 and not (
                            deadline > 0 and monotonic_ns() >= deadline):
                        # FailProducer's retry policy: offer the same event again
                        pstate[S_RETRIES] += 1
                        refusal_spins = backoff(refusal_spins)
                        continue
                    # given up: this event is refused for good
                    nm[NM_REFUSED_SUM] = add_wrap(nm[NM_REFUSED_SUM], mix(seq))
                    if set_bit(refused_bits, seq) == 0:
                        nm[NM_BEYOND_BITMAP] += 1
                    break
                if pstate[S_DONE] != 0:
                    break
        publish_watermark(nm, done_upto, pstate[S_LANDED])
        if refused_now == 0:
            refusal_spins = 0
        elif not open_loop:
            # a closed loop backs off after refusals instead of spinning on a
            # full ring (on 2 cores a spinning producer starves net-mesh's workers)
            refusal_spins = backoff(refusal_spins)
        if pstate[S_DONE] != 0:
            break
    return offered_here


# --------------------------------------------------------------------------- witness
# per-producer evidence columns (streams.py names them)
(E_RECEIVED, E_DISTINCT, E_DUPLICATES, E_ORDER, E_REFUSED_DELIVERED, E_AMBIG_RECEIVED,
 E_CHECKSUM, E_MIN_SEQ, E_MAX_SEQ, E_BEYOND_SEEN, E_NEVER_SENT, E_LEN) = range(12)
NO_SEQ = -1


@kernel_inline
def hex_value(rows, r, start, digits):
    """Value of ``digits`` hex digits at rows[r, start:]; -1 when one is not hex."""
    v = np.int64(0)
    for j in range(digits):
        c = rows[r, start + j]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        else:
            return np.int64(-1)
        v = (v << 4) | d
    return v


@kernel_inline
def test_bit(bits, words, p, seq):
    word = seq >> 6
    if word >= words:
        return -1
    return (bits[p * words + word] >> (seq & 63)) & 1


@kernel
def account_entries(rows, n, shard, producers, next_seq, last_seq, seen, seen_words,
                    refused, ambiguous, sender_words, out, flush_cuts, flush_marks, flush_got):
    """Account ``n`` stream entries of one shard (hex rows in stream order).

    ``last_seq[shard * producers + p]``: the producer's last seq in this shard so
    far (order check). ``seen``/``refused``/``ambiguous``: per-producer bitmaps,
    ``seen_words`` / ``sender_words`` words each. ``flush_cuts[f]``: how many of
    these rows were in the stream when flush ``f`` returned; ``flush_marks[f, p]``:
    the producer's watermark at that flush's call; ``flush_got[f, p]`` counts
    first receipts below the mark before the cut. Returns rows whose producer id
    or seq was malformed.
    """
    bad = 0
    n_flush = flush_cuts.size
    for r in range(n):
        p = hex_value(rows, r, 0, PRODUCER_DIGITS)
        seq = hex_value(rows, r, PRODUCER_DIGITS, SEQ_DIGITS)
        if p < 0 or seq < 0 or p >= producers:
            bad += 1
            continue
        out[p, E_RECEIVED] += 1
        if seq >= next_seq[p]:
            out[p, E_NEVER_SENT] += 1
        key = shard * producers + p
        if last_seq[key] != NO_SEQ and seq <= last_seq[key]:
            out[p, E_ORDER] += 1
        last_seq[key] = max(last_seq[key], seq)
        if out[p, E_MIN_SEQ] == NO_SEQ or seq < out[p, E_MIN_SEQ]:
            out[p, E_MIN_SEQ] = seq
        out[p, E_MAX_SEQ] = max(out[p, E_MAX_SEQ], seq)
        first = True
        was = test_bit(seen, seen_words, p, seq)
        if was == 1:
            out[p, E_DUPLICATES] += 1
            first = False
        elif was == 0:
            seen[p * seen_words + (seq >> 6)] |= np.int64(1) << (seq & 63)
        else:
            out[p, E_BEYOND_SEEN] += 1
        if not first:
            continue
        out[p, E_DISTINCT] += 1
        if test_bit(refused, sender_words, p, seq) == 1:
            out[p, E_REFUSED_DELIVERED] += 1
        if test_bit(ambiguous, sender_words, p, seq) == 1:
            out[p, E_AMBIG_RECEIVED] += 1
        else:
            out[p, E_CHECKSUM] = add_wrap(out[p, E_CHECKSUM], mix(seq))
        for f in range(n_flush):
            if r < flush_cuts[f] and seq < flush_marks[f, p]:
                flush_got[f, p] += 1
    return bad
