"""THE producer loop (``produce``) and its pieces, as jitted functions: one
kernel for every target, per load model (open or closed loop, a runtime value).

A target supplies only its ingest step, a C function the loop calls by
address (a runtime value, like the modes): the reference bus's ring push
(``load.ring``) or the foreign step (``load.foreign``: a bus's C function
called as a ``load.ccall.CallSpec`` describes it: net-mesh, c-abi, Kafka),
each compiled only by a process whose target uses it. Targets whose producers
are Python threads run ``load.pyloop``, which calls the same pieces
(``load.foreign.py_next`` / ``py_after``). The loop is::

    begin_step(pstate)
    while True:
        n = next_call(...)               # pace, choose shards, number events
        if n == 0: break
        m = n
        while m > 0:
            status, offered, ... = <the step>(m events, landed mask)   # names.INGEST_*
                                         # (inside the target's gate, when it has one)
            m = after_call(...)          # tallies; events to retry (0: batch done)
        if pstate[S_DONE]: break

Every tally here is busbench's own ground truth, kept by the producer and
never read from a bus: events offered past the gate, landed, refused, turned
away, stranded, late, per shard landed (for the flush barrier), and the
checksums of offered / refused / stranded events (``payload.mix``); for a
foreign bus also ``xstate`` (``X_*``): the checksum of the events it accepted,
of those given up, ambiguous batches, undeclared codes, the flush watermark.

Open loop follows wrk2: event k of a step is due at ``t0 + k / rate``; a call
is made when the last event of its batch is due, every event is stamped with
its own intended time (so latency measured from it cannot hide a stalled bus),
and a call made more than ``late_after`` behind schedule counts its events as
late. Nothing is skipped to catch up, but nothing is sent after the step's
deadline either: a producer that fell behind stops at the deadline (plus the
call in progress), and the events its schedule wanted sent by then and it
never sent are counted as ``unsent`` (``unsent``, called by the load
generator when a producer's step ends, for every target). Without that, a
100 ms step at 20M/s in front of a downstream taking 10k events/s worked
through its backlog for minutes. A count step ended early (stop flag: the
watchdog, shutdown's gate) counts the rest of its count as unsent.
"""
import numpy as np

from ..native.atomics import cpu_relax, exchange, fetch_add, load_acquire, load_relaxed, store_release
from ..native.clock import backoff, monotonic_ns, sleep_ns, yield_cpu
from ..native.ffi import ccall_i64
from ..native.jit import kernel, kernel_inline
from ..common.names import (
    INGEST_AMBIGUOUS,
    INGEST_CLOSED,
    INGEST_ERROR,
    INGEST_FAILED,
    INGEST_OK,
    INGEST_REFUSED,
    INGEST_STRANDED,
)
from ..native.payload import SEQ_BITS, SEQ_MASK, add_wrap, mix

# Key distributions (which shard each event goes to).
UNIFORM, ROUND_ROBIN, HOT, ZIPF = 0, 1, 2, 3
KEY_KINDS = {"uniform": UNIFORM, "round_robin": ROUND_ROBIN, "hot": HOT, "zipf": ZIPF}

# params: int64 array, read-only for the kernel
(P_OPEN_LOOP, P_BATCH, P_KEYS, P_HOT_SHARD, P_HOT_PPM, P_RETRY_FAILED, P_LATE_AFTER_NS,
 P_MAX_EVENTS, P_DEADLINE_NS, P_T0_NS, P_INTERVAL_PS, P_SHARDS, P_KEY_SALT, P_PRODUCER,
 P_LEN) = range(15)

GOLDEN = np.int64(-7046029254386353131)   # 0x9E3779B97F4A7C15, Fibonacci hashing

# pstate: int64 array, the producer's own ground truth (persists across steps)
(S_NEXT_SEQ, S_OFFERED, S_LANDED, S_REFUSED, S_TURNED_AWAY, S_STRANDED, S_LATE, S_CALLS,
 S_RNG, S_STEP_EVENTS, S_RETRIES, S_DONE, S_OFFERED_SUM, S_REFUSED_SUM, S_STRANDED_SUM,
 S_BATCH_SUM, S_SPINS, S_NOW, S_RETRYING, S_UNSENT, S_LEN) = range(21)

