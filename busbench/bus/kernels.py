"""The reference bus's data path, as jitted pure functions over arrays.

Everything a kernel touches lives in ``BusState``, a named tuple of numpy
arrays owned by ``ReferenceBus`` (core.py). Modes, layouts, strides and
mutations are values in ``cfg``: one compiled kernel serves every variant.

Rings are bounded, one per shard, with Vyukov-style per-slot sequence numbers:
slot ``i`` is free for position ``p`` when ``seq == p`` and holds the event of
position ``p`` when ``seq == p + 1``. Producers claim runs of positions with one
CAS on the shard's tail; the shard's worker claims runs with one CAS on its
head (a CAS, not a store, because ``drop_oldest`` producers evict from the head
too).

Every ingest call goes through a per-producer in-flight stripe (its own
128-byte block): IDLE -> ACTIVE on entry, ACTIVE -> COMMIT -> ACTIVE around
every change of counters or rings, IDLE at the end. Shutdown may turn ACTIVE
into ABANDONED once its grace deadline has passed; what the stripe still had
PENDING is then counted dropped exactly once, by shutdown, and the producer,
when it wakes, finds its COMMIT refused and touches nothing.
"""
from collections import namedtuple

import numpy as np
from ..native.jit import kernel, kernel_inline

from ..native import histogram
from ..native.payload import SEQ_BITS, SEQ_MASK, mix
from ..native.atomics import (compare_and_swap, cpu_relax, fetch_add, fetch_or, load_acquire,
                      load_relaxed, store_relaxed, store_release)
from ..native.clock import backoff, monotonic_ns, sleep_ns
from .config import (ABANDONED, ACTIVE, BLOCK, CFG_ADAPTER, CFG_BLOCK_TIMEOUT_NS,
                     CFG_CAPACITY, CFG_COUNTER_STRIDE, CFG_FLAKY_BACKOFF_NS,
                     CFG_FLAKY_FAIL_PPM, CFG_FLAKY_RETRIES, CFG_LATENCY, CFG_MASK, LATENCY_TWO_STAMPS,
                     CFG_MAX_DELAY_NS, CFG_MAX_EVENTS, CFG_MODE, CFG_MUTATIONS,
                     CFG_PS_STRIDE, CFG_SHARDS, CFG_SLOW_PER_BATCH_NS,
                     CFG_SLOW_PER_EVENT_NS, CFG_VERIFY_WORDS, CFG_WRITER_STRIDE, COMMIT,
                     CTRL_FLUSHING, CTRL_GATE, CTRL_PHASE, CTRL_RELEASE, CTRL_STALL_FROM,
                     CTRL_STALL_UNTIL, DROP_OLDEST, DROPPED, FAIL_PRODUCER, FAILED, FLAKY,
                     IDLE, M_BATCH_ANNOUNCED_LATE, M_DISPATCH_FROZEN, M_FINAL_SINGLE_PASS, M_REFUSAL_NOT_INGESTED,
                     M_UNCOUNTED_EVICTION, NO_BATCH, OK, PHASE_DRAIN, PHASE_STOP, POS_BATCH_START,
                     POS_EVICTIONS, POS_FIELDS, POS_HEAD, POS_SETTLED, POS_TAIL,
                     EVICT_BEGUN, EVICT_ENDED,
                     SHUTTING_DOWN, SLOT, SLOW, ST_PENDING, ST_STALL_FOR,
                     ST_STALL_FROM, ST_STALLING, ST_STATE, STRANDED, VERIFY)
from .layout import BATCHES_DISPATCHED, EVENTS_DISPATCHED, EVENTS_DROPPED, EVENTS_INGESTED

