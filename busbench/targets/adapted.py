"""The net-mesh, c-abi and python drivers behind the runner's ``Target`` contract (base.py).

The drivers (``netmesh.target.NetMeshTarget``, ``cabi.CAbiTarget``,
``python_target.PythonTarget``) call the bus and read its witness; the classes
here translate the scenario explicitly, hand the runner the contract's values
(``FlushClaim`` with the witness's per-event shortfall, ``Delivery``,
``ShutdownClaim``, ``Capabilities`` with the reason for everything a bus cannot
show), and keep the producers' tallies by the same rules on every target:

* ``pstate`` in ``load.kernels`` layout, kept by the driver's producer: offered
  (every attempt), landed, refused (every refused attempt), turned away;
* checksums (``payload.mix``) completed here when a producer returns: the
  offered sum is that of seqs [0, next_seq) less the turned-away tail (a
  producer turned away at the gate stops for good, so those are its last seqs);
  the refused sum is the offered sum less the landed sum the driver kept per
  event the bus accepted. Nothing is stranded: a foreign bus does not cut a
  push off mid-way, it loses queued events, which the witness shows.

These buses choose each event's shard themselves, so producers know landed
counts per producer only (``shard_known_to_producer`` False) and the flush
evidence is the witness's per-event shortfall.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from ..common import names as N
from ..load import kernels as K
from ..native.payload import MOD, RangeChecksum, as_checksum, mix_range_sum
from .base import Capabilities, Delivery, FlushClaim, ShutdownClaim, Target
from .errors import TargetConfigError

# scenario -> net-mesh's own names, one explicit case each (a renamed schema value fails here)
NET_MESH_BACKPRESSURE = {"drop_newest": "DropNewest", "drop_oldest": "DropOldest",
                         "fail_producer": "FailProducer"}
NET_MESH_DRIVER = {"c-abi": "kernel", "binding": "binding"}


def _signed(value: int) -> int:
    value %= MOD
    return value - MOD if value >= 1 << 63 else value


#: reading the witness back past the run's deadline still gets this long (a final look)
READBACK_FLOOR_S = 1.0


class _Adapted(Target):
    """What the three drivers share: producer tallies, the pstate registry, claims."""

    note = ""

    def __init__(self, driver, producers: int):
        self.driver = driver
        self.producers = producers
        self._pstates: list = [None] * producers
        self._ranges = [RangeChecksum() for _ in range(producers)]
        self._shutdown_claim: ShutdownClaim | None = None
        self._shut = False

    # ------------------------------------------------------------------ producers
    def _landed_sum(self, p: int) -> int:
        raise NotImplementedError

    def _drive(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        self.driver.produce(p, params, pstate, zipf_cdf, stop, by_shard=by_shard, events=events)

    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        self._pstates[p] = pstate
        if pstate[K.S_DONE]:
            return          # turned away for good earlier: the bus is shut down
        try:
            self._drive(p, params, pstate, by_shard, zipf_cdf, stop, events)
        finally:
            self._settle_sums(p, pstate)

    def _settle_sums(self, p: int, pstate) -> None:
        """Offered and refused checksums by the rules of every target (module docstring)."""
        next_seq = int(pstate[K.S_NEXT_SEQ])
        turned_away = int(pstate[K.S_TURNED_AWAY])
        tail = int(mix_range_sum(next_seq - turned_away, next_seq)) if turned_away else 0
        offered = (self._ranges[p].upto(next_seq) - tail) % MOD
        pstate[K.S_OFFERED_SUM] = _signed(-tail)
        pstate[K.S_REFUSED_SUM] = _signed(offered - self._landed_sum(p))
        pstate[K.S_STRANDED_SUM] = 0

    def landed_now(self) -> list:
        """Per producer, events landed so far (producer side, read before a flush call)."""
        return [0 if s is None else int(s[K.S_LANDED]) for s in self._pstates]

    def refused_now(self) -> int:
        return sum(0 if s is None else int(s[K.S_REFUSED]) for s in self._pstates)

    def producer_stalling(self, p: int) -> bool:
        return bool(self.driver.producer_stalling(p))

    # ------------------------------------------------------------------ lifecycle
    def describe_native(self) -> list[str]:
        return list(self.driver.describe_native())

    def native_library(self) -> dict | None:
        """Which native library (file, release) drove the run, when the driver says."""
        fn = getattr(self.driver, "native_library", None)
        return fn() if fn is not None else None

    def prepare(self, say=lambda msg: None) -> None:
        self.driver.prepare(say)

    def start(self) -> None:
        self.driver.start()

    @property
    def shut_down(self) -> bool:
        return self._shut

    def shutdown_claim(self) -> ShutdownClaim | None:
        return self._shutdown_claim if self._shut else None

    def shard_fill(self):
        return None

    def latency_histograms(self):
        return self.driver.latency_histograms()

    def drops_by_shard(self):
        return None

    def release_faults(self) -> None:
        self.driver.release_faults()

    def close(self) -> None:
        self.driver.close()


# --------------------------------------------------------------------------- net-mesh
class NetMeshRunTarget(_Adapted):
    """net-mesh 0.45.1 as the runner drives it (scenario ``target: {net-mesh: ...}``)."""

    name = "net-mesh"
    layout = "-"

    def __init__(self, driver, producers: int, backpressure: str, label: str):
        super().__init__(driver, producers)
        self.shards = driver.config.num_shards
        self.capacity = driver.config.ring_buffer_capacity
        self.backpressure = backpressure
        self.label = label
        self._pending_faults: list = []
        self._timers: list[threading.Timer] = []
        self._delivery_cache = None
        self._generation = 0            # bumped whenever Redis may have changed under us
        self._cache_generation = -1
        self._evictions_at_flush: list = []
        self._final = None              # the streams as read after shutdown
        # monotonic time by which reading the witness back must end (the runner sets it
        # to the run's deadline); None: the stream reader's own budget
        self.readback_deadline: float | None = None

    @classmethod
    def from_scenario(cls, scenario) -> NetMeshRunTarget:
        from .netmesh.target import NetMeshConfig, NetMeshTarget, RedisSettings
        spec, bus = scenario.target, scenario.bus
        config = NetMeshConfig(
            num_shards=bus.shards, ring_buffer_capacity=bus.capacity,
            backpressure_mode=NET_MESH_BACKPRESSURE[bus.backpressure],
            adapter=spec.adapter, driver=NET_MESH_DRIVER[spec.driver], call="single",
            redis=RedisSettings(url=spec.redis_url, durable=spec.redis_durable),
            version=spec.version)
        config.validate()
        driver = NetMeshTarget(config, producers=scenario.load.producers)
        label = f"net-mesh {spec.version} ({spec.driver}, {spec.adapter})"
        return cls(driver, scenario.load.producers, bus.backpressure, label)

    def _landed_sum(self, p: int) -> int:
        return as_checksum(self.driver.producer_tallies(p)["accepted_checksum"])

    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        self._generation += 1
        try:
            super().produce(p, params, pstate, by_shard, zipf_cdf, stop, events)
        finally:
            self._generation += 1

    @property
    def capabilities(self) -> Capabilities:
        from .netmesh.target import COUNTERS, NOT_OBSERVABLE
        caps = self.driver.capabilities
        reasons = {N.EVENTS_DISPATCHED: NOT_OBSERVABLE["events_dispatched"],
                   N.SHUTDOWN_WAS_LOSSY: NOT_OBSERVABLE["shutdown_was_lossy"]
                   + "; counters are unreadable after net_shutdown (-8)",
                   "shard_fill": NOT_OBSERVABLE["shard_fill"], "latency": NOT_OBSERVABLE["latency"]}
        if caps.witness is None:
            reasons["delivery"] = "adapter noop: nothing downstream witnesses deliveries"
        if self.backpressure == "drop_oldest":
            reasons["drops"] = ("net-mesh attributes no DropOldest eviction to a producer: they "
                                "appear only as a total in net_stats' shard_events_dropped"
                                + self._evictions_note())
        note = ("producers are Python threads through the binding: figures include the GIL"
                if self.driver.config.driver == "binding" else "")
        return Capabilities(counters=frozenset(COUNTERS), witness=caps.witness,
                            faults=caps.faults, shard_known_to_producer=False,
                            reasons=reasons, ingested_counts="landed", note=note)

    def _evictions_note(self) -> str:
        total = self._evictions()
        return f" ({total:,} so far)" if total is not None else ""

    def _evictions(self):
        try:
            stats = self.driver.stats_json()
        except Exception:  # noqa: BLE001 - unreadable after shutdown or on a frozen bus
            stats = None
        if not stats:
            return self._evictions_at_flush[-1] if self._evictions_at_flush else None
        value = stats.get("shard_events_dropped")
        if isinstance(value, list):
            value = sum(value)
        return int(value) if isinstance(value, (int, float)) else None

    def counters(self) -> dict:
        return self.driver.counters()

    def describe_native(self) -> list[str]:
        return [f"target {self.label}: " + line for line in self.driver.describe_native()]

    # ------------------------------------------------------------------ flush / shutdown
    def flush(self, timeout_s: float) -> FlushClaim:
        self._generation += 1
        claim = self.driver.flush(timeout_s)
        self._generation += 1
        shortfall = None
        details = dict(claim.details)
        index = details.get("flush_index")
        mark = self.driver._flush_marks[index] if index is not None else None
        if mark is not None and mark.tips is None and not claim.timed_out:
            # Redis did not answer right after the return (frozen): stream ids are
            # Redis's wall-clock milliseconds, so what was in Redis at the return is
            # every entry with an id up to now (read back later, once Redis answers).
            now_ms = int(time.time() * 1000)
            mark.tips = {s: f"{now_ms}-18446744073709551615".encode() for s in range(self.shards)}
            details["tips"] = "from the wall clock: Redis did not answer at flush return"
        if self.driver.config.adapter == "redis" and not claim.timed_out and mark is not None:
            # only what was in Redis at the return (the tips): bounded even under load
            evidence = self.driver.delivery(until=mark.tips, budget_s=self._readback_budget())
            # what the flush record reads next (its witness); producers still running
            # under load keep the generation, their return makes the next read fresh
            self._delivery_cache, self._cache_generation = evidence, self._generation
            if evidence is not None and index < len(evidence.flushes):
                f = evidence.flushes[index]
                if f.observable:
                    missing = sum(max(0, m) for m in f.missing_at_return)
                    evicted = self._evictions() if self.backpressure == "drop_oldest" else 0
                    self._evictions_at_flush.append(evicted or 0)
                    shortfall = max(0, missing - (evicted or 0))
                    details.update(landed_before=list(f.landed_before),
                                   in_redis_at_return=list(f.in_redis_at_return),
                                   evicted_total=evicted)
        return replace(claim, witness_shortfall=shortfall, details=details)

    def shutdown(self, grace_s: float) -> ShutdownClaim:
        if self._shut:
            return self._shutdown_claim
        self._generation += 1
        claim = self.driver.shutdown(grace_s)
        self._shut = True
        self._generation += 1
        if claim is None:
            claim = ShutdownClaim(lossy=None, grace_s=grace_s)
        self._shutdown_claim = claim
        return claim

    # ------------------------------------------------------------------ evidence
    def _readback_budget(self) -> float:
        """Seconds the streams may take to read back: what is left of the run's deadline
        (at least READBACK_FLOOR_S), at most the reader's own budget."""
        from .netmesh.streams import READ_BUDGET_S
        if self.readback_deadline is None:
            return READ_BUDGET_S
        return min(READ_BUDGET_S, max(READBACK_FLOOR_S, self.readback_deadline - time.monotonic()))

    def _stream_evidence(self):
        """The streams read back: cached while nothing could have changed them, and for
        good once read after shutdown (the record is written after Redis is stopped)."""
        if self._final is not None:
            return self._final
        if self._cache_generation == self._generation and self._delivery_cache is not None:
            return self._delivery_cache
        evidence = self.driver.delivery(budget_s=self._readback_budget())
        self._delivery_cache, self._cache_generation = evidence, self._generation
        if self._shut and evidence is not None:
            self._final = evidence
        return evidence

    def delivery(self) -> Delivery | None:
        ev = self._stream_evidence()
        if ev is None:
            return None
        zeros = [[0] * self.producers for _ in range(self.shards)]
        attributed = self.backpressure != "drop_oldest"
        return Delivery(
            witness="redis streams", received_by_shard=[list(r) for r in ev.received_by_shard],
            last_seq_by_shard=[list(r) for r in ev.last_seq_by_shard],
            received_sum=[p.checksum % MOD for p in ev.producers],
            order_violations=sum(p.order_violations for p in ev.producers),
            evicted_by_shard=zeros if attributed else None,
            rejected_by_shard=zeros if attributed else None,
            evicted_sum=[0] * self.producers if attributed else None,
            rejected_sum=[0] * self.producers if attributed else None,
            duplicates=sum(p.duplicates for p in ev.producers),
            received_and_dropped=sum(p.refused_delivered for p in ev.producers),
            incomplete=ev.incomplete)

    # ------------------------------------------------------------------ faults
    def arm_fault(self, fault) -> dict:
        kind = fault.tag
        if kind not in self.driver.capabilities.faults:
            raise TargetConfigError("fault", f"the net-mesh target cannot inject {kind} here")
        self._pending_faults.append(fault)
        return {"fault": kind, "after_s": fault.after / 1e9, "armed": "at the next run"}

    def before_load(self) -> None:
        """Faults armed by a step fire ``after`` into the next run (as on the builtin bus)."""
        pending, self._pending_faults = self._pending_faults, []
        for fault in pending:
            self._generation += 1
            kind = fault.tag
            if kind == "stall_producer":
                self.driver.arm_fault({"kind": kind, "producer": fault.producer,
                                       "at_s": fault.after / 1e9, "for_s": fault.duration / 1e9})
                continue
            if kind == "stall_adapter":
                order = {"kind": kind, "for_s": fault.duration / 1e9}
            else:
                order = {"kind": kind, "restart_after_s": (None if fault.restart_after is None
                                                           else fault.restart_after / 1e9)}
            timer = threading.Timer(fault.after / 1e9, self._fire, args=(order,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _fire(self, order) -> None:
        self._generation += 1
        try:
            self.driver.arm_fault(order)
        except Exception:  # noqa: BLE001, S110 - the server may be closing: nothing to freeze
            pass

    def release_faults(self) -> None:
        for t in self._timers:
            t.cancel()
        for t in self._timers:
            if t is not threading.current_thread():
                t.join(5.0)
        self._timers.clear()
        self._generation += 1
        self.driver.release_faults()

    def close(self) -> None:
        self.release_faults()
        if self._shut and self._final is None and self.driver.config.adapter == "redis":
            try:
                self._stream_evidence()      # the final evidence, before Redis is stopped
            except Exception:  # noqa: BLE001, S110 - a dead Redis: the record says no witness
                pass
        self.driver.close()


# --------------------------------------------------------------------------- c-abi / python
class _ForeignRunTarget(_Adapted):
    """c-abi and python targets: the bus's sink (when it takes one) is the witness."""

    layout = "-"

    def __init__(self, driver, producers: int, shards: int, label: str):
        super().__init__(driver, producers)
        self.shards = shards
        self.capacity = 0
        self.label = label

    def _landed_sum(self, p: int) -> int:
        return int(self.driver.landed_checksums()[p])

    def counters(self) -> dict:
        values = dict(self.driver.counters())
        claim = self._shutdown_claim
        if N.SHUTDOWN_WAS_LOSSY not in values:
            stats = self.driver.stats() if hasattr(self.driver, "stats") else {}
            if N.SHUTDOWN_WAS_LOSSY in stats:
                values[N.SHUTDOWN_WAS_LOSSY] = stats[N.SHUTDOWN_WAS_LOSSY]
            elif claim is not None and claim.lossy is not None:
                values[N.SHUTDOWN_WAS_LOSSY] = int(claim.lossy)   # what its shutdown said
        return values

    @property
    def capabilities(self) -> Capabilities:
        caps = self.driver.capabilities
        reasons = {}
        for name in N.COUNTER_NAMES:
            if name not in caps.counters:
                reasons[name] = f"the {self.name} bus's stats do not export {name}"
        if not caps.lossy_flag:
            reasons[N.SHUTDOWN_WAS_LOSSY] = (f"the {self.name} bus exports no shutdown_was_lossy "
                                             "and its shutdown declares no lossy result")
        if caps.witness is None:
            reasons["delivery"] = (f"the {self.name} bus takes no sink: nothing busbench can read "
                                   "witnesses deliveries")
        if not self._attributable():
            reasons["drops"] = ("the bus counted events dropped after taking them without saying "
                                "whose: a drop cannot be told from a loss per producer")
        return replace(caps, reasons=reasons, note=self.note)

    def _attributable(self) -> bool:
        """Every drop the bus counts is a refusal producers saw (so none is of an event it took)."""
        dropped = self.driver.counters().get(N.EVENTS_DROPPED) if self._started_ok() else None
        return dropped is None or dropped <= self.refused_now()

    def _started_ok(self) -> bool:
        try:
            self.driver.counters()
            return True
        except Exception:  # noqa: BLE001
            return False

    def flush(self, timeout_s: float) -> FlushClaim:
        landed = self.landed_now()
        claim = self.driver.flush(timeout_s)
        shortfall = None
        if self.driver.sink_state is not None and claim.reached:
            got = self.driver.delivery()
            shortfall = sum(got.barrier_shortfall(landed))
        return replace(claim, witness_shortfall=shortfall,
                       details={**claim.details, "landed_before": landed})

    def shutdown(self, grace_s: float) -> ShutdownClaim:
        if self._shut:
            return self._shutdown_claim
        claim = self.driver.shutdown(grace_s)
        self._shut = True
        self._shutdown_claim = claim if claim is not None else ShutdownClaim(lossy=None,
                                                                             grace_s=grace_s)
        return self._shutdown_claim

    def delivery(self) -> Delivery | None:
        if self.driver.sink_state is None:
            return None
        d = self.driver.delivery()
        state = self.driver.sink_state
        from .sink import C_LAST_SEQ
        last = [[int(state.array[state._cell(s, p) + C_LAST_SEQ]) for p in range(self.producers)]
                for s in range(state.shards)]
        by_shard = [[d.received_per_producer_shard[p][s] for p in range(self.producers)]
                    for s in range(state.shards)]
        zeros = [[0] * self.producers for _ in range(state.shards)]
        attributed = self._attributable()
        return Delivery(
            witness="sink", received_by_shard=by_shard, last_seq_by_shard=last,
            received_sum=[c % MOD for c in d.checksum],
            order_violations=sum(d.reordered), evicted_by_shard=zeros if attributed else None,
            rejected_by_shard=zeros if attributed else None,
            evicted_sum=[0] * self.producers if attributed else None,
            rejected_sum=[0] * self.producers if attributed else None,
            duplicates=sum(d.duplicates), received_and_dropped=None)

    def arm_fault(self, fault) -> dict:
        raise TargetConfigError("fault", f"the {self.name} target cannot inject {fault.tag}")


class CAbiRunTarget(_ForeignRunTarget):
    name = "c-abi"

    @classmethod
    def from_scenario(cls, scenario) -> CAbiRunTarget:
        from .cabi import CAbiTarget
        spec = scenario.target
        driver = CAbiTarget(spec, producers=scenario.load.producers, shards=scenario.bus.shards,
                            base_dir=Path.cwd())
        library = (spec.library if isinstance(spec.library, str)
                   else spec.library.python_module)
        return cls(driver, scenario.load.producers, driver.shards or scenario.bus.shards,
                   f"c-abi {Path(library).name if isinstance(spec.library, str) else library}")


class PythonRunTarget(_ForeignRunTarget):
    name = "python"
    note = "producers are Python threads: figures include the GIL"

    @classmethod
    def from_scenario(cls, scenario) -> PythonRunTarget:
        from .python_target import PythonTarget
        spec = scenario.target
        driver = PythonTarget(spec, producers=scenario.load.producers, shards=scenario.bus.shards,
                              base_dir=Path.cwd())
        return cls(driver, scenario.load.producers, scenario.bus.shards,
                   f"python {spec.factory} (Python threads, GIL)")
