"""Configuration of the reference bus, and the integer codes kernels read.

Kernels see the configuration as one int64 array (``cfg``) indexed by the
``CFG_*`` constants below: modes, strides and mutations are runtime values, so
one compiled kernel serves every variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .layout import CounterLayout

# --- backpressure modes -------------------------------------------------------
DROP_NEWEST, FAIL_PRODUCER, DROP_OLDEST, BLOCK = 0, 1, 2, 3
BACKPRESSURE_MODES = {"drop_newest": DROP_NEWEST, "fail_producer": FAIL_PRODUCER,
                      "drop_oldest": DROP_OLDEST, "block": BLOCK}

# --- adapters -----------------------------------------------------------------
NOOP, VERIFY, SLOW, FLAKY, STALL = 0, 1, 2, 3, 4
ADAPTER_KINDS = {"noop": NOOP, "verify": VERIFY, "slow": SLOW, "flaky": FLAKY, "stall": STALL}

# --- mutations: faults net-mesh really had (BUS.md), one bit each ------------
MUTATIONS = {
    "dispatch_counters_frozen": 1 << 0,
    "flush_single_window": 1 << 1,
    "flush_global_sum": 1 << 2,
    "no_inflight_gate": 1 << 3,
    "lossy_flag_never_set": 1 << 4,
    "stranded_double_count": 1 << 5,
    "final_sweep_single_pass": 1 << 6,
    "uncounted_eviction": 1 << 7,
    "refusal_not_ingested": 1 << 8,
    # the worker announces a batch after taking it and clears BATCH_START before
    # on_batch returns: flush's own per-shard predicate is fooled (issue 9)
    "batch_announced_late": 1 << 9,
}
M_DISPATCH_FROZEN = MUTATIONS["dispatch_counters_frozen"]
M_FLUSH_SINGLE_WINDOW = MUTATIONS["flush_single_window"]
M_FLUSH_GLOBAL_SUM = MUTATIONS["flush_global_sum"]
M_NO_INFLIGHT_GATE = MUTATIONS["no_inflight_gate"]
M_LOSSY_NEVER_SET = MUTATIONS["lossy_flag_never_set"]
M_STRANDED_DOUBLE = MUTATIONS["stranded_double_count"]
M_FINAL_SINGLE_PASS = MUTATIONS["final_sweep_single_pass"]
M_UNCOUNTED_EVICTION = MUTATIONS["uncounted_eviction"]
M_REFUSAL_NOT_INGESTED = MUTATIONS["refusal_not_ingested"]
M_BATCH_ANNOUNCED_LATE = MUTATIONS["batch_announced_late"]

# --- ingest statuses ----------------------------------------------------------
OK, DROPPED, FAILED, SHUTTING_DOWN, STRANDED = 0, 1, 2, 3, 4
STATUS_NAMES = ("ok", "dropped", "failed", "shutting_down", "stranded")

# --- latency stamping (cfg[CFG_LATENCY]) ---------------------------------------
# Closed loop: an event's intended send time is its actual ingest time, so one
# stamp serves corrected and uncorrected latency alike. Open loop: two stamps.
# (Two stamps in closed loop cost a second ring array crossing between cores and
# a second histogram record per event: measured 20% of throughput.)
LATENCY_OFF, LATENCY_ONE_STAMP, LATENCY_TWO_STAMPS = 0, 1, 2

# --- cfg array slots ----------------------------------------------------------
(CFG_SHARDS, CFG_CAPACITY, CFG_MASK, CFG_MODE, CFG_BLOCK_TIMEOUT_NS, CFG_MAX_EVENTS,
 CFG_MAX_DELAY_NS, CFG_MUTATIONS, CFG_COUNTER_STRIDE, CFG_WRITER_STRIDE, CFG_ADAPTER,
 CFG_SLOW_PER_BATCH_NS, CFG_SLOW_PER_EVENT_NS, CFG_FLAKY_FAIL_PPM, CFG_FLAKY_RETRIES,
 CFG_FLAKY_BACKOFF_NS, CFG_LATENCY, CFG_PRODUCERS, CFG_VERIFY_WORDS, CFG_WORKERS,
 CFG_COLD_WRITER, CFG_PS_STRIDE, CFG_LEN) = range(23)

# --- ctrl array slots (each on its own 128-byte block: index * 16) -----------
CTRL_GATE, CTRL_PHASE, CTRL_FLUSHING, CTRL_STALL_FROM, CTRL_STALL_UNTIL, CTRL_RELEASE, CTRL_LEN = range(7)
PHASE_RUN, PHASE_DRAIN, PHASE_STOP = 0, 1, 2

# --- per-shard position block: (shard * POS_FIELDS + field) * 16 ----------------
POS_TAIL, POS_HEAD, POS_BATCH_START, POS_SETTLED, POS_EVICTIONS, POS_FIELDS = range(6)
# In the POS_EVICTIONS block: drop_oldest evictions begun and ended on the shard.
# An eviction moves the head before it counts the event dropped; a flush that
# saw the head past its target waits until every eviction begun by then has
# ended, so that the drop is counted when flush returns (found by the fuzzer).
EVICT_BEGUN, EVICT_ENDED = 0, 1
NO_BATCH = (1 << 62)        # BATCH_START when the shard's worker holds no batch

# --- per-writer in-flight stripe: writer * 16 + field -------------------------
ST_STATE, ST_PENDING, ST_STALL_FROM, ST_STALL_FOR, ST_STALLING, ST_STRANDED = range(6)
IDLE, ACTIVE, COMMIT, ABANDONED = 0, 1, 2, 3

# --- event payload: producer id in the high bits, sequence number below -------
from ..native.payload import SEQ_BITS, SEQ_MASK  # noqa: E402,F401  (busbench's payload, not the bus's)

SLOT = 16   # int64 words in a 128-byte block


@dataclass(frozen=True)
class BusConfig:
    """Everything the reference bus is built from (plain values, no YAML)."""
    shards: int = 4
    capacity: int = 4096
    backpressure: str = "drop_newest"
    block_timeout_ns: int = 10_000_000
    max_events: int = 512
    max_delay_ns: int = 1_000_000
    workers: int = 1
    counters: CounterLayout = field(default_factory=lambda: CounterLayout.parse("padded"))
    adapter: str = "verify"
    slow_per_batch_ns: int = 0
    slow_per_event_ns: int = 0
    flaky_failure_rate: float = 0.1
    flaky_retries: int = 3
    flaky_backoff_ns: int = 100_000
    stall_at_ns: int | None = None      # `stall` adapter: freeze from this offset of the first run
    stall_for_ns: int = 0
    mutations: tuple = ()
    latency: bool = True
    intended_times: bool = False        # open loop: events carry an intended send time too
    producers: int = 2                  # producer writer slots (one per producer thread)
    verify_bitmaps: bool = False        # verify adapter: also one bit per (producer, seq), see core
    verify_events_per_producer: int = 1 << 30
    seed: int = 1

    def __post_init__(self):
        if self.shards < 1:
            raise ValueError("shards must be >= 1")
        if self.capacity < 2 or self.capacity & (self.capacity - 1):
            raise ValueError(f"capacity must be a power of two >= 2, got {self.capacity}")
        if self.backpressure not in BACKPRESSURE_MODES:
            raise ValueError(f"unknown backpressure mode {self.backpressure!r}")
        if self.adapter not in ADAPTER_KINDS:
            raise ValueError(f"unknown adapter {self.adapter!r}")
        if not 1 <= self.workers <= self.shards:
            raise ValueError("workers must be between 1 and the number of shards")
        if self.max_events < 1 or self.max_delay_ns <= 0:
            raise ValueError("batch max_events must be >= 1 and max_delay > 0")
        unknown = [m for m in self.mutations if m not in MUTATIONS]
        if unknown:
            raise ValueError(f"unknown mutation(s): {', '.join(unknown)}")

    @property
    def latency_mode(self) -> int:
        if not self.latency:
            return LATENCY_OFF
        return LATENCY_TWO_STAMPS if self.intended_times else LATENCY_ONE_STAMP

    @property
    def mutation_bits(self) -> int:
        bits = 0
        for name in self.mutations:
            bits |= MUTATIONS[name]
        return bits