BusState = namedtuple("BusState", [
    "cfg",          # int64[CFG_LEN], read-only
    "ctrl",         # int64[CTRL_LEN * 16]: gate, phase, flushing, adapter stall window
    "pos",          # int64[shards * POS_FIELDS * 16]: tail, head, batch start, settled, evictions
    "ring_seq",     # int64[shards * capacity]
    "ring_val",     # int64[shards * capacity]: producer << 40 | seq
    "ring_t_int",   # int64[shards * capacity]: intended send time (latency, corrected)
    "ring_t_sent",  # int64[shards * capacity]: actual ingest time (open loop only)
    "counters",     # int64[...]: EventBusStats, indexed through the layout's strides
    "stripes",      # int64[writers * 16]: in-flight state per writer
    "batch_val",    # int64[shards * max_events]: each shard's batch being assembled
    "batch_t_int",
    "batch_t_sent",
    "wshard",       # int64[shards * 16]: batch length, time of first event (worker-owned)
    "v_recv",       # int64[producers * verify_words]: bitmap of received (producer, seq), optional
    "v_drop",       # int64[producers * verify_words]: bitmap of events reported dropped, optional
    # Per (shard, producer), at index shard * cfg[CFG_PS_STRIDE] + producer (each
    # shard's row on its own cache lines: rows are written by different workers):
    "v_last",       # last seq the verify adapter received (-1: none yet)
    "v_count",      # events the verify adapter received
    "v_sum",        # checksum (payload.mix) of the seqs it received
    "ev_count",     # events evicted (drop_oldest), by the producer that sent them
    "ev_sum",
    "rj_count",     # events rejected by the adapter after retries
    "rj_sum",
    "v_anomaly",    # int64[workers * 16]: duplicates (bitmaps), order violations, beyond bitmap
    "hist_int",     # int64[workers, HIST_LEN]: latency from intended send time
    "hist_sent",    # int64[workers, HIST_LEN]: latency from actual ingest time
    "wrk",          # int64[workers * 16]: per-worker rng state and tallies
])

V_DUPLICATES, V_ORDER, V_BEYOND_BITMAP = 0, 1, 2
W_RNG, W_ATTEMPTS_FAILED, W_LOOPS = 0, 1, 2

MIN_RUN = 64          # events a worker waits for before taking a run (unless eager)
EAGER_AFTER = 16      # idle worker loops after which it takes whatever is there


# --------------------------------------------------------------------------- helpers
@kernel_inline
def count(st, counter, writer, n):
    """Add n to a counter, through the layout's strides."""
    ws = st.cfg[CFG_WRITER_STRIDE]
    if ws == 0:
        fetch_add(st.counters, counter * st.cfg[CFG_COUNTER_STRIDE], n)
    else:   # striped: this writer's own slot, so a plain (relaxed) store suffices
        i = counter * st.cfg[CFG_COUNTER_STRIDE] + writer * ws
        store_relaxed(st.counters, i, load_relaxed(st.counters, i) + n)




@kernel_inline
def pos_index(shard, field):
    return (shard * POS_FIELDS + field) * SLOT


@kernel
def mark_dropped(st, value):
    """Record (producer, seq) as reported dropped, for the verify adapter's checks."""
    words = st.cfg[CFG_VERIFY_WORDS]
    p = value >> SEQ_BITS
    q = value & SEQ_MASK
    word = q >> 6
    if words > 0 and word < words:
        fetch_or(st.v_drop, p * words + word, np.int64(1) << (q & 63))


# --------------------------------------------------------------------------- ring
@kernel
def claim(st, shard, want):
    """Claim up to ``want`` consecutive free positions of a shard's ring.

    Returns (first position, how many); how many is 0 when the ring is full.
    """
    cap = st.cfg[CFG_CAPACITY]
    mask = st.cfg[CFG_MASK]
    base = shard * cap
    tail_i = pos_index(shard, POS_TAIL)
    # Outside drop_oldest only the shard's one consumer frees slots, in position
    # order: when the last slot of the run is free, so is every slot before it.
    in_order = st.cfg[CFG_MODE] != DROP_OLDEST
    t = load_relaxed(st.pos, tail_i)
    while True:
        if in_order and load_acquire(st.ring_seq, base + ((t + want - 1) & mask)) == t + want - 1:
            old = compare_and_swap(st.pos, tail_i, t, t + want)
            if old == t:
                return t, want
            t = old
            continue
        j = 0
        while j < want:
            if load_acquire(st.ring_seq, base + ((t + j) & mask)) != t + j:
                break
            j += 1
        if j == 0:
            if load_acquire(st.ring_seq, base + (t & mask)) < t:
                return t, 0          # the slot still holds last lap's event: full
            t = load_relaxed(st.pos, tail_i)   # others claimed meanwhile
            continue
        old = compare_and_swap(st.pos, tail_i, t, t + j)
        if old == t:
            return t, j
        t = old


