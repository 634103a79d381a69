"""The seam between the runner and a bus under test (hyperfine's executor seam).

The runner steps through a scenario and knows no target's internals: it asks a
``Target`` to prepare, start, flush, shut down and report, and hands its
producer threads the target's ``produce`` entry. What a target returns about
itself (its flush result, its lossy flag, its counters) is *what is judged*;
what producers tallied and what the downstream witness received is *the
evidence*. A target says which evidence it can provide (``Capabilities``); a
check whose evidence a target lacks is "not observable on this target", never
a pass.

Contract (owned by the core; targets implement it):

* ``describe_native()`` -> lines to print *before* any native code or module
  the scenario names is loaded (``run`` says what it is about to load).
* ``prepare(say)``: load libraries, compile / load cached kernels, start the
  servers the target needs (say(msg) prints a progress line). Idempotent.
* ``start()``: the bus is ready for ingest.
* ``produce(p, params, pstate, zipf_cdf, stop, scratch)``: run producer ``p``
  in the calling thread until its stop condition (GIL released inside the
  kernel). Keeps busbench's own tallies in ``pstate`` (``load.kernels`` layout).
* ``producer_stalling(p)``: producer p is stalled mid-push by a fault.
* ``flush(timeout_s)`` -> ``FlushClaim``: the bus's own answer.
* ``shutdown(grace_s)`` -> ``ShutdownClaim`` or None when the bus reports
  nothing; idempotent.
* ``counters()`` -> dict of the ``names.COUNTER_NAMES`` the bus exports (a
  counter it does not export is absent, never 0).
* ``shard_fill()`` -> events queued per shard, or None when not observable.
* ``latency_histograms()`` -> (corrected, uncorrected) or None.
* ``delivery()`` -> what the downstream witness received (verify adapter,
  Redis streams, a C sink), or None when there is no witness.
* ``arm_fault(fault)`` -> dict describing what was armed; ``release_faults()``.
* ``close()``: stop every thread and process the target started, on every
  exit path (Ctrl-C included). Idempotent.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capabilities:
    """What evidence a target can provide; checks read this to say "not observable"."""
    counters: frozenset            # names.COUNTER_NAMES the bus exports
    witness: str | None            # who saw deliveries: "verify adapter", "redis streams", None
    shard_known_to_producer: bool  # producers know each event's shard (landed per shard)
    lossy_flag: bool               # the bus exports shutdown_was_lossy / a shutdown report
    shutdown_report: bool          # stranded counts and abandoned producers from the bus
    shard_fill: bool
    latency: bool
    faults: frozenset = field(default_factory=frozenset)


@dataclass(frozen=True)
class FlushClaim:
    """What the bus said of its flush (under test, never evidence)."""
    reached: bool
    timed_out: bool
    waited_s: float
    details: dict = field(default_factory=dict)   # target-specific second opinions


@dataclass(frozen=True)
class ShutdownClaim:
    """What the bus said of its shutdown (under test, never evidence)."""
    lossy: bool | None             # None: the bus does not say
    stranded_events: int | None
    abandoned_producers: tuple | None
    duration_s: float
    grace_s: float
    details: dict = field(default_factory=dict)