STOP_FLAG = 0   # index in the runner's stop array

# xstate: int64[X_LEN] (one 128-byte block), a foreign bus's producer tallies beyond pstate
(X_LANDED_SUM,      # checksum of the events known accepted (a witness must match it)
 X_REFUSED_SUM,     # ... of the events refused for good (given up)
 X_CLOSED,          # calls answered "closed" (shut down)
 X_ERRORS,          # events whose call returned an undeclared code
 X_LAST_CODE,       # the last undeclared code
 X_AMBIG_OFFERED,   # events of batch calls partly taken, which ones unknown
 X_AMBIG_LANDED,    # ... how many of them were taken
 X_BEYOND_BITMAP,   # events beyond the refused/ambiguous bitmaps
 X_VERSION, X_DONE_SEQ, X_DONE_LANDED,     # seqlock'd watermark: below DONE_SEQ every call returned
 X_STALL_FROM, X_STALL_FOR, X_STALLING,    # the stall_producer fault
 X_REFUSALS,        # calls answered "refused" (or a batch partly taken)
 X_UNDECLARED,      # calls answered with an undeclared code
 ) = range(16)
X_LEN = 16

# gate: int64[GATE_LEN], shared by a target's producers (one 128-byte block per word):
# a closed flag and the producers inside an ingest call (``gate_enter``); a target
# frees its handle only once it closed the gate and no call is in flight
G_CLOSED, G_INFLIGHT = 0, 16
GATE_LEN = 32

# frame: int64[FRAME_LEN], what ``produce`` hands the step it calls by address (the
# target's: ``load.ring`` for the reference bus, ``load.foreign`` for a C function):
# the step's address, the arrays it works on (address, length), what it answers
# beyond its status
(F_STEP, F_FOREIGN,                               # set by the target's side
 F_CALLS, F_PAYLOAD, F_ROWS, F_WIDTH, F_PTRS, F_LENS, F_REFUSED, F_REFUSED_LEN,
 F_AMBIGUOUS, F_AMBIGUOUS_LEN,                    # ... for the foreign step (load.foreign)
 F_BUS, F_WRITER, F_ORDER, F_ORDER_LEN, F_SHARD_COUNTS, F_SHARD_COUNTS_LEN,  # ... the ring's
 F_XSTATE, F_SHARDS, F_VALUES, F_T_INT, F_LANDED, F_BATCH, F_RETRY, F_NOW,  # set by produce
 F_OFFERED, F_GOT, F_MADE,                        # the step's answer
 FRAME_LEN) = range(30)
#: ``int64 step(frame address, phase, m, status, again, offered)``: a step's C signature
STEP_SIGNATURE = "int64(int64, int64, int64, int64, int64, int64)"
# a step's two calls per ingest call: make it (events [0, m)), then settle its events
# after the tallies (``status``, ``again``, ``offered``: after_call's view of the call)
PHASE_CALL, PHASE_SETTLE = 0, 1
# landed mask values, per event of a call
NOT_LANDED, LANDED, LOST = 0, 1, 2



@kernel_inline
def splitmix(pstate):
    pstate[S_RNG] += np.int64(-7046029254386353131)   # 0x9E3779B97F4A7C15
    z = pstate[S_RNG]
    z = (z ^ ((z >> 30) & 0x3FFFFFFFF)) * np.int64(-4658895280553007687)
    z = (z ^ ((z >> 27) & 0x1FFFFFFFFF)) * np.int64(-7723592293110705685)
    return z ^ ((z >> 31) & 0x1FFFFFFFF)


@kernel
def sum_seq_mix(seqs, n):
    """sum(payload.mix(seqs[:n])) mod 2**64, as int64 (the witness side of a checksum)."""
    total = np.int64(0)
    for i in range(n):
        total = add_wrap(total, mix(seqs[i]))
    return total


