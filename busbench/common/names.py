"""One home for the names used everywhere: counters, statuses, exit codes,
check outcomes, ingest status codes, check display names.

Runner, targets, checks, reports, cli and dashboard import these rather than
re-spelling them, so renaming one is one edit (STYLE.md, "one home per name").
The ingest status codes are read by jitted kernels as compile-time constants,
which is why this module is among ``native.jit.JITTED_SOURCES`` (kernel modules import it).
"""
from __future__ import annotations

# --- counters (EventBusStats) ---------------------------------------------------
EVENTS_INGESTED = "events_ingested"
EVENTS_DROPPED = "events_dropped"
BATCHES_DISPATCHED = "batches_dispatched"
EVENTS_DISPATCHED = "events_dispatched"
SHUTDOWN_WAS_LOSSY = "shutdown_was_lossy"
#: the counters that count (rates, sparklines); a target exports a subset
COUNTER_NAMES = (EVENTS_INGESTED, EVENTS_DROPPED, BATCHES_DISPATCHED, EVENTS_DISPATCHED)
#: every name a target's counters() may hold
ALL_COUNTERS = COUNTER_NAMES + (SHUTDOWN_WAS_LOSSY,)

#: checksums are sums modulo 2**64 (native/payload.py); here so that the checks, which
#: read only recorded numbers, need not import the jitted payload module (and Numba)
CHECKSUM_MOD = 1 << 64

# --- run statuses and the exit codes they map to (PRODUCT.md) -------------------
RUN_PASSED, RUN_FAILED, RUN_ERROR, RUN_INTERRUPTED = "passed", "failed", "error", "interrupted"
RUN_TIMED_OUT = "timed_out"      # the watchdog ended the run at its deadline (watchdog.py)
RUN_CRASHED = "crashed"          # the supervised child died (a signal, an exit, out of memory)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {RUN_PASSED: EXIT_OK, RUN_FAILED: EXIT_FAILED, RUN_ERROR: EXIT_ERROR,
              RUN_TIMED_OUT: EXIT_ERROR, RUN_INTERRUPTED: EXIT_INTERRUPTED,
              RUN_CRASHED: EXIT_ERROR}
#: statuses of a run that could not complete: no verdict on the bus (JUnit errors, compare)
RUN_INCOMPLETE = (RUN_ERROR, RUN_TIMED_OUT, RUN_INTERRUPTED, RUN_CRASHED)
#: what the live display says of a run in each status
DISPLAY_STATUS = {RUN_PASSED: "finished", RUN_FAILED: "failed", RUN_ERROR: "error",
                  RUN_TIMED_OUT: RUN_TIMED_OUT, RUN_INTERRUPTED: "interrupted",
                  RUN_CRASHED: RUN_CRASHED}

# --- check outcomes -------------------------------------------------------------
PASSED, FAILED, NOT_EVALUABLE, NOT_OBSERVABLE = "passed", "failed", "not_evaluable", "not_observable"
#: how an outcome is written for people (summary, Markdown, JUnit, dashboard)
OUTCOME_WORDS = {PASSED: "passed", FAILED: "failed", NOT_EVALUABLE: "not evaluable",
                 NOT_OBSERVABLE: "not observable on this target"}
#: a check's state on the live display (pending while the run goes on)
CHECK_PENDING = "pending"

# --- check kinds and their display names ----------------------------------------
CONSERVATION, GROUND_TRUTH, FLUSH_BARRIER, FLUSH_COMPLETES, LOSSY_SHUTDOWN, THRESHOLD = (
    "conservation", "ground_truth", "flush_barrier", "flush_completes", "lossy_shutdown",
    "threshold")
CHECK_DISPLAY = {CONSERVATION: "conservation", GROUND_TRUTH: "ground truth",
                 FLUSH_BARRIER: "flush barrier", FLUSH_COMPLETES: "flush completes",
                 LOSSY_SHUTDOWN: "lossy shutdown", THRESHOLD: "threshold"}

# --- ingest status codes: what a target's ingest entry tells the producer kernel -
# busbench's own codes, not a bus's: each target's produce() translates.
INGEST_OK = 0            # every event landed
INGEST_REFUSED = 1       # some refused (drop_newest, block timeout); not to be retried
INGEST_FAILED = 2        # some refused with "failed" (fail_producer): the retry policy decides
INGEST_CLOSED = 3        # turned away at the gate (shutting down): nothing counted
INGEST_STRANDED = 4      # shutdown abandoned this push: what had not landed is stranded
INGEST_AMBIGUOUS = 5     # a batch partly taken, which events unknown: not to be retried
INGEST_ERROR = 6         # an undeclared return code: the producer stops (the target reports it)
INGEST_STATUS_NAMES = ("ok", "dropped", "failed", "shutting_down", "stranded", "ambiguous", "error")
