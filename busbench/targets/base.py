"""The seam between the runner and a bus under test (hyperfine's executor seam).

The runner steps through a scenario and knows no target's internals: it asks a
``Target`` to prepare, start, flush, shut down and report, and hands its
producer threads the target's ``produce`` entry. What a target says about
itself (its flush result, its lossy flag, its counters) is *what is judged*;
what producers tallied and what a downstream witness received is *the
evidence*. A target declares what it can provide (``Capabilities``); a check
whose evidence a target lacks is "not observable on this target", never a pass.

Data flows one way: scenario -> target + load -> evidence -> verdicts -> reports.

Contract (owned by the core; every target implements all of it):

* ``Target(scenario)``: translate the scenario's ``bus:`` section explicitly,
  per kind (a key it cannot honour is a ``TargetConfigError``, never ignored).
* ``name``, ``layout``, ``capabilities``, ``capacity`` (per shard), ``shards``.
* ``describe_native()`` -> lines to print *before* loading any native code.
* ``prepare(say)``: load libraries, compile or load cached kernels, start the
  servers the target needs (``say(msg)`` prints a progress line). Idempotent;
  seconds spent here are not measured.
* ``start()``: the bus is ready for ingest.
* ``produce(p, params, pstate, by_shard, zipf_cdf, stop, events)``: run
  producer ``p`` in the calling thread until its stop condition, GIL released
  inside a jitted kernel built from ``load.kernels`` (which keeps busbench's
  own tallies in ``pstate`` / ``by_shard``; ``events`` = the load's buffers:
  shards, values, intended times, landed mask).
* ``producer_stalling(p)``: producer p is stalled mid-push by a fault.
* ``flush(timeout_s)`` -> ``FlushClaim``: the bus's own answer.
* ``shutdown(grace_s)`` -> ``ShutdownClaim``; idempotent; ``shut_down``;
  ``shutdown_claim()`` -> the claim once shut down, else None.
* ``before_load()``: called before each stretch of load (optional).
* ``counters()`` -> dict over the ``names.ALL_COUNTERS`` the bus exports (a
  counter it does not export is absent, never 0).
* ``shard_fill()`` -> events queued per shard, or None (not observable).
* ``latency_histograms()`` -> (corrected, uncorrected) or None.
* ``delivery()`` -> ``Delivery`` (what the witness received and what the bus
  attributes as dropped, per shard and producer), or None: no witness.
* ``drops_by_shard()`` -> (evicted, rejected) per (shard, producer) now, or
  None; cheap (read just before a flush is called).
* ``arm_fault(fault)`` -> dict describing what was armed; ``release_faults()``.
* ``worker_threads()`` -> the target's own ``threading.Thread`` objects doing
  the bus's work besides the producers (their CPU time counts in
  ``cpu_per_event``; ``--pin`` pins them), or None (the default) when it cannot
  name them: the CPU metrics other than the producers' part are then not
  measured, never 0 (optional).
* ``close()``: stop every thread and process the target started, on every
  exit path (Ctrl-C included), with grace 0. Idempotent. The runner calls it on
  a thread of its own with a bounded wait (``watchdog.teardown``).
* ``threads()`` -> the threads the target started (optional): those still
  alive after teardown are recorded as ``threads_left``.

Adding a target:

1. Write no producer loop: busbench's one loop (``load.kernels.produce``)
   paces, counts late and unsent, stops at the deadline, retries, backs off and
   keeps every tally. A bus with a C ingest function describes the call as data
   (``load.ccall.CallSpec(...).to_array()``: address, arguments such as the
   handle, payload, length or the event's shard, return codes) and runs
   ``load.foreign.produce_ccall`` (see ``cabi.py``, ``netmesh/target.py``); a
   bus with a Python API hands ``load.pyloop.run`` its ingest step (see
   ``python_target.py``). Either way the step answers ``names.INGEST_*`` and
   fills the landed mask.
2. Payloads are ``payload``'s ``producer << SEQ_BITS | seq``; a witness that
   reads them back fills ``Delivery`` per (shard, producer): counts, last seq,
   order violations (a seq not above the last on its shard) and the checksum
   ``payload.checksum(seqs)`` per producer.
3. Leave out what you cannot provide: a counter absent from ``counters()``,
   ``lossy_flag=False``, ``delivery()`` None, ``drops_by_shard()`` None, no
   ``positions`` in the FlushClaim. The checks then say "not observable".
4. Register a builder in ``targets.BUILDERS``; raise ``TargetConfigError``
   (key, message) for scenario keys the target cannot honour.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..common import names as N
from .errors import TargetConfigError, TargetError  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Capabilities:
    """What evidence a target can provide; checks read this to say "not observable".
    Everything but ``counters`` and ``witness`` defaults to "cannot"."""
    counters: frozenset            # names.ALL_COUNTERS the bus exports
    witness: str | None            # who saw deliveries ("verify adapter", "redis streams") or None
    drops_attributed: bool = False  # the bus names the producer and shard of each event it dropped
    lossy_flag: bool = False       # the bus exports shutdown_was_lossy
    shutdown_report: bool = False  # stranded counts per producer from the bus
    positions: bool = False        # per-shard barrier positions (a second opinion on flush)
    shard_fill: bool = False
    latency: bool = False
    faults: frozenset = field(default_factory=frozenset)
    witness_hint: str = ""         # how to get a witness on this target when it has none now
    # Producers know each event's shard (the load chooses it). When the bus
    # chooses shards itself, landed counts exist per producer only, and the
    # flush evidence comes from the target's per-event witness
    # (FlushClaim.witness_shortfall) instead.
    shard_known_to_producer: bool = True
    reasons: dict = field(default_factory=dict)   # evidence name -> why this target lacks it
    # What the bus's events_ingested counts: "offered" (BUS.md: every event offered
    # past the gate, refused ones too) or "landed" (net-mesh: a refusal is counted
    # in events_dropped only). ground_truth compares the counter accordingly.
    ingested_counts: str = "offered"
    note: str = ""                 # one line shown with the target (e.g. "figures include the GIL")
    # No lossy flag, but a per-message account of the shutdown (ShutdownClaim.details
    # ["account"]: delivered and failed per producer): lossy_shutdown sets it against the witness.
    shutdown_account: bool = False

    def to_dict(self) -> dict:
        return {"counters": sorted(self.counters), "witness": self.witness,
                "drops_attributed": self.drops_attributed, "lossy_flag": self.lossy_flag,
                "shutdown_report": self.shutdown_report, "positions": self.positions,
                "shard_fill": self.shard_fill, "latency": self.latency,
                "faults": sorted(self.faults), "witness_hint": self.witness_hint,
                "shard_known_to_producer": self.shard_known_to_producer,
                "reasons": dict(self.reasons), "ingested_counts": self.ingested_counts,
                "note": self.note, "shutdown_account": self.shutdown_account}


def exports(capabilities, name: str, counters: dict | None = None) -> bool:
    """Does the target export counter ``name`` (``names.ALL_COUNTERS``)? The one
    answer the dashboard, the summaries and the HTML report ask: the target's
    ``Capabilities`` (the object, or its ``to_dict()`` in a record) decide;
    ``shutdown_was_lossy`` is exported when the target has a lossy flag. Only a
    record written without capabilities falls back to ``counters``: what is
    present there was exported (a counter a target lacks is absent, never 0)."""
    if isinstance(capabilities, Capabilities):
        capabilities = {"counters": capabilities.counters, "lossy_flag": capabilities.lossy_flag}
    if isinstance(capabilities, dict) and "counters" in capabilities:
        if name == N.SHUTDOWN_WAS_LOSSY and capabilities.get("lossy_flag"):
            return True
        return name in (capabilities.get("counters") or ())
    return name in (counters or {})


def exported_counters(capabilities, counters: dict | None = None) -> frozenset:
    """The ``names.ALL_COUNTERS`` the target exports (``exports`` for each)."""
    return frozenset(n for n in N.ALL_COUNTERS if exports(capabilities, n, counters))


#: what a throughput over time is drawn from, best first: what the bus
#: dispatched, else what it ingested (a target exporting neither has none)
THROUGHPUT_COUNTERS = (N.EVENTS_DISPATCHED, N.EVENTS_INGESTED)


def throughput_counter(capabilities, counters: dict | None = None) -> str | None:
    """The counter whose rate a throughput panel or plot draws on this target."""
    return next((n for n in THROUGHPUT_COUNTERS if exports(capabilities, n, counters)), None)


@dataclass(frozen=True)
class FlushClaim:
    """What the bus said of its flush (under test, never evidence)."""
    reached: bool
    timed_out: bool
    waited_s: float
    # The bus's own per-shard positions (target, head, batch start...), a second
    # opinion recorded next to the evidence; {} when the target has none.
    positions: dict = field(default_factory=dict)
    # For targets whose producers do not know shards: events landed before the
    # call (producer side) that the witness had neither received nor seen
    # dropped at return, counted per event by the target's witness; None when
    # the runner's per-(producer, shard) counts are the evidence.
    witness_shortfall: int | None = None
    details: dict = field(default_factory=dict)   # target-specific (return codes...), recorded


@dataclass(frozen=True)
class ShutdownClaim:
    """What the bus said of its shutdown (under test, never evidence)."""
    lossy: bool | None                  # None: the bus does not say
    stranded_by_producer: tuple | None = None   # None: the bus does not say
    abandoned_producers: tuple | None = None
    duration_s: float = 0.0
    grace_s: float = 0.0
    residue: int | None = None          # events left in the rings after the final drain
    stranded_events: int | None = None  # a total, when the bus gives no per-producer split
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        by_producer = self.stranded_by_producer
        return {"lossy": self.lossy,
                "stranded_events": (sum(by_producer) if by_producer is not None
                                    else self.stranded_events),
                "stranded_by_producer": None if by_producer is None else list(by_producer),
                "abandoned_producers": (None if self.abandoned_producers is None
                                        else list(self.abandoned_producers)),
                "duration_s": self.duration_s, "grace_s": self.grace_s, "residue": self.residue,
                "details": dict(self.details)}


@dataclass(frozen=True)
class Delivery:
    """The downstream witness's tallies and the bus's attributed drops.

    ``*_by_shard`` are lists of rows, one per shard, one int per producer;
    ``*_sum`` per producer checksums (``payload.mix``), ints in [0, 2**64).
    A field the target cannot provide is None.
    """
    witness: str
    received_by_shard: list
    last_seq_by_shard: list             # last seq received per (shard, producer), -1: none
    received_sum: list
    order_violations: int               # a seq not above the last one received on its shard
    evicted_by_shard: list | None
    rejected_by_shard: list | None
    evicted_sum: list | None
    rejected_sum: list | None
    duplicates: int | None = None       # from per-event bitmaps, when kept
    received_and_dropped: int | None = None
    beyond_bitmap: int = 0
    # the witness was read back only in part (a budget ran out): why; checks needing it
    # are then not evaluable. None: its tallies are whole
    incomplete: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Target(ABC):
    """A bus busbench can drive. See the module docstring for the contract."""

    name: str = "?"
    layout: str = "-"
    capabilities: Capabilities
    shards: int
    capacity: int

    def describe_native(self) -> list[str]:
        return []

    @abstractmethod
    def prepare(self, say=lambda msg: None) -> None: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None: ...

    @abstractmethod
    def producer_stalling(self, p: int) -> bool: ...

    @abstractmethod
    def flush(self, timeout_s: float) -> FlushClaim: ...

    @abstractmethod
    def shutdown(self, grace_s: float) -> ShutdownClaim: ...

    @property
    @abstractmethod
    def shut_down(self) -> bool: ...

    @abstractmethod
    def counters(self) -> dict: ...

    def shutdown_claim(self) -> ShutdownClaim | None:
        """The claim of the shutdown already done (None before shutdown)."""
        return None

    def before_load(self) -> None:
        """Called before each run of the load (a target may arm a timed fault)."""

    def shard_fill(self) -> list | None:
        return None

    def latency_histograms(self):
        return None

    def delivery(self) -> Delivery | None:
        return None

    def drops_by_shard(self):
        return None

    def arm_fault(self, fault) -> dict:
        raise TargetConfigError("fault", f"the {self.name} target cannot inject {fault.tag}")

    def release_faults(self) -> None:
        pass

    def threads(self) -> list:
        """The threads this target started (teardown reports those still alive)."""
        return []

    def worker_threads(self) -> list | None:
        """The bus's worker threads (``threading.Thread``), whose CPU time counts in
        ``cpu_per_event``; None: the target cannot name them (not measured)."""
        return None

    @abstractmethod
    def close(self) -> None: ...
