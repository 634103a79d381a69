"""Producer-side kernels: the load loop's pieces, as jitted inline functions.

A target builds its ``produce`` kernel from these (one per target, so that it
calls the target's ingest entry directly and stays cacheable: Numba cannot
cache a kernel that takes another kernel as an argument). The loop is::

    begin_step(pstate)
    while True:
        n, now = next_call(...)          # pace, choose shards, number events
        if n == 0: break
        m = n
        while m > 0:
            status = <the target's ingest>(..., m, landed)   # names.INGEST_*
            m = after_call(..., status, m, landed, ...)      # tallies; events to retry
        if pstate[S_DONE]: break

Every tally here is busbench's own ground truth, kept by the producer and
never read from a bus: events offered past the gate, landed, refused, turned
away, stranded, late, per shard landed (for the flush barrier), and the
checksums of offered / refused / stranded events (``payload.mix``).

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

from ..native.atomics import cpu_relax, load_relaxed
from ..native.clock import backoff, monotonic_ns, sleep_ns, yield_cpu
from ..native.jit import kernel, kernel_inline
from ..common.names import INGEST_CLOSED, INGEST_FAILED, INGEST_OK, INGEST_STRANDED
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
def wait_until_due(due):
    """Sleep while the due time is far, spin politely when it is near."""
    spins = 0
    while True:
        now = monotonic_ns()
        left = due - now
        if left <= 0:
            return now
        if left > 150_000:
            sleep_ns(left - 100_000)
        elif spins < 64:
            cpu_relax()
            spins += 1
        else:
            yield_cpu()


@kernel
def wait_until_due_or_stop(due, stop):
    """``wait_until_due`` that also watches the stop flag: returns the time, or
    -1 when the flag went up meanwhile (a slow schedule must not keep a
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
                if landed[i]:
                    by_shard[0] += 1
                    by_shard[1] = values[i] & SEQ_MASK
    else:
        for i in range(m):
            if all_landed or landed[i]:
                s = shards_buf[i]
                by_shard[s] += 1
                by_shard[shards + s] = values[i] & SEQ_MASK


@kernel_inline
def sum_not_landed(values, landed, m):
    s = np.int64(0)
    c = 0
    for i in range(m):
        if landed[i] == 0:
            s += mix(values[i] & SEQ_MASK)
            c += 1
    return c, s


@kernel_inline
def after_call(params, pstate, by_shard, stop, status, m, landed, values, shards_buf, t_int):
    """Tally one ingest call. Returns how many events to offer again (the
    retry policy compacted them to the front of the buffers), or 0 when this
    batch is done. Sets ``pstate[S_DONE]`` when the producer must stop."""
    pstate[S_CALLS] += 1
    if status == INGEST_CLOSED:
        pstate[S_TURNED_AWAY] += m
        pstate[S_DONE] = 1
        if not pstate[S_RETRYING]:
            # fresh events never offered: out of the offered checksum (S_OFFERED_SUM
            # holds the adjustments to the sum over [0, next_seq))
            s = np.int64(0)
            for i in range(m):
                s += mix(values[i] & SEQ_MASK)
            pstate[S_OFFERED_SUM] -= s
        return 0
    pstate[S_OFFERED] += m
    if pstate[S_RETRYING]:
        pstate[S_OFFERED_SUM] += pstate[S_BATCH_SUM]    # offered again
    if status == INGEST_OK:
        pstate[S_LANDED] += m
        count_landed(by_shard, shards_buf, values, landed, m, True)
        pstate[S_SPINS] = 0
        return 0
    count_landed(by_shard, shards_buf, values, landed, m, False)
    lost, lost_sum = sum_not_landed(values, landed, m)
    pstate[S_LANDED] += m - lost
    if status == INGEST_STRANDED:
        pstate[S_STRANDED] += lost
        pstate[S_STRANDED_SUM] += lost_sum
        pstate[S_DONE] = 1
        return 0
    pstate[S_REFUSED] += lost
    pstate[S_REFUSED_SUM] += lost_sum
    if not params[P_OPEN_LOOP]:
        # A closed loop goes as fast as the bus takes events: after a call with
        # refusals it backs off (spin, then yield, then sleep) instead of
        # spinning on a full ring. On 2 cores a spinning producer sharing a core
        # with the worker starved it (samples of 4-6 M/s with 97% dropped).
        pstate[S_SPINS] = backoff(pstate[S_SPINS])
    if status == INGEST_FAILED and params[P_RETRY_FAILED] and not stopping(params, stop):
        # Retry policy: offer the refused events again (same seq), in order.
        j = 0
        for i in range(m):
            if landed[i] == 0:
                values[j] = values[i]
                shards_buf[j] = shards_buf[i]
                t_int[j] = t_int[i]
                j += 1
        pstate[S_RETRIES] += 1
        pstate[S_BATCH_SUM] = lost_sum
        pstate[S_RETRYING] = 1
        yield_cpu()
        return j
    return 0


@kernel_inline
def stopping(params, stop):
    deadline = params[P_DEADLINE_NS]
    return load_relaxed(stop, STOP_FLAG) != 0 or (deadline > 0 and monotonic_ns() >= deadline)


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