@kernel
def evict_oldest(st, shard, writer):
    """drop_oldest: take the shard's oldest queued event out and count it dropped.

    Returns False when the oldest slot is not published yet (its producer is
    mid-push) or another thread took it first; the caller retries.

    Begun before the head moves and ended after the event is counted (the
    POS_EVICTIONS block): flush waits for the evictions begun before it saw
    the head past its target, so none is half counted when it returns.
    """
    evictions = pos_index(shard, POS_EVICTIONS)
    fetch_add(st.pos, evictions + EVICT_BEGUN, 1)
    taken = take_oldest(st, shard, writer)
    fetch_add(st.pos, evictions + EVICT_ENDED, 1)
    return taken


@kernel_inline
def take_oldest(st, shard, writer):
    cap = st.cfg[CFG_CAPACITY]
    base = shard * cap
    head_i = pos_index(shard, POS_HEAD)
    h = load_acquire(st.pos, head_i)
    slot = base + (h & st.cfg[CFG_MASK])
    if load_acquire(st.ring_seq, slot) != h + 1:
        return False
    if compare_and_swap(st.pos, head_i, h, h + 1) != h:
        return False
    value = st.ring_val[slot]
    store_release(st.ring_seq, slot, h + cap)
    if not (st.cfg[CFG_MUTATIONS] & M_UNCOUNTED_EVICTION):
        count(st, EVENTS_DROPPED, writer, 1)
    fetch_add(st.pos, pos_index(shard, POS_SETTLED), 1)
    wi = shard * st.cfg[CFG_PS_STRIDE] + (value >> SEQ_BITS)
    fetch_add(st.ev_count, wi, 1)
    fetch_add(st.ev_sum, wi, mix(value & SEQ_MASK))
    mark_dropped(st, value)
    return True


@kernel
def pop_into_batch(st, shard, room, draining, eager):
    """The shard's worker moves up to ``room`` published events into its batch.

    Unless ``eager`` (flushing, draining, or idle a while), it waits until a
    whole run of ``MIN_RUN`` events is published: chasing the producers slot by
    slot makes every ring cache line cross between the cores several times.

    While draining at shutdown, a position below the tail whose slot was never
    published belongs to a push that shutdown abandoned (already counted
    dropped): it is skipped so the events behind it still get out.
    """
    cap = st.cfg[CFG_CAPACITY]
    mask = st.cfg[CFG_MASK]
    max_events = st.cfg[CFG_MAX_EVENTS]
    base = shard * cap
    head_i = pos_index(shard, POS_HEAD)
    start_i = pos_index(shard, POS_BATCH_START)
    blen = st.wshard[shard * SLOT]
    latency = st.cfg[CFG_LATENCY]
    h = load_acquire(st.pos, head_i)
    if not eager and room >= MIN_RUN:
        last = h + MIN_RUN - 1
        if load_acquire(st.ring_seq, base + (last & mask)) != last + 1:
            return 0
    while True:
        j = 0
        while j < room:
            if load_acquire(st.ring_seq, base + ((h + j) & mask)) != h + j + 1:
                break
            j += 1
        if j == 0:
            if draining and h < load_acquire(st.pos, pos_index(shard, POS_TAIL)):
                if compare_and_swap(st.pos, head_i, h, h + 1) == h:
                    store_release(st.ring_seq, base + (h & mask), h + cap)
                    h += 1
                else:
                    h = load_acquire(st.pos, head_i)
                continue
            return 0
        late = st.cfg[CFG_MUTATIONS] & M_BATCH_ANNOUNCED_LATE
        if blen == 0 and not late:
            # Announce the batch before taking it, so flush never sees a popped
            # but undispatched event as settled.
            store_release(st.pos, start_i, h)
        old = compare_and_swap(st.pos, head_i, h, h + j)
        if old != h:
            if blen == 0 and not late:
                store_release(st.pos, start_i, NO_BATCH)
            h = old
            continue
        if blen == 0 and late:
            store_release(st.pos, start_i, h)      # the mutation: after the head moved
        out = shard * max_events + blen
        for k in range(j):
            slot = base + ((h + k) & mask)
            st.batch_val[out + k] = st.ring_val[slot]
            if latency:
                st.batch_t_int[out + k] = st.ring_t_int[slot]
                if latency == LATENCY_TWO_STAMPS:
                    st.batch_t_sent[out + k] = st.ring_t_sent[slot]
            store_release(st.ring_seq, slot, h + k + cap)
        st.wshard[shard * SLOT] = blen + j
        return j