@kernel_inline
def choose_shard(params, pstate, zipf_cdf, seq):
    shards = params[P_SHARDS]
    kind = params[P_KEYS]
    if shards == 1:
        return 0
    if kind == ROUND_ROBIN:
        return seq % shards
    if kind == UNIFORM:
        # The event's key is (producer salt, seq); its shard is a Fibonacci hash
        # of the key reduced by multiply-shift: what a bus does with a key, and
        # ~0.3 ns instead of a random draw per event.
        h = ((seq ^ params[P_KEY_SALT]) * GOLDEN >> 32) & 0xFFFFFFFF
        return (h * shards) >> 32
    x = splitmix(pstate)
    # multiply-shift reduction of 32 random bits to [0, shards), as net-mesh does
    r32 = (x >> 16) & 0xFFFFFFFF
    if kind == HOT:
        hot = params[P_HOT_SHARD]
        if ((x >> 48) & 0xFFFF) * 1_000_000 < params[P_HOT_PPM] * 65536:
            return hot
        other = (r32 * (shards - 1)) >> 32
        return other if other < hot else other + 1
    # ZIPF over shard ranks: inverse CDF by binary search
    u = r32 / 4294967296.0
    lo, hi = 0, shards - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if zipf_cdf[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def wait_until_due_or_stop(due, stop):
    """Sleep while the due time is far, spin politely when it is near, and watch
    the stop flag: returns the time, or -1 when the flag went up meanwhile (a slow schedule must not keep a
    producer asleep past a stop: the watchdog, a flush under load ending).
    Sleeps in slices of at most 2 ms so the flag is seen promptly."""
    spins = 0
    while True:
        now = monotonic_ns()
        left = due - now
        if left <= 0:
            return now
        if load_relaxed(stop, STOP_FLAG) != 0:
            return -1
        if left > 150_000:
            sleep_ns(min(left - 100_000, 2_000_000))
        elif spins < 64:
            cpu_relax()
            spins += 1
        else:
            yield_cpu()


@kernel_inline
def begin_step(pstate):
    pstate[S_STEP_EVENTS] = 0


@kernel_inline
def next_call(params, pstate, zipf_cdf, stop, shards_buf, values, t_int):
    """Pace the next ingest call and fill its events. Returns how many events
    (0: the producer's stop condition holds). ``pstate[S_NOW]`` is the call's
    send time. The events are fresh: seqs [next_seq, next_seq + n). Their
    checksum is not summed here (3-10 ns an event measured on this hot path):
    the offered checksum is the sum over [0, next_seq), computed off the hot
    path (payload.mix_range_sum), plus the adjustments after_call keeps."""
    if load_relaxed(stop, STOP_FLAG) != 0 or pstate[S_DONE] != 0:
        return 0
    n = params[P_BATCH]
    max_events = params[P_MAX_EVENTS]
    if max_events >= 0:
        left = max_events - pstate[S_STEP_EVENTS]
        if left <= 0:
            return 0
        n = min(n, left)
    k = pstate[S_STEP_EVENTS]
    deadline = params[P_DEADLINE_NS]
    if params[P_OPEN_LOOP]:
        t0 = params[P_T0_NS]
        interval_ps = params[P_INTERVAL_PS]
        due_last = t0 + ((k + n - 1) * interval_ps) // 1000
        if deadline > 0 and (due_last > deadline or monotonic_ns() >= deadline):
            return 0     # behind schedule past the step's end: the rest is unsent
        now = wait_until_due_or_stop(due_last, stop)
        if now < 0:
            return 0
        for i in range(n):
            t_int[i] = t0 + ((k + i) * interval_ps) // 1000
        if now - due_last > params[P_LATE_AFTER_NS]:
            pstate[S_LATE] += n
    else:
        now = monotonic_ns()
        if deadline > 0 and now >= deadline:
            return 0
        for i in range(n):
            t_int[i] = now
    high = params[P_PRODUCER] << SEQ_BITS
    n_shards = params[P_SHARDS]
    seq0 = pstate[S_NEXT_SEQ]
    if params[P_KEYS] == UNIFORM and n_shards > 1:
        # The common case in a tight loop of its own (LLVM vectorizes it):
        # through choose_shard it cost ~1 ns more per event.
        salt = params[P_KEY_SALT]
        for i in range(n):
            values[i] = high | (seq0 + i)
            h = (((seq0 + i) ^ salt) * GOLDEN >> 32) & 0xFFFFFFFF
            shards_buf[i] = (h * n_shards) >> 32
    else:
        for i in range(n):
            values[i] = high | (seq0 + i)
            shards_buf[i] = choose_shard(params, pstate, zipf_cdf, seq0 + i)
    pstate[S_NEXT_SEQ] = seq0 + n
    pstate[S_STEP_EVENTS] = k + n
    pstate[S_NOW] = now
    pstate[S_RETRYING] = 0
    return n


@kernel_inline
def count_landed(by_shard, shards_buf, values, landed, m, all_landed):
    """Landed events per shard, and the last one's seq (the flush barrier's
    producer-side evidence): ``by_shard[s]`` counts, ``by_shard[shards + s]``
    holds the last seq landed on shard s (-1 before any)."""
    shards = by_shard.shape[0] // 2
    if shards == 1:
        if all_landed:
            by_shard[0] += m
            by_shard[1] = values[m - 1] & SEQ_MASK
        else:
            for i in range(m):
                if landed[i] == LANDED:
                    by_shard[0] += 1
                    by_shard[1] = values[i] & SEQ_MASK
    else:
        for i in range(m):
            if all_landed or landed[i] == LANDED:
                s = shards_buf[i]
                by_shard[s] += 1
                by_shard[shards + s] = values[i] & SEQ_MASK


@kernel_inline
def scan_mask(values, landed, m):
    """Over events [0, m): (landed, refused, checksum of the refused, checksum of the landed)."""
    n_landed = 0
    n_refused = 0
    refused_sum = np.int64(0)
    landed_sum = np.int64(0)
    for i in range(m):
        if landed[i] == LANDED:
            n_landed += 1
            landed_sum = add_wrap(landed_sum, mix(values[i] & SEQ_MASK))
        elif landed[i] == NOT_LANDED:
            n_refused += 1
            refused_sum = add_wrap(refused_sum, mix(values[i] & SEQ_MASK))
    return n_landed, n_refused, refused_sum, landed_sum


@kernel_inline
def withdraw(pstate, values, start, m):
    """Events [start, m) were made for this step and never offered (the producer
    stopped first): out of the step's sent count (they count as unsent) and out
    of the offered checksum (they are fresh: a retry keeps offered ones in front)."""
    if m <= start:
        return
    s = np.int64(0)
    for i in range(start, m):
        s = add_wrap(s, mix(values[i] & SEQ_MASK))
    pstate[S_OFFERED_SUM] -= s
    pstate[S_STEP_EVENTS] -= m - start


@kernel
def after_call(params, pstate, xstate, by_shard, stop, status, m, offered, got, made, landed,
               values, shards_buf, t_int, per_event_sums):
    """Tally one ingest call of ``m`` events, of which [0, ``offered``) were
    offered (the rest turned away when ``status`` is CLOSED, else never
    offered). ``landed[i]``: LANDED, NOT_LANDED (refused) or LOST (an
    undeclared code, tallied by the step); ``got``: events taken when
    ``status`` is AMBIGUOUS (which ones is unknown); ``made``: calls made.
    With ``per_event_sums`` the checksum of the events known landed is kept in
    ``xstate[X_LANDED_SUM]`` (a witness downstream must match it).

    Returns how many events to offer again (the retry policy compacted them to
    the front of the buffers), or 0 when this batch is done. Sets
    ``pstate[S_DONE]`` when the producer must stop."""
    pstate[S_CALLS] += made
    again = pstate[S_RETRYING]      # events at the front offered before (a retry's)
    if status == INGEST_OK:
        pstate[S_OFFERED] += m
        if again:
            pstate[S_OFFERED_SUM] += pstate[S_BATCH_SUM]    # offered again
        pstate[S_LANDED] += m
        count_landed(by_shard, shards_buf, values, landed, m, True)
        if per_event_sums:
            s = xstate[X_LANDED_SUM]
            for i in range(m):
                s = add_wrap(s, mix(values[i] & SEQ_MASK))
            xstate[X_LANDED_SUM] = s
        pstate[S_SPINS] = 0
        return 0
    if status == INGEST_CLOSED:
        pstate[S_TURNED_AWAY] += m - offered
        pstate[S_DONE] = 1
        adjust = np.int64(0)
        for i in range(m):
            if i < offered and i < again:
                adjust = add_wrap(adjust, mix(values[i] & SEQ_MASK))     # offered again
            elif i >= offered and i >= again:
                adjust -= mix(values[i] & SEQ_MASK)     # fresh, never offered: not in the sum
        pstate[S_OFFERED_SUM] += adjust
        if offered == 0:
            return 0
    elif again:
        pstate[S_OFFERED_SUM] += pstate[S_BATCH_SUM]
    pstate[S_OFFERED] += offered
    open_loop = params[P_OPEN_LOOP]
    if status == INGEST_AMBIGUOUS:
        pstate[S_LANDED] += got
        pstate[S_REFUSED] += offered - got
        xstate[X_AMBIG_OFFERED] += offered
        xstate[X_AMBIG_LANDED] += got
        if not open_loop:
            pstate[S_SPINS] = backoff(pstate[S_SPINS])
        return 0
    count_landed(by_shard, shards_buf, values, landed, offered, False)
    n_landed, n_refused, refused_sum, landed_sum = scan_mask(values, landed, offered)
    pstate[S_LANDED] += n_landed
    if per_event_sums:
        xstate[X_LANDED_SUM] = add_wrap(xstate[X_LANDED_SUM], landed_sum)
    if status == INGEST_STRANDED:
        pstate[S_STRANDED] += n_refused
        pstate[S_STRANDED_SUM] += refused_sum
        pstate[S_DONE] = 1
        return 0
    pstate[S_REFUSED] += n_refused
    pstate[S_REFUSED_SUM] += refused_sum
    if status == INGEST_CLOSED:
        return 0
    if status == INGEST_ERROR:
        pstate[S_DONE] = 1
        withdraw(pstate, values, offered, m)
        return 0
    if n_refused == 0 and offered == m:
        pstate[S_SPINS] = 0
        return 0
    if not open_loop and n_refused > 0:
        # A closed loop goes as fast as the bus takes events: after a call with
        # refusals it backs off (spin, then yield, then sleep) instead of
        # spinning on a full ring. On 2 cores a spinning producer sharing a core
        # with the worker starved it (samples of 4-6 M/s with 97% dropped).
        pstate[S_SPINS] = backoff(pstate[S_SPINS])
    if status == INGEST_FAILED and params[P_RETRY_FAILED] and not stopping(params, stop):
        if refused_before_landed(shards_buf, landed, offered):
            # The bus took an event after one it refused on the same shard: offered
            # again under its old number, the refused one would land behind a later
            # one of this producer, and busbench's own retry would break the
            # per-(producer, shard) order ground_truth judges. So the refused attempt
            # stays counted refused (given up) and the events go again as new ones,
            # numbered after every one sent so far (``renumber``, once the caller has
            # settled the given-up ones): a negative answer says so.
            return -(n_refused + m - offered)
        # Retry policy: offer the refused events again (same seq), in order,
        # then those never offered.
        j = 0
        for i in range(m):
            if i >= offered or landed[i] == NOT_LANDED:
                values[j] = values[i]
                shards_buf[j] = shards_buf[i]
                t_int[j] = t_int[i]
                j += 1
        pstate[S_RETRIES] += 1
        pstate[S_BATCH_SUM] = refused_sum
        pstate[S_RETRYING] = n_refused
        yield_cpu()
        return j
    withdraw(pstate, values, offered, m)
    return 0


@kernel_inline
def refused_before_landed(shards_buf, landed, offered):
    """Whether an event was taken after one refused on its shard, in this call."""
    for i in range(offered):
        if landed[i] == NOT_LANDED:
            for k in range(i + 1, offered):
                if landed[k] == LANDED and shards_buf[k] == shards_buf[i]:
                    return True
    return False


@kernel
def renumber(params, pstate, values, shards_buf, t_int, landed, m, offered):
    """After ``after_call`` answered a negative count: the refused events (given up,
    already settled) and those never offered go again as fresh events, in order,
    numbered after every event so far, each keeping its shard and intended time.
    Never-offered events leave the offered checksum under their old numbers (their
    new numbers are in the range sum ``next_call`` keeps). Returns how many."""
    high = params[P_PRODUCER] << SEQ_BITS
    fresh = pstate[S_NEXT_SEQ]
    withdrawn = np.int64(0)
    j = 0
    for i in range(m):
        if i >= offered or landed[i] == NOT_LANDED:
            if i >= offered:
                withdrawn = add_wrap(withdrawn, mix(values[i] & SEQ_MASK))
            values[j] = high | (fresh + j)
            shards_buf[j] = shards_buf[i]
            t_int[j] = t_int[i]
            j += 1
    pstate[S_OFFERED_SUM] -= withdrawn
    pstate[S_NEXT_SEQ] = fresh + j
    pstate[S_RETRIES] += 1
    pstate[S_RETRYING] = 0
    pstate[S_BATCH_SUM] = 0
    yield_cpu()
    return j


@kernel_inline
def stopping(params, stop):
    deadline = params[P_DEADLINE_NS]
    return load_relaxed(stop, STOP_FLAG) != 0 or (deadline > 0 and monotonic_ns() >= deadline)


@kernel_inline
def given_up(status, again, landed, offered):
    """Whether this call leaves refused events behind for good (not retried, not stranded)."""
    return again == 0 and (status == INGEST_REFUSED or status == INGEST_FAILED
                           or status == INGEST_CLOSED or status == INGEST_ERROR)


@kernel_inline
def publish_watermark(xstate, done_seq, landed):
    """Seqlock: odd version while the pair changes, so a reader never mixes two calls."""
    v = xstate[X_VERSION]
    store_release(xstate, X_VERSION, v + 1)
    store_release(xstate, X_DONE_SEQ, done_seq)
    store_release(xstate, X_DONE_LANDED, landed)
    store_release(xstate, X_VERSION, v + 2)


@kernel_inline
def stall_if_armed(xstate, stop):
    """The ``stall_producer`` fault on a foreign bus: sleep between two calls from
    X_STALL_FROM for X_STALL_FOR ns (a foreign ingest cannot be paused mid-push)."""
    start = xstate[X_STALL_FROM]
    if start <= 0 or monotonic_ns() < start:
        return
    until = start + xstate[X_STALL_FOR]
    xstate[X_STALL_FROM] = 0
    store_release(xstate, X_STALLING, 1)
    while load_relaxed(stop, STOP_FLAG) == 0:
        left = until - monotonic_ns()
        if left <= 0:
            break
        sleep_ns(min(left, 1_000_000))
    store_release(xstate, X_STALLING, 0)


@kernel_inline
def done_upto(status, values, offered, m, seq_end):
    """The watermark after a batch: below it every event's call has returned
    (``seq_end``: the producer's next seq once the batch is done; a renumbered
    retry takes it past where the batch began)."""
    if (status == INGEST_CLOSED or status == INGEST_ERROR) and offered < m:
        return values[offered] & SEQ_MASK
    return seq_end


@kernel
def produce(params, pstate, xstate, by_shard, zipf_cdf, stop, shards_buf, values, t_int, landed,
            frame, gate):
    """THE producer loop: run one producer until its stop condition (GIL released).

    An ingest call is the target's *step*, a C function this kernel calls by
    address (``frame[F_STEP]``), as it calls a bus's own C functions: the
    reference bus's ring push (``load.ring``) or the foreign step
    (``load.foreign``: payloads written, the bus's C ingest function called as a
    ``load.ccall.CallSpec`` describes). ``frame`` (``FRAME_LEN``, filled by the
    step's ``new_frame``) names the arrays the step works on; this kernel adds
    those of each call. A step is compiled apart, and only by a target that
    uses it, so this one kernel serves every target and a process compiles the
    steps of its own target only. A step makes the call (PHASE_CALL: status
    returned, events offered / taken / calls made in the frame), then settles
    the call's events once they are tallied (PHASE_SETTLE). Pacing, late and
    unsent, stop, deadline, retries, backoff and every tally are here and in
    ``next_call`` / ``after_call``, the same for every target;
    ``frame[F_FOREIGN]`` says whether the bus is foreign (busbench keeps its
    accepted-events checksum, a flush watermark and the stall fault itself).

    ``gate`` (``new_gate()``, or empty: none): every ingest call is made inside
    it (``gate_enter`` / ``gate_leave``); once the target closed it, the call's
    events are turned away without touching the bus and the producer stops, so
    the target may free what the call uses once ``gate_inflight`` reads 0."""
    foreign = frame[F_FOREIGN] != 0
    fn = frame[F_STEP]
    at = np.int64(frame.ctypes.data)
    frame[F_XSTATE] = xstate.ctypes.data
    frame[F_SHARDS] = shards_buf.ctypes.data
    frame[F_VALUES] = values.ctypes.data
    frame[F_T_INT] = t_int.ctypes.data
    frame[F_LANDED] = landed.ctypes.data
    frame[F_BATCH] = landed.shape[0]
    frame[F_RETRY] = 1 if params[P_RETRY_FAILED] != 0 else 0
    begin_step(pstate)
    while True:
        if foreign:
            stall_if_armed(xstate, stop)
        n = next_call(params, pstate, zipf_cdf, stop, shards_buf, values, t_int)
        if n == 0:
            break
        m = n
        status = INGEST_OK
        offered = n
        while m > 0:
            if gate_enter(gate):
                frame[F_NOW] = pstate[S_NOW]
                status = ccall_i64(fn, (at, PHASE_CALL, m, 0, 0, 0))
                offered, got, made = frame[F_OFFERED], frame[F_GOT], frame[F_MADE]
                gate_leave(gate)
            else:
                # closed by the target: no call, the events turned away, the producer stops
                status, offered, got, made = INGEST_CLOSED, 0, 0, 0
            again = after_call(params, pstate, xstate, by_shard, stop, status, m, offered, got,
                               made, landed, values, shards_buf, t_int, foreign)
            if offered > 0:
                ccall_i64(fn, (at, PHASE_SETTLE, m, status, max(again, 0), offered))
            if again < 0:
                again = renumber(params, pstate, values, shards_buf, t_int, landed, m, offered)
            if again == 0:
                break
            m = again
        if foreign:
            publish_watermark(xstate, done_upto(status, values, offered, m, pstate[S_NEXT_SEQ]),
                              pstate[S_LANDED])
        if pstate[S_DONE] != 0:
            break


def new_frame(step_address: int, foreign: bool) -> np.ndarray:
    """A frame for ``produce`` with the step at ``step_address`` (a step's
    ``new_frame`` fills in its arrays)."""
    frame = np.zeros(FRAME_LEN, np.int64)
    frame[F_STEP] = step_address
    frame[F_FOREIGN] = 1 if foreign else 0
    return frame


# --------------------------------------------------------------------------- the gate
def new_gate() -> np.ndarray:
    """An open gate, for a target that must know when no producer is inside its ingest
    call (before it frees the handle the call uses): shared by its producers."""
    return np.zeros(GATE_LEN, np.int64)


@kernel_inline
def gate_enter(gate):
    """Enter the gate for one ingest call: False (and not entered) once it is closed.
    In-flight is raised before closed is read, and ``close_gate`` sets closed before it
    reads in-flight, both sequentially consistent: either the call sees closed, or the
    closer sees the call in flight (never neither)."""
    if gate.size == 0:
        return True
    fetch_add(gate, G_INFLIGHT, 1)
    if load_acquire(gate, G_CLOSED) != 0:
        fetch_add(gate, G_INFLIGHT, -1)
        return False
    return True


@kernel_inline
def gate_leave(gate):
    if gate.size != 0:
        fetch_add(gate, G_INFLIGHT, -1)


@kernel
def close_gate(gate):
    """Close the gate (an atomic exchange: a full barrier, so the in-flight count read
    after it is not read before it); returns the calls in flight. From Python."""
    exchange(gate, G_CLOSED, 1)
    return load_acquire(gate, G_INFLIGHT)


@kernel
def gate_inflight(gate):
    """The ingest calls inside the gate now (an acquire load). From Python."""
    return load_acquire(gate, G_INFLIGHT)


def empty_xstate() -> np.ndarray:
    return np.zeros(X_LEN, np.int64)


@kernel
def unsent(params, pstate, now):
    """Events this step's schedule wanted sent by its end and that were never
    sent: the rest of a count step, or (open loop) the whole batches due by the
    deadline, or by ``now`` when stopped earlier. A closed loop without a count
    has no schedule: 0. ``now`` is CLOCK_MONOTONIC (``time.monotonic_ns``)."""
    sent = pstate[S_STEP_EVENTS]
    max_events = params[P_MAX_EVENTS]
    if max_events >= 0:
        return max(0, max_events - sent)
    if params[P_OPEN_LOOP] == 0:
        return 0
    deadline = params[P_DEADLINE_NS]
    end = deadline if (deadline > 0 and now >= deadline) else now
    t0 = params[P_T0_NS]
    if end < t0:
        return 0
    due = ((end - t0) * 1000) // params[P_INTERVAL_PS] + 1
    batch = params[P_BATCH]
    return max(0, (due // batch) * batch - sent)

# --------------------------------------------------------------------------- from Python
def events_buffers(batch: int) -> tuple:
    """One call's events: (shards, values, intended times, landed mask), ``batch`` each."""
    return tuple(np.zeros(batch, np.int64) for _ in range(4))


def warm_produce() -> None:
    """Compile ``produce`` (or load it from the cache) without a step: a run of no
    events returns before its first call."""
    params = np.zeros(P_LEN, np.int64)
    params[P_BATCH] = 1
    params[P_MAX_EVENTS] = 0
    events = events_buffers(1)
    produce(params, np.zeros(S_LEN, np.int64), empty_xstate(), np.zeros(2, np.int64),
            np.ones(1), np.zeros(16, np.int64), *events, new_frame(0, False),
            np.zeros(0, np.int64))


def warm_run_side() -> None:
    """The kernels a run calls from Python around and after its load steps (a step's
    unsent count, the gate, checksums of ranges, latency percentiles), compiled or
    loaded now, with the argument types a run hands them: a first run then compiles
    nothing once its load started (the cold start's helper does this while the loop
    or a step compiles elsewhere)."""
    from ..native import histogram as H
    from ..native.payload import mix_range_sum
    unsent(np.zeros(P_LEN, np.int64), np.zeros(S_LEN, np.int64), 0)
    gate = new_gate()
    close_gate(gate)
    gate_inflight(gate)
    mix_range_sum(0, 1)
    hists = H.new_histograms(2)
    hists[0, H.COUNT], hists[0, H.MIN], hists[0, H.MAX] = 2, 1, 3
    hists[0, H.HEADER_LEN + 1] = hists[0, H.HEADER_LEN + 3] = 1
    H.percentile(H.merge(hists), 50)            # merge_into, bucket_value
