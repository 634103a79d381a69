"""The kafka target: librdkafka's producer, judged by what the broker's log holds.

Shapes (docs/targets/kafka.md has the user's view):

* the producers are busbench's one load loop (``load.foreign.produce_ccall``)
  calling ``rd_kafka_produce`` as ``kernels.call_spec`` describes it;
* partitions are shards: the load's key distribution picks each event's
  partition and the loop hands it to ``rd_kafka_produce`` explicitly, so the
  producers know per (producer, shard) what landed (``shard_known_to_producer``);
* ``bus.capacity`` is ``queue.buffering.max.messages``; a QUEUE_FULL (-184) is a
  refusal the producer counts; ``block`` adds ``RD_KAFKA_MSG_F_BLOCK`` (safe
  only because the target's own poll thread serves the queue);
* ``bus.batch`` is ``batch.num.messages`` (max_events) and ``linger.ms`` (max_delay);
* the broker is librdkafka's mock cluster, hosted in a handle of its own (so it
  outlives the producer under test), on 127.0.0.1, unless ``bootstrap`` names a
  real broker;
* the witness is the log, read back per partition with a consumer after the
  fact, bounded in time and count; the library's own word is its delivery
  reports (a ``@cfunc`` served by the poll thread), its statistics JSON and the
  return codes of flush and purge (destroy returns nothing).
"""
from __future__ import annotations

import ctypes
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from ...common import names as N
from ...load import foreign as LF
from ...load import kernels as LK
from ...native import text_payload as PL
from ...native.payload import MOD
from .. import coldstart
from ..base import Capabilities, Delivery, FlushClaim, ShutdownClaim, Target
from ..errors import TargetConfigError
from ..sink import SinkState, record_rows, warm_record_rows
from . import abi
from . import kernels as KK

SHUTDOWN_MODES = ("destroy", "flush", "purge")
FAULTS = frozenset({"broker_down", "broker_rtt", "produce_errors", "kill_cluster"})
#: busbench counter <- librdkafka statistics (only what means the same thing)
COUNTER_SOURCES = {N.EVENTS_INGESTED: "sum of topics.<t>.partitions.<p>.msgs (messages produce() accepted)"}
NOT_EXPORTED = {
    N.EVENTS_DISPATCHED: "librdkafka's txmsgs counts messages transmitted, retries included, not "
                         "messages the broker acknowledged; the log stands in for it",
    N.EVENTS_DROPPED: "librdkafka exports no count of messages it failed (txerrs counts request "
                      "errors); the delivery reports' failures are recorded per (partition, producer)",
    N.BATCHES_DISPATCHED: "librdkafka's produce requests are not busbench's batches",
    N.SHUTDOWN_WAS_LOSSY: "librdkafka has no lossy flag; lossy_shutdown judges its delivery reports "
                          "and purge results against the log instead",
}
WITNESS = "broker log"
READ_BUDGET_S = 60.0
READ_MAX_MESSAGES = 50_000_000
MOCK_BROKERS = 1


@dataclass(frozen=True)
class KafkaConfig:
    version: str = abi.REQUIRED_VERSION
    bootstrap: str | None = None
    topic: str | None = None
    config: dict = field(default_factory=dict)
    shutdown: str = "flush"
    partitions: int = 4
    capacity: int = 4096
    backpressure: str = "drop_newest"
    batch_events: int | None = None
    linger_ms: float | None = None
    producers: int = 2
    library: str | None = None