# --------------------------------------------------------------------------- ingest
@kernel_inline
def enter_commit(st, writer):
    """ACTIVE -> COMMIT; False when shutdown abandoned this push."""
    i = writer * SLOT + ST_STATE
    return compare_and_swap(st.stripes, i, ACTIVE, COMMIT) == ACTIVE


@kernel_inline
def leave_commit(st, writer, state):
    store_release(st.stripes, writer * SLOT + ST_STATE, state)


@kernel
def stall_hook(st, writer):
    """A scheduled fault: stall this producer here, mid-push, with slots claimed."""
    base = writer * SLOT
    start = load_relaxed(st.stripes, base + ST_STALL_FROM)
    if start == 0:
        return
    now = monotonic_ns()
    if now < start:
        return
    until = now + load_relaxed(st.stripes, base + ST_STALL_FOR)
    store_relaxed(st.stripes, base + ST_STALL_FROM, 0)
    store_release(st.stripes, base + ST_STALLING, 1)
    while monotonic_ns() < until and load_relaxed(st.ctrl, CTRL_RELEASE * SLOT) == 0:
        sleep_ns(500_000)
    store_release(st.stripes, base + ST_STALLING, 0)


@kernel
def publish(st, shard, first, k, events, start, values, t_int, t_sent):
    """Write and publish k events (``events[start:start + k]``) into positions
    [first, first + k)."""
    cap = st.cfg[CFG_CAPACITY]
    mask = st.cfg[CFG_MASK]
    base = shard * cap
    latency = st.cfg[CFG_LATENCY]
    for j in range(k):
        e = events[start + j]
        slot = base + ((first + j) & mask)
        st.ring_val[slot] = values[e]
        if latency:
            st.ring_t_int[slot] = t_int[e]
            if latency == LATENCY_TWO_STAMPS:
                st.ring_t_sent[slot] = t_sent
        store_release(st.ring_seq, slot, first + j + 1)


@kernel_inline   # measured: 6.07 -> 4.56 ns/event single-threaded ingest
def push_group(st, writer, shard, events, idx, n, values, t_int, t_sent, landed):
    """Push events[idx:idx+n] (all for one shard). Returns how many were refused,
    or -1 when shutdown abandoned the push."""
    mode = st.cfg[CFG_MODE]
    done = 0
    spins = 0
    deadline = 0
    while done < n:
        first, k = claim(st, shard, n - done)
        if k > 0:
            stall_hook(st, writer)
            if not enter_commit(st, writer):
                return -1
            # one offset, not (idx, done): push_group is inlined where idx and done
            # are the constant 0, and each literal would compile its own publish
            publish(st, shard, first, k, events, idx + done, values, t_int, t_sent)
            st.stripes[writer * SLOT + ST_PENDING] -= k
            leave_commit(st, writer, ACTIVE)
            for j in range(k):
                landed[events[idx + done + j]] = 1
            done += k
            spins = 0
            continue
        # The ring is full.
        if mode == DROP_OLDEST:
            if evict_oldest(st, shard, writer):
                deadline = 0
                continue
            # The oldest slot is claimed but not yet written: its producer is
            # mid-push. Wait at most block_timeout for it, then refuse (as
            # drop_newest) rather than hang behind a stalled producer.
            if load_relaxed(st.stripes, writer * SLOT + ST_STATE) == ABANDONED:
                return -1
            now = monotonic_ns()
            if deadline == 0:
                deadline = now + st.cfg[CFG_BLOCK_TIMEOUT_NS]
            if now < deadline:
                spins = backoff(spins)
                continue
            break
        if mode == BLOCK:
            now = monotonic_ns()
            if deadline == 0:
                deadline = now + st.cfg[CFG_BLOCK_TIMEOUT_NS]
            if now < deadline:
                if load_relaxed(st.stripes, writer * SLOT + ST_STATE) == ABANDONED:
                    return -1
                spins = backoff(spins)
                continue
        break
    for j in range(done, n):
        landed[events[idx + j]] = 0
    return n - done


