"""net-mesh's side of busbench's producer loop, and the witness's accounting kernel.

Producers run busbench's one loop (``load.kernels.produce``) with a C-call
step: ``net_ingest_raw`` once per event (``call = SINGLE``: each refusal is
known per event) or ``net_ingest_raw_batch`` once per batch (``call = BATCH``:
net-mesh only says how many it accepted, not which: ambiguous). The functions
arrive as addresses taken from whichever release's library the target loaded
by path (``call_spec``), so one cached kernel drives several releases side by
side in one process, without the GIL.

Payload: ``native.hex_payload`` (34 bytes of valid JSON, 32 hex digits naming
producer, seq and time). net-mesh picks the shard from a hash of the payload;
busbench's key distributions cannot steer it.

Producer-side tallies beyond ``pstate``: the loop's ``xstate`` (``NM_*`` below
name its slots as net-mesh's evidence reads them): checksums of the events
known accepted and known refused, the events of batch calls partly refused
("ambiguous"), -8 and other error returns, and the seqlock-protected
watermark that flush evidence reads at the moment flush is called.
"""
import numpy as np

from ...native.jit import kernel, kernel_inline
from ...load import kernels as K
from ...load.ccall import Arg, CallSpec
from ...native.hex_payload import HEX_DIGITS, MAX_PRODUCERS, PRODUCER_DIGITS, SEQ_DIGITS, TIME_DIGITS  # noqa: F401
from ...native.hex_payload import SIZE as PAYLOAD_LEN  # noqa: F401
from ...native.payload import add_wrap, mix

RC_OK, RC_BACKPRESSURE, RC_SHUTTING_DOWN = 0, -5, -8
SINGLE, BATCH = 0, 1

# nm: the producer's xstate (load.kernels.X_*), by net-mesh's names
NM_ACCEPTED_SUM, NM_REFUSED_SUM, NM_SHUTTING_DOWN = K.X_LANDED_SUM, K.X_REFUSED_SUM, K.X_CLOSED
NM_ERRORS, NM_LAST_ERROR = K.X_ERRORS, K.X_LAST_CODE
NM_AMBIG_OFFERED, NM_AMBIG_LANDED, NM_BEYOND_BITMAP = K.X_AMBIG_OFFERED, K.X_AMBIG_LANDED, K.X_BEYOND_BITMAP
NM_VERSION, NM_DONE_SEQ, NM_DONE_LANDED = K.X_VERSION, K.X_DONE_SEQ, K.X_DONE_LANDED
NM_STALL_FROM, NM_STALL_FOR, NM_STALLING = K.X_STALL_FROM, K.X_STALL_FOR, K.X_STALLING
NM_BP_RETURNS = K.X_REFUSALS
NM_LEN = K.X_LEN


def call_spec(call: int, handle: int, ingest_fn: int, batch_fn: int) -> CallSpec:
    """net_ingest_raw(handle, ptr, len) or net_ingest_raw_batch(handle, ptrs, lens, n), as data:
    0 taken, -5 backpressure (refused), -8 shutting down; other codes are counted as
    errors and the producer goes on; a batch's count does not say which were taken."""
    if call == BATCH:
        return CallSpec(address=batch_fn, args=(Arg.const(handle), Arg.PTRS, Arg.LENS, Arg.N),
                        batch=True, returns=32, ok=(), closed=(RC_SHUTTING_DOWN,),
                        batch_count="unknown", undeclared="count", payload="hex",
                        name="net_ingest_raw_batch")
    return CallSpec(address=ingest_fn, args=(Arg.const(handle), Arg.PTR, Arg.LEN), returns=32,
                    ok=(RC_OK,), refused=(RC_BACKPRESSURE,), closed=(RC_SHUTTING_DOWN,),
                    undeclared="count", payload="hex", name="net_ingest_raw")


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