class KafkaTarget(Target):
    name = "kafka"
    layout = "-"

    def __init__(self, config: KafkaConfig):
        self.config = config
        self.shards = config.partitions
        self.capacity = config.capacity
        self.producers = config.producers
        self.topic = config.topic or f"busbench-{uuid.uuid4().hex[:10]}"
        self.lib: abi.KafkaLib | None = None
        self.mock_rk = 0
        self.mock = 0
        self.bootstrap = config.bootstrap
        self.rk = 0
        self.rkt = 0
        self.gate = LK.new_gate()
        self.reports = KK.new_report_state(self.producers, self.shards)
        self.xstate = [LK.empty_xstate() for _ in range(self.producers)]
        self._buffers: dict[int, tuple] = {}      # producer -> (payload, ptrs, lens)
        self.call = None                          # kernels.call_spec once started
        self.calls = np.zeros(LF.C_LEN, np.int64)
        self._pstates: list = [None] * self.producers
        self._poll_thread: threading.Thread | None = None
        self._poll_stop = threading.Event()
        self._stats_cb = abi.STATS_CB(self._on_stats)     # kept alive while the handle lives
        self._stats_lock = threading.Lock()
        self._stats: dict | None = None
        self._stats_seen = 0
        self._stats_at = 0.0
        self._last_return = 0.0
        self._stats_text: bytes | None = None
        self._counters: dict = {}
        self._shut = False
        self._shutdown_claim: ShutdownClaim | None = None
        self._prepared = False
        self._pending_faults: list = []
        self._timers: list[threading.Timer] = []
        self._fault_log: list[dict] = []
        self._cluster_killed = False
        self._cut: dict | None = None      # partition -> high watermark at a flush's return
        self._final_delivery: Delivery | None = None
        self._after_flush = False
        self._read_note: str = ""
        self.flush_rcs: list[int] = []
        self.leaked: list[str] = []

    @classmethod
    def from_scenario(cls, scenario) -> KafkaTarget:
        """The scenario's bus and target sections, translated key by key (the keys the
        target cannot honour were refused when the scenario was validated)."""
        spec, bus = scenario.target, scenario.bus
        batch = bus.batch if "batch" in bus.model_fields_set else None
        return cls(KafkaConfig(
            version=spec.version, bootstrap=spec.bootstrap, topic=spec.topic, config=dict(spec.config),
            shutdown=spec.shutdown, partitions=bus.shards, capacity=bus.capacity,
            backpressure=bus.backpressure,
            batch_events=None if batch is None else batch.max_events,
            linger_ms=None if batch is None else batch.max_delay / 1e6,
            producers=scenario.load.producers))

    # ------------------------------------------------------------------ contract
    @property
    def capabilities(self) -> Capabilities:
        reasons = dict(NOT_EXPORTED)
        reasons["latency"] = "not measured on this target"
        reasons["shard_fill"] = "librdkafka's per-partition queue depth is in its statistics only, " \
                                "up to statistics.interval.ms stale: not used as a fill gauge"
        if self._read_note:
            reasons["delivery"] = self._read_note
        # witness_hint: the log exists but was not (completely) read: checks needing it
        # are not evaluable, saying why, rather than "this target has no witness"
        return Capabilities(counters=frozenset(COUNTER_SOURCES), witness=WITNESS,
                            witness_hint=self._read_note,
                            drops_attributed=True, faults=FAULTS if self.config.bootstrap is None else frozenset(),
                            shard_known_to_producer=True, reasons=reasons, ingested_counts="landed",
                            shutdown_account=True,
                            note="the witness is the broker's log, read back after the fact")

    def describe_native(self) -> list[str]:
        if self.config.library is None and abi.installed_version() != self.config.version:
            where = f"of confluent-kafka {self.config.version} from busbench's release cache"
        else:
            where = abi.find_library(self.config.library) if self._findable() else "(not found)"
        lines = [f"target kafka {self.config.version}: loading librdkafka {where} (RTLD_LOCAL)"]
        if self.bootstrap:
            lines.append(f"  broker: {self.bootstrap} (yours), topic {self.topic}")
        else:
            lines.append(f"  broker: librdkafka's mock cluster on 127.0.0.1 in a handle of its own, "
                         f"topic {self.topic} ({self.shards} partitions)")
        lines.append("  witness: the log, read back with confluent_kafka.Consumer")
        return lines

    def _findable(self) -> bool:
        try:
            abi.find_library(self.config.library)
            return True
        except abi.KafkaError:
            return False

    def native_library(self) -> dict | None:
        return None if self.lib is None else self.lib.describe()

    def prepare(self, say=lambda msg: None) -> None:
        if self._prepared:
            return
        self.lib = resolve_library(self.config)
        say(f"librdkafka {self.lib.librdkafka} (confluent-kafka {self.lib.version}) loaded from {self.lib.path}")
        try:
            import confluent_kafka  # noqa: F401  (the witness's consumer)
        except ImportError as e:
            raise abi.KafkaError(f"confluent-kafka does not import ({e}): {abi.INSTALL_HINT}") from e
        self._warm(say)
        self._prepared = True

    def _warm(self, say=None) -> None:
        """Compile (or load from cache) the one loop: a closed gate turns the event away
        before any call (the call array is still empty)."""
        coldstart.compile_foreign_loop(say, extra=(("witness", warm_record_rows),))
        gate = LK.new_gate()
        LK.close_gate(gate)
        LK.gate_inflight(gate)
        params = np.zeros(LK.P_LEN, np.int64)
        params[LK.P_BATCH] = 1
        params[LK.P_MAX_EVENTS] = 1
        params[LK.P_SHARDS] = 1
        LF.produce_ccall(np.zeros(LF.C_LEN, np.int64), params, np.zeros(LK.S_LEN, np.int64),
                         LK.empty_xstate(), np.zeros(16, np.int64), PL.template_array(1),
                         np.zeros(1, np.int64), np.zeros(1, np.int64), gate=gate)

    def producer_settings(self) -> dict:
        """The producer's librdkafka configuration: busbench's mapping, then the user's."""
        c = self.config
        settings = {"bootstrap.servers": self.bootstrap,
                    "queue.buffering.max.messages": c.capacity,
                    "statistics.interval.ms": 100}
        if c.batch_events is not None:
            settings["batch.num.messages"] = c.batch_events
        if c.linger_ms is not None:
            settings["linger.ms"] = f"{c.linger_ms:g}"
        settings.update(c.config)
        return settings

    def start(self) -> None:
        self.prepare()
        if self.rk:
            return
        lib = self.lib
        cdll = lib.cdll
        try:
            if self.bootstrap is None:
                self.mock_rk = lib.new(abi.RD_KAFKA_PRODUCER, lib.conf({"log_level": "0"}))
                self.mock = cdll.rd_kafka_mock_cluster_new(self.mock_rk, MOCK_BROKERS)
                if not self.mock:
                    raise abi.KafkaError("rd_kafka_mock_cluster_new returned NULL")
                self.bootstrap = cdll.rd_kafka_mock_cluster_bootstraps(self.mock).decode()
                if not all(h.startswith("127.0.0.1:") for h in self.bootstrap.split(",")):
                    raise abi.KafkaError(f"the mock cluster listens on {self.bootstrap}, not 127.0.0.1")
                rc = cdll.rd_kafka_mock_topic_create(self.mock, self.topic.encode(), self.shards, 1)
                if rc != 0:
                    raise abi.KafkaError(f"rd_kafka_mock_topic_create: {lib.describe_err(rc)}")
            conf = lib.conf(self.producer_settings())
            cdll.rd_kafka_conf_set_dr_msg_cb(conf, KK.dr_msg_cb.address)
            cdll.rd_kafka_conf_set_stats_cb(conf, ctypes.cast(self._stats_cb, ctypes.c_void_p))
            cdll.rd_kafka_conf_set_opaque(conf, self.reports.ctypes.data)
            self.rk = lib.new(abi.RD_KAFKA_PRODUCER, conf)
            self.rkt = cdll.rd_kafka_topic_new(self.rk, self.topic.encode(), None)
            if not self.rkt:
                raise abi.KafkaError(f"rd_kafka_topic_new({self.topic}) returned NULL")
            self._check_partitions()
        except abi.KafkaConfigRefused as e:
            # a setting busbench derived is named by the scenario key it came from
            from ...scenario.kafka import KAFKA_DERIVED
            where = KAFKA_DERIVED.get(e.key, f"target.kafka.config.{e.key}")
            raise TargetConfigError(where, f"librdkafka refused {e.key}: {e.why}"
                                    if e.key in KAFKA_DERIVED else e.why) from None
        flags = abi.MSG_F_COPY
        if self.config.backpressure == "block":
            flags |= abi.MSG_F_BLOCK
        self.call = KK.call_spec(self.rkt, lib.addresses["rd_kafka_produce"],
                                 lib.addresses["rd_kafka_last_error"], flags)
        self.calls = self.call.to_array()
        self._poll_thread = threading.Thread(target=self._poll_loop, name="busbench-kafka-poll",
                                             daemon=True)
        self._poll_thread.start()

    def _check_partitions(self) -> None:
        """The topic has exactly bus.shards partitions (a real broker's topic may not)."""
        rc, _low, _high = self.lib.watermarks(self.rk, self.topic, self.shards - 1, 5000)
        if rc != 0:
            raise abi.KafkaError(f"topic {self.topic} has no partition {self.shards - 1} "
                                 f"(bus.shards is {self.shards}): {self.lib.describe_err(rc)}")
        rc, _low, _high = self.lib.watermarks(self.rk, self.topic, self.shards, 2000)
        if rc == 0:
            raise abi.KafkaError(f"topic {self.topic} has more than {self.shards} partitions "
                                 f"(bus.shards): busbench must know every partition it writes to")

    def _poll_loop(self) -> None:
        """Serve delivery reports and statistics until told to stop (bounded waits)."""
        poll = self.lib.cdll.rd_kafka_poll
        rk = self.rk
        while not self._poll_stop.is_set():
            poll(rk, 50)

    def _on_stats(self, _rk, text, length, _opaque) -> int:
        raw = ctypes.string_at(text, length)
        with self._stats_lock:
            self._stats_text = raw
            self._stats_seen += 1
            self._stats_at = time.monotonic()
        return 0            # librdkafka frees the JSON

    def stats(self) -> dict | None:
        with self._stats_lock:
            raw = self._stats_text
        if raw is None:
            return None
        if self._stats is None or self._stats.get("_raw_len") != len(raw):
            try:
                self._stats = json.loads(raw)
                self._stats["_raw_len"] = len(raw)
            except ValueError:
                return None
        return self._stats

    def fresh_stats(self, timeout_s: float = 1.0) -> dict | None:
        """Statistics emitted after this call (two intervals: one may have been half-built)."""
        with self._stats_lock:
            seen = self._stats_seen
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and self._poll_thread is not None and self._poll_thread.is_alive():
            with self._stats_lock:
                if self._stats_seen >= seen + 2:
                    break
            time.sleep(0.01)
        return self.stats()

    # ------------------------------------------------------------------ producers
    def produce(self, p, params, pstate, by_shard, zipf_cdf, stop, events) -> None:
        """Producer ``p``: busbench's one loop calling ``rd_kafka_produce`` (GIL released),
        inside the target's gate (``shutdown`` destroys the handle only once it is closed
        and no call is in flight)."""
        self._pstates[p] = pstate
        if pstate[LK.S_DONE]:
            return
        if self.call is None:
            raise RuntimeError("start() the target before producing")
        params[LK.P_PRODUCER] = p              # the payloads and opaques name their producer
        if self.config.backpressure != "fail_producer":
            # QUEUE_FULL under drop_newest gives the event up: only fail_producer makes
            # it a failure that load.on_fail: retry offers again (docs/targets/kafka.md)
            params[LK.P_RETRY_FAILED] = 0
        batch = int(params[LK.P_BATCH])
        buffers = self._buffers.get(p)
        if buffers is None or buffers[0].shape[0] < batch:
            buffers = self._buffers[p] = (PL.template_array(batch), np.zeros(batch, np.int64),
                                          np.zeros(batch, np.int64))
        try:
            LF.produce_ccall(self.calls, params, pstate, self.xstate[p], stop, *buffers,
                             zipf_cdf=zipf_cdf, by_shard=by_shard, events=events, gate=self.gate)
        finally:
            with self._stats_lock:
                self._last_return = time.monotonic()
        x = self.xstate[p]
        if x[LK.X_UNDECLARED]:
            raise abi.KafkaError(
                f"rd_kafka_produce answered {self.lib.describe_err(int(x[LK.X_LAST_CODE]))}, which "
                f"busbench does not expect of it ({self.call.describe()}): producer {p} stopped; "
                f"librdkafka did not enqueue that message")

    def producer_stalling(self, p: int) -> bool:
        return False

    def producer_tallies(self, p: int) -> dict:
        """Calls answered QUEUE_FULL, FATAL (closed), and another code (it stopped the producer)."""
        x = self.xstate[p]
        return {"queue_full": int(x[LK.X_REFUSALS]), "fatal": int(x[LK.X_CLOSED]),
                "other_errors": int(x[LK.X_ERRORS]), "last_error": int(x[LK.X_LAST_CODE])}

    # ------------------------------------------------------------------ library's word
    def delivery_reports(self) -> dict:
        """What librdkafka reported through dr_msg_cb, per (partition, producer)."""
        st = self.reports.copy()
        cells = st[KK.D_CELLS:].reshape(self.shards, self.producers, KK.CELL)
        errors = {}
        for j in range(KK.D_ERR_SLOTS):
            code, count = int(st[KK.D_HEADER + 2 * j]), int(st[KK.D_HEADER + 2 * j + 1])
            if count:
                errors[code] = count
        return {"delivered": cells[:, :, KK.K_OK].tolist(), "failed": cells[:, :, KK.K_FAILED].tolist(),
                "delivered_sum": [int(cells[:, p, KK.K_OK_SUM].astype(np.uint64).sum(dtype=np.uint64))
                                  for p in range(self.producers)],
                "failed_sum": [int(cells[:, p, KK.K_FAILED_SUM].astype(np.uint64).sum(dtype=np.uint64))
                               for p in range(self.producers)],
                "failed_by_error": {f"{c} ({self.lib.err2str(c) if self.lib else '?'})": n
                                    for c, n in errors.items()},
                "reports": int(st[KK.D_REPORTS]), "foreign": int(st[KK.D_FOREIGN])}

    def counters(self) -> dict:
        if not self._shut:
            stats = self.stats()
            if stats is not None:
                self._counters = _counters_from_stats(stats, self.topic)
        return dict(self._counters)

    def outq_len(self) -> int | None:
        return self.lib.cdll.rd_kafka_outq_len(self.rk) if self.rk and not self._shut else None

    # ------------------------------------------------------------------ flush / shutdown
    def flush(self, timeout_s: float) -> FlushClaim:
        if not self.rk or self._shut:
            return FlushClaim(reached=False, timed_out=False, waited_s=0.0,
                              details={"note": "the producer is destroyed"})
        timeout_ms = max(0, int(timeout_s * 1000))
        t0 = time.monotonic()
        rc = self.lib.cdll.rd_kafka_flush(self.rk, timeout_ms)
        waited = time.monotonic() - t0
        self.flush_rcs.append(rc)
        self._cut = self._high_watermarks()
        self._after_flush = True
        return FlushClaim(reached=rc == 0, timed_out=rc == abi.ERR_TIMED_OUT, waited_s=waited,
                          details={"rc": self.lib.describe_err(rc), "timeout_ms": timeout_ms,
                                   "log_at_return": self._cut, "outq_len_after": self.outq_len()})

    def _high_watermarks(self) -> dict | None:
        """Per partition, the log's end right after a flush returned (the broker's word)."""
        out = {}
        for p in range(self.shards):
            rc, _low, high = self.lib.watermarks(self.rk, self.topic, p, 2000)
            if rc != 0:
                return None
            out[p] = high
        return out

    def shutdown(self, grace_s: float) -> ShutdownClaim:
        if self._shut:
            return self._shutdown_claim
        mode = self.config.shutdown
        t0 = time.monotonic()
        details: dict = {"mode": mode}
        LK.close_gate(self.gate)
        if not self._wait_inflight(max(grace_s, 1.0)):
            # a producer still inside rd_kafka_produce (F_BLOCK on a full queue): free room
            self.lib.cdll.rd_kafka_purge(self.rk, abi.PURGE_F_QUEUE | abi.PURGE_F_NON_BLOCKING)
            details["purged_to_unblock"] = True
            self._wait_inflight(5.0)
        if LK.gate_inflight(self.gate) != 0:
            details["note"] = "a producer never left rd_kafka_produce: the handle is leaked, not destroyed"
            self._shut = True
            self.leaked.append("producer")
            self._shutdown_claim = ShutdownClaim(lossy=None, duration_s=time.monotonic() - t0,
                                                 grace_s=grace_s, details=details)
            return self._shutdown_claim
        if mode == "flush":
            rc = self.lib.cdll.rd_kafka_flush(self.rk, int(grace_s * 1000))
            details["flush_rc"] = self.lib.describe_err(rc)
        elif mode == "purge":
            rc = self.lib.cdll.rd_kafka_purge(self.rk, abi.PURGE_F_QUEUE | abi.PURGE_F_INFLIGHT)
            details["purge_rc"] = self.lib.describe_err(rc)
            # purged messages are reported failed (-152 / -151) through the poll thread
            self.lib.cdll.rd_kafka_flush(self.rk, int(max(grace_s, 0.1) * 1000))
        if mode != "destroy":
            self.fresh_stats(0.5)       # after flush or purge: waiting changes nothing they did
        # destroy alone is called at once, as a user would: the statistics count only when
        # emitted after the producers' last call returned (else events_ingested is absent)
        with self._stats_lock:
            fresh = self._stats_at > self._last_return
        stats = self.stats()
        if stats is not None and fresh:
            self._counters = _counters_from_stats(stats, self.topic)
        else:
            self._counters = {}
            details["counters"] = "librdkafka's statistics were not emitted after the last produce call"
        details["held_at_destroy"] = self.outq_len()
        before = self.delivery_reports()
        self._stop_polling()
        self.lib.cdll.rd_kafka_topic_destroy(self.rkt)
        self.lib.cdll.rd_kafka_destroy(self.rk)
        self.rkt = self.rk = 0
        self._shut = True
        after = self.delivery_reports()
        details["destroy_rc"] = "none: rd_kafka_destroy returns void"
        details["reports_during_destroy"] = after["reports"] - before["reports"]
        details["account"] = {"delivered": [sum(col) for col in zip(*after["delivered"])],
                              "failed": [sum(col) for col in zip(*after["failed"])],
                              "failed_by_error": after["failed_by_error"]}
        self._shutdown_claim = ShutdownClaim(lossy=None, duration_s=time.monotonic() - t0,
                                             grace_s=grace_s, details=details)
        return self._shutdown_claim

    def _wait_inflight(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while LK.gate_inflight(self.gate) != 0 and time.monotonic() < end:
            time.sleep(0.001)
        return LK.gate_inflight(self.gate) == 0

    def _stop_polling(self) -> None:
        self._poll_stop.set()
        if self._poll_thread is not None:
            self._poll_thread.join(10.0)

    @property
    def shut_down(self) -> bool:
        return self._shut

    def shutdown_claim(self) -> ShutdownClaim | None:
        return self._shutdown_claim if self._shut else None

    # ------------------------------------------------------------------ evidence
    def drops_by_shard(self):
        """(evicted, rejected) per (shard, producer): librdkafka evicts nothing; a message
        it reported failed is the downstream's rejection, attributed by its report."""
        failed = self.delivery_reports()["failed"]
        return [[0] * self.producers for _ in range(self.shards)], failed

    def delivery(self) -> Delivery | None:
        if self._final_delivery is not None:
            return self._final_delivery
        cut, self._cut = self._cut, None
        after_flush, self._after_flush = self._after_flush, False
        if self.bootstrap is None:
            return None
        if self._cluster_killed:
            self._read_note = "the mock cluster was killed: its log is gone"
            return None
        if after_flush and cut is None:
            self._read_note = "the log's end at the flush's return could not be read (broker unreachable)"
            return None
        if self._shut:
            self.release_faults()      # the producer is gone: bring the broker back to read its log
        try:
            d = self._read_log(cut)
        except Exception as e:  # noqa: BLE001 - the consumer's KafkaException: no witness now
            self._read_note = f"witness read-back failed: {e}"
            return None
        if self._shut and cut is None and d is not None:
            self._final_delivery = d
        return d

    def _read_log(self, cut: dict | None) -> Delivery | None:
        """The log read back per partition (up to ``cut``, or its end), into a SinkState."""
        from confluent_kafka import Consumer, TopicPartition

        state = SinkState(self.producers, self.shards, latency=False)
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"busbench-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "enable.partition.eof": False,
                             "log_level": 0, "fetch.wait.max.ms": 10})
        expected, read = 0, 0
        deadline = time.monotonic() + READ_BUDGET_S
        try:
            ends = {}
            for p in range(self.shards):
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5.0)
                end = high if cut is None else min(high, cut[p])
                ends[p] = (low, end)
                expected += max(0, end - low)
            consumer.assign([TopicPartition(self.topic, p, low) for p, (low, end) in ends.items() if end > low])
            pos = {p: low for p, (low, _end) in ends.items()}
            rows: dict[int, list] = {p: [] for p in range(self.shards)}
            foreign = {p: 0 for p in range(self.shards)}
            while read < min(expected, READ_MAX_MESSAGES) and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=10_000, timeout=0.2):
                    if m.error() is not None:
                        continue
                    p = m.partition()
                    if m.offset() >= ends[p][1]:
                        continue
                    pos[p] = max(pos[p], m.offset() + 1)
                    read += 1
                    v = m.value()
                    if v is not None and len(v) == PL.SIZE:
                        rows[p].append(v)
                    else:
                        foreign[p] += 1
                if all(pos[p] >= ends[p][1] for p in ends):
                    break
            for p in range(self.shards):
                if rows[p] or foreign[p]:
                    arr = (np.frombuffer(b"".join(rows[p]), np.uint8).reshape(-1, PL.SIZE) if rows[p]
                           else np.zeros((0, PL.SIZE), np.uint8))
                    record_rows(state.array, state.hists, p, arr, foreign[p])
        finally:
            consumer.close()
        self._read_note = "" if read >= expected else \
            f"witness read-back incomplete: {read:,} of {expected:,} entries read"
        if read < expected:
            return None
        got = state.read()
        last = [[int(state.array[state._cell(s, p) + 2]) for p in range(self.producers)]
                for s in range(self.shards)]
        failed = self.delivery_reports()
        return Delivery(
            witness=WITNESS,
            received_by_shard=[[got.received_per_producer_shard[p][s] for p in range(self.producers)]
                               for s in range(self.shards)],
            last_seq_by_shard=last, received_sum=[c % MOD for c in got.checksum],
            order_violations=sum(got.reordered),
            evicted_by_shard=[[0] * self.producers for _ in range(self.shards)],
            rejected_by_shard=failed["failed"],
            evicted_sum=[0] * self.producers, rejected_sum=[c % MOD for c in failed["failed_sum"]],
            duplicates=sum(got.duplicates), received_and_dropped=None)

    @property
    def read_note(self) -> str:
        return self._read_note

    # ------------------------------------------------------------------ faults
    def arm_fault(self, fault) -> dict:
        if fault.tag not in self.capabilities.faults:
            raise TargetConfigError("fault", f"the kafka target cannot inject {fault.tag} "
                                    + ("against a broker it did not start" if self.config.bootstrap else ""))
        self._pending_faults.append(fault)
        return {"fault": fault.tag, "after_s": fault.after / 1e9, "armed": "at the next run"}

    def before_load(self) -> None:
        pending, self._pending_faults = self._pending_faults, []
        for fault in pending:
            self._timer(fault.after / 1e9, self._fire, fault)

    def _timer(self, delay_s, fn, *args):
        t = threading.Timer(delay_s, fn, args=args)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _fire(self, fault) -> None:
        """Apply one fault through the mock cluster's API (each call returns an error code)."""
        if not self.mock or self._cluster_killed:
            return
        cdll, lib = self.lib.cdll, self.lib
        entry = {"fault": fault.tag, "at": time.monotonic()}
        if fault.tag == "broker_down":
            entry["rc"] = lib.describe_err(cdll.rd_kafka_mock_broker_set_down(self.mock, 1))
            if fault.duration:
                self._timer(fault.duration / 1e9, self._broker_up)
        elif fault.tag == "broker_rtt":
            entry["rc"] = lib.describe_err(cdll.rd_kafka_mock_broker_set_rtt(self.mock, 1, int(fault.rtt / 1e6)))
            if fault.duration:
                self._timer(fault.duration / 1e9, self._rtt_off)
        elif fault.tag == "produce_errors":
            errors = (ctypes.c_int * fault.requests)(*([fault.error] * fault.requests))
            cdll.rd_kafka_mock_push_request_errors_array(self.mock, abi.API_PRODUCE, fault.requests, errors)
            entry["rc"] = "void"
        elif fault.tag == "kill_cluster":
            self._kill_cluster()
            entry["rc"] = "destroyed"
        self._fault_log.append(entry)

    def _broker_up(self):
        if self.mock and not self._cluster_killed:
            self.lib.cdll.rd_kafka_mock_broker_set_up(self.mock, 1)

    def _rtt_off(self):
        if self.mock and not self._cluster_killed:
            self.lib.cdll.rd_kafka_mock_broker_set_rtt(self.mock, 1, 0)

    def _kill_cluster(self) -> None:
        self._cluster_killed = True
        mock, self.mock = self.mock, 0
        if mock:
            self.lib.cdll.rd_kafka_mock_cluster_destroy(mock)

    def release_faults(self) -> None:
        for t in self._timers:
            t.cancel()
        for t in self._timers:
            if t is not threading.current_thread():
                t.join(5.0)
        self._timers.clear()
        self._broker_up()
        self._rtt_off()

    # ------------------------------------------------------------------ closing
    def threads(self) -> list:
        return [t for t in [self._poll_thread, *self._timers] if t is not None]

    def close(self) -> None:
        """Release faults, destroy the producer (if not yet), the mock cluster and its
        handle. Idempotent; every handle is destroyed on every path."""
        try:
            self.release_faults()
            if self.rk and not self._shut:
                LK.close_gate(self.gate)
                if self._wait_inflight(5.0):
                    self.lib.cdll.rd_kafka_purge(self.rk, abi.PURGE_F_QUEUE | abi.PURGE_F_INFLIGHT)
                    self._stop_polling()
                    self.lib.cdll.rd_kafka_topic_destroy(self.rkt)
                    self.lib.cdll.rd_kafka_destroy(self.rk)
                    self.rkt = self.rk = 0
                else:
                    self.leaked.append("producer")
                self._shut = True
            self._stop_polling()
        finally:
            if self.mock:
                self._kill_cluster()
            if self.mock_rk:
                self.lib.cdll.rd_kafka_destroy(self.mock_rk)
                self.mock_rk = 0
            _KEEP_ALIVE.append((self.reports, self._stats_cb))


def resolve_library(config: KafkaConfig) -> abi.KafkaLib:
    """librdkafka for ``target.kafka.version``: ``library`` when given (tests, benchmarks);
    the installed confluent-kafka's when it is that release; else that release from
    busbench's release cache (targets/release_cache.py, when present). Never downloads."""
    if config.library is not None:
        return abi.load(config.library, config.version, known_version=config.version)
    installed = abi.installed_version()
    if installed == config.version:
        return abi.load(None, config.version)
    try:
        from .. import release_cache as RC
    except ImportError:
        raise TargetConfigError("target.kafka.version", f"confluent-kafka {installed or '(none)'} is "
                                f"installed; {config.version} is not ({abi.INSTALL_HINT})") from None
    rel = RC.resolve("kafka", config.version)
    return abi.load(rel.library, config.version, known_version=rel.version)


#: delivery-report memory and callbacks of closed targets (a late callback must not
#: write into freed memory)
_KEEP_ALIVE: list = []


def _counters_from_stats(stats: dict, topic: str) -> dict:
    t = (stats.get("topics") or {}).get(topic) or {}
    parts = t.get("partitions") or {}
    return {N.EVENTS_INGESTED: int(sum(int(p.get("msgs", 0)) for p in parts.values()))}