@kernel
def ingest_batch(st, writer, shards, values, t_int, t_sent, n, order, shard_counts, landed):
    """Ingest n events (event i: ``values[i]`` into ``shards[i]``) in one call.

    Counts ``events_ingested`` once for the call and refusals once at the end.
    ``landed[i]`` says whether event i reached a ring. ``order`` (int64[n]) and
    ``shard_counts`` (int64[shards + 1]) are the caller's scratch space: the
    events are grouped by shard, stably, so each producer's order per shard is
    kept and each shard costs one claim.
    Returns (status, number landed).
    """
    stripe = writer * SLOT
    for i in range(n):
        landed[i] = 0
    # Entry: PENDING is 0 until the events are counted, so an abandonment before
    # that strands nothing.
    st.stripes[stripe + ST_PENDING] = 0
    if compare_and_swap(st.stripes, stripe + ST_STATE, IDLE, ACTIVE) != IDLE:
        return SHUTTING_DOWN, 0
    # The CAS above is a full barrier: shutdown either sees this stripe ACTIVE,
    # or this load sees the gate it closed.
    if load_acquire(st.ctrl, CTRL_GATE * SLOT) != 0:
        # A CAS, not a store: shutdown may have abandoned this (empty) push
        # meanwhile, and must not find IDLE written over its ABANDONED.
        compare_and_swap(st.stripes, stripe + ST_STATE, ACTIVE, IDLE)
        return SHUTTING_DOWN, 0
    # Passed the gate: the events are ingested (BUS.md), counted now, in a
    # COMMIT section so that an abandonment sees PENDING and the count agree.
    # (Counting them later, at the first publish, saved a CAS but turned a push
    # stalled before its first publish into "never ingested".)
    if not enter_commit(st, writer):
        return SHUTTING_DOWN, 0
    count(st, EVENTS_INGESTED, writer, n)
    st.stripes[stripe + ST_PENDING] = n
    leave_commit(st, writer, ACTIVE)

    n_shards = st.cfg[CFG_SHARDS]
    refused = 0
    if n == 1:
        order[0] = 0
        r = push_group(st, writer, shards[0], order, 0, 1, values, t_int, t_sent, landed)
        if r < 0:
            return STRANDED, 0
        refused = r
    else:
        for s in range(n_shards + 1):
            shard_counts[s] = 0
        for i in range(n):
            shard_counts[shards[i] + 1] += 1
        for s in range(n_shards):
            shard_counts[s + 1] += shard_counts[s]
        for i in range(n):
            s = shards[i]
            order[shard_counts[s]] = i
            shard_counts[s] += 1
        # shard_counts[s] is now the end of shard s's group; its start is the end of s-1.
        start = 0
        for s in range(n_shards):
            end = shard_counts[s]
            if end > start:
                r = push_group(st, writer, s, order, start, end - start, values, t_int,
                               t_sent, landed)
                if r < 0:
                    return STRANDED, 0
                refused += r
            start = end

    if refused > 0:
        if not enter_commit(st, writer):
            return STRANDED, 0
        count(st, EVENTS_DROPPED, writer, refused)
        if st.cfg[CFG_MUTATIONS] & M_REFUSAL_NOT_INGESTED:
            count(st, EVENTS_INGESTED, writer, -refused)
        st.stripes[stripe + ST_PENDING] -= refused
        leave_commit(st, writer, IDLE)       # from COMMIT: shutdown cannot abandon it
    else:
        # Every event landed, PENDING is 0. Shutdown may have abandoned the
        # stripe since the last publish; with nothing pending it does not list
        # it, so IDLE written over ABANDONED changes no verdict. (A CAS here
        # cost ~20% of single-producer throughput: a locked instruction waits
        # for the 64 ring stores just made to drain.)
        leave_commit(st, writer, IDLE)
        return OK, n
    if st.cfg[CFG_MODE] == FAIL_PRODUCER:
        return FAILED, n - refused
    return DROPPED, n - refused


