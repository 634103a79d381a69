"""Producer kernels: closed loop and open loop, as jitted pure functions.

Each producer thread runs ``produce`` (``nogil``) until its stop condition:
a deadline, an event count, or the runner's stop flag. It keeps its own
ground truth in ``pstate`` (offered past the gate, landed, refused, turned
away, stranded, late) so the checks can compare the bus's counters with what
producers really did.

Open loop follows wrk2: event k of a step is due at ``t0 + k / rate``; a call
is made when the last event of its batch is due, every event is stamped with
its own intended time (so latency measured from it cannot hide a stalled bus),
and a call made more than ``late_after`` behind schedule counts its events as
late. Nothing is skipped to catch up, but nothing is sent after the step's
deadline either: a producer that fell behind stops at the deadline (plus the
call in progress) and counts the events its schedule wanted by then and it
never sent as ``unsent``. Without that, a 100 ms step at 20M/s in front of a
downstream taking 10k events/s worked through its backlog for minutes.
A count step ended early (stop flag: the watchdog, shutdown's gate) counts the
rest of its count as unsent.
"""
import numpy as np
from ..bus.jit import kernel, kernel_inline

from ..bus.atomics import cpu_relax, load_relaxed
from ..bus.clock import monotonic_ns, sleep_ns, yield_cpu
from ..bus.config import FAILED, SEQ_BITS, SHUTTING_DOWN, STRANDED
from ..bus.kernels import backoff, ingest_batch, mark_dropped

# Key distributions (which shard each event goes to).
UNIFORM, ROUND_ROBIN, HOT, ZIPF = 0, 1, 2, 3
KEY_KINDS = {"uniform": UNIFORM, "round_robin": ROUND_ROBIN, "hot": HOT, "zipf": ZIPF}

# params: int64 array, read-only for the kernel
(P_OPEN_LOOP, P_BATCH, P_KEYS, P_HOT_SHARD, P_HOT_PPM, P_RETRY_FAILED, P_LATE_AFTER_NS,
 P_MAX_EVENTS, P_DEADLINE_NS, P_T0_NS, P_INTERVAL_PS, P_SHARDS, P_KEY_SALT, P_LEN) = range(14)

GOLDEN = np.int64(-7046029254386353131)   # 0x9E3779B97F4A7C15, Fibonacci hashing

# pstate: int64 array, the producer's own ground truth (persists across steps)
(S_NEXT_SEQ, S_OFFERED, S_LANDED, S_REFUSED, S_TURNED_AWAY, S_STRANDED, S_LATE, S_CALLS,
 S_RNG, S_STEP_EVENTS, S_RETRIES, S_DONE, S_UNSENT, S_LEN) = range(14)

STOP_FLAG = 0   # index in the runner's stop array


@kernel_inline
def splitmix(pstate):
    pstate[S_RNG] += np.int64(-7046029254386353131)   # 0x9E3779B97F4A7C15
    z = pstate[S_RNG]
    z = (z ^ ((z >> 30) & 0x3FFFFFFFF)) * np.int64(-4658895280553007687)
    z = (z ^ ((z >> 27) & 0x1FFFFFFFFF)) * np.int64(-7723592293110705685)
    return z ^ ((z >> 31) & 0x1FFFFFFFF)


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
def wait_until_due(due, stop):
    """Sleep while the due time is far, spin politely when it is near.
    Returns the time, or -1 when the stop flag went up meanwhile (a slow
    schedule must not keep a producer asleep past a stop)."""
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


@kernel
def produce(st, writer, producer, params, pstate, zipf_cdf, stop,
            shards_buf, values, t_int, order, shard_counts, landed):
    """Run one producer until its stop condition; returns the events offered."""
    batch = params[P_BATCH]
    open_loop = params[P_OPEN_LOOP]
    max_events = params[P_MAX_EVENTS]
    deadline = params[P_DEADLINE_NS]
    interval_ps = params[P_INTERVAL_PS]
    t0 = params[P_T0_NS]
    late_after = params[P_LATE_AFTER_NS]
    retry = params[P_RETRY_FAILED]
    high = np.int64(producer) << SEQ_BITS
    n_shards = params[P_SHARDS]
    uniform = params[P_KEYS] == UNIFORM and n_shards > 1
    salt = params[P_KEY_SALT]
    offered_here = 0
    pstate[S_STEP_EVENTS] = 0
    # A closed loop goes as fast as the bus takes events: after a call with
    # refusals it backs off (spin, then yield, then sleep) instead of spinning on
    # a full ring. On 2 cores a spinning producer sharing a core with the worker
    # starved it (samples of 4-6 M/s with 97% dropped).
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
            if deadline > 0 and (due_last > deadline or monotonic_ns() >= deadline):
                break
            now = wait_until_due(due_last, stop)
            if now < 0:
                break
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
        if uniform:
            # The common case in a tight loop of its own (LLVM vectorizes it):
            # through choose_shard it cost ~1 ns more per event.
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
        m = n
        while True:
            status, got = ingest_batch(st, writer, shards_buf, values, t_int, now, m,
                                       order, shard_counts, landed)
            pstate[S_CALLS] += 1
            if status == SHUTTING_DOWN:
                pstate[S_TURNED_AWAY] += m
                pstate[S_DONE] = 1
                break
            pstate[S_OFFERED] += m
            offered_here += m
            if status == STRANDED:
                pstate[S_LANDED] += landed_count(landed, m)
                pstate[S_STRANDED] += m - landed_count(landed, m)
                pstate[S_DONE] = 1
                break
            pstate[S_LANDED] += got
            refused = m - got
            if refused == 0:
                refusal_spins = 0
                break
            if not open_loop:
                refusal_spins = backoff(refusal_spins)
            pstate[S_REFUSED] += refused
            if status == FAILED and retry:
                # Retry policy: offer the refused events again (same seq), in order.
                j = 0
                for i in range(m):
                    if landed[i] == 0:
                        values[j] = values[i]
                        shards_buf[j] = shards_buf[i]
                        t_int[j] = t_int[i]
                        j += 1
                m = j
                pstate[S_RETRIES] += 1
                if load_relaxed(stop, STOP_FLAG) != 0 or (
                        deadline > 0 and monotonic_ns() >= deadline):
                    # Stopping: the refused events are given up, and reported dropped.
                    for i in range(m):
                        mark_dropped(st, values[i])
                    break
                yield_cpu()
                continue
            for i in range(m):
                if landed[i] == 0:
                    mark_dropped(st, values[i])
            break
        if pstate[S_DONE] != 0:
            break
    pstate[S_UNSENT] += unsent(params, pstate, monotonic_ns())
    return offered_here


@kernel
def unsent(params, pstate, now):
    """Events this step's schedule wanted sent by its end and that were never
    sent: the rest of a count step, or (open loop) the whole batches due by the
    deadline, or by ``now`` when stopped earlier. A closed loop without a count
    has no schedule: 0."""
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


@kernel_inline
def landed_count(landed, n):
    c = 0
    for i in range(n):
        c += landed[i]
    return c