# --------------------------------------------------------------------------- adapters
@kernel
def xorshift(wrk, i):
    x = wrk[i]
    x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
    x &= 0x7FFFFFFFFFFFFFFF
    if x == 0:
        x = 0x2545F4914F6CDD1D
    wrk[i] = x
    return x


@kernel
def wait_until(deadline, st, release_slot):
    """Wait for a monotonic deadline: spin when it is near, sleep when far."""
    while True:
        now = monotonic_ns()
        if now >= deadline or load_relaxed(st.ctrl, release_slot) != 0:
            return
        left = deadline - now
        if left > 200_000:
            sleep_ns(min(left - 100_000, 1_000_000))
        else:
            cpu_relax()


@kernel
def frozen_downstream(st):
    """The `stall` fault: block while now is inside the scheduled window."""
    while True:
        start = load_relaxed(st.ctrl, CTRL_STALL_FROM * SLOT)
        until = load_relaxed(st.ctrl, CTRL_STALL_UNTIL * SLOT)
        now = monotonic_ns()
        if until == 0 or now < start or now >= until:
            return
        if load_relaxed(st.ctrl, CTRL_RELEASE * SLOT) != 0:
            return
        sleep_ns(min(until - now, 1_000_000))


@kernel
def verify_batch(st, worker, shard, out, n):
    """The verify adapter: duplicates, gaps (via counts) and per-shard order."""
    words = st.cfg[CFG_VERIFY_WORDS]
    row = shard * st.cfg[CFG_PS_STRIDE]
    anomalies = worker * SLOT
    for k in range(n):
        value = st.batch_val[out + k]
        p = value >> SEQ_BITS
        q = value & SEQ_MASK
        if words > 0:       # the optional bitmaps: which events, not only how many
            word = q >> 6
            if word < words:
                bit = np.int64(1) << (q & 63)
                if fetch_or(st.v_recv, p * words + word, bit) & bit:
                    st.v_anomaly[anomalies + V_DUPLICATES] += 1
            else:
                st.v_anomaly[anomalies + V_BEYOND_BITMAP] += 1
        # FIFO per (producer, shard): a seq not above the last one received is a
        # duplicate or a reordering; the counts and checksums account for gaps.
        # The shard's row is written by its one worker only: plain stores.
        li = row + p
        if q <= st.v_last[li]:
            st.v_anomaly[anomalies + V_ORDER] += 1
        st.v_last[li] = q
        st.v_count[li] += 1
        st.v_sum[li] += mix(q)


@kernel
def deliver(st, worker, out, n):
    """on_batch for the cost-modelling adapters; True when the batch was accepted."""
    kind = st.cfg[CFG_ADAPTER]
    if kind == SLOW:
        cost = st.cfg[CFG_SLOW_PER_BATCH_NS] + n * st.cfg[CFG_SLOW_PER_EVENT_NS]
        if cost > 0:
            wait_until(monotonic_ns() + cost, st, CTRL_RELEASE * SLOT)
        return True
    if kind == FLAKY:
        retries = st.cfg[CFG_FLAKY_RETRIES]
        ppm = st.cfg[CFG_FLAKY_FAIL_PPM]
        for attempt in range(retries + 1):
            if xorshift(st.wrk, worker * SLOT + W_RNG) % 1_000_000 >= ppm:
                return True
            st.wrk[worker * SLOT + W_ATTEMPTS_FAILED] += 1
            if attempt < retries:
                backoff_ns = st.cfg[CFG_FLAKY_BACKOFF_NS] << min(attempt, 20)
                wait_until(monotonic_ns() + backoff_ns, st, CTRL_RELEASE * SLOT)
        return False
    return True


@kernel
def dispatch(st, worker, writer, shard):
    """Hand the shard's batch to the adapter, then move the counters."""
    n = st.wshard[shard * SLOT]
    out = shard * st.cfg[CFG_MAX_EVENTS]
    if st.cfg[CFG_MUTATIONS] & M_BATCH_ANNOUNCED_LATE:
        # the mutation: the batch is no longer announced while on_batch runs
        store_release(st.pos, pos_index(shard, POS_BATCH_START), NO_BATCH)
    frozen_downstream(st)
    accepted = deliver(st, worker, out, n)
    if accepted:
        if st.cfg[CFG_ADAPTER] == VERIFY:
            verify_batch(st, worker, shard, out, n)
        latency = st.cfg[CFG_LATENCY]
        if latency:
            now = monotonic_ns()
            h_int = st.hist_int[worker]
            for k in range(n):
                histogram.record(h_int, now - st.batch_t_int[out + k])
            if latency == LATENCY_TWO_STAMPS:
                h_sent = st.hist_sent[worker]
                for k in range(n):
                    histogram.record(h_sent, now - st.batch_t_sent[out + k])
        if not (st.cfg[CFG_MUTATIONS] & M_DISPATCH_FROZEN):
            count(st, BATCHES_DISPATCHED, writer, 1)
            count(st, EVENTS_DISPATCHED, writer, n)
    else:
        count(st, EVENTS_DROPPED, writer, n)
        row = shard * st.cfg[CFG_PS_STRIDE]
        for k in range(n):
            value = st.batch_val[out + k]
            wi = row + (value >> SEQ_BITS)
            st.rj_count[wi] += 1                  # the shard's worker only: plain stores
            st.rj_sum[wi] += mix(value & SEQ_MASK)
            mark_dropped(st, value)
    fetch_add(st.pos, pos_index(shard, POS_SETTLED), n)
    st.wshard[shard * SLOT] = 0
    store_release(st.pos, pos_index(shard, POS_BATCH_START), NO_BATCH)


# --------------------------------------------------------------------------- worker
@kernel
def worker_loop(st, worker, writer, my_shards):
    """A batch worker: pop, batch (max_events or max_delay), dispatch; at
    shutdown, drain until two consecutive empty passes."""
    max_events = st.cfg[CFG_MAX_EVENTS]
    max_delay = st.cfg[CFG_MAX_DELAY_NS]
    single_pass = st.cfg[CFG_MUTATIONS] & M_FINAL_SINGLE_PASS
    spins = 0
    empty_passes = 0
    while True:
        phase = load_acquire(st.ctrl, CTRL_PHASE * SLOT)
        if phase == PHASE_STOP:
            return
        draining = phase == PHASE_DRAIN
        urgent = draining or load_relaxed(st.ctrl, CTRL_FLUSHING * SLOT) > 0
        now = monotonic_ns()
        popped = 0
        stop_drain = False
        for i in range(my_shards.shape[0]):
            s = my_shards[i]
            blen = st.wshard[s * SLOT]
            got = pop_into_batch(st, s, max_events - blen, draining,
                                 urgent or spins >= EAGER_AFTER)
            if got > 0 and blen == 0:
                st.wshard[s * SLOT + 1] = now
            popped += got
            blen += got
            if blen > 0 and (blen >= max_events or urgent
                             or now - st.wshard[s * SLOT + 1] >= max_delay):
                dispatch(st, worker, writer, s)
                now = monotonic_ns()
            if draining and single_pass and got == 0:
                stop_drain = True      # the mutation: stop at the first empty pop
                break
        st.wrk[worker * SLOT + W_LOOPS] += 1
        if draining:
            if stop_drain:
                return
            if popped == 0:
                empty_passes += 1
                if empty_passes >= 2:
                    return
            else:
                empty_passes = 0
            continue
        if popped == 0:
            spins = backoff(spins)
        else:
            spins = 0
