"""librdkafka's C ABI, as bundled in the confluent-kafka wheel.

The manylinux wheel of ``confluent-kafka`` ships ``confluent_kafka.libs/
librdkafka-<hash>.so.1`` (2.16.1 bundles librdkafka 2.16.0). busbench loads it by
path with ``RTLD_LOCAL`` (several releases side by side in one process) and
calls it two ways:

* from Python through ``ctypes`` (configuration, handles, flush, purge, destroy,
  poll, the mock cluster: cold paths; ctypes releases the GIL while C runs);
* from the Numba producer kernel by address (``rd_kafka_produce``,
  ``rd_kafka_last_error``): ``KafkaLib.addresses``, called with ``bus.ffi``.

Facts about librdkafka 2.16.0 busbench relies on (tests/kafka keep them honest):

* ``rd_kafka_produce`` returns 0, or -1 with the reason in ``rd_kafka_last_error()``
  (thread-local): -184 QUEUE_FULL when ``queue.buffering.max.messages`` are queued.
* ``rd_kafka_flush`` returns 0, or -185 (TIMED_OUT) when messages remain.
* ``rd_kafka_destroy`` returns nothing: what it lost is known only from the
  delivery reports it did (not) serve and the log.
* The mock cluster lives in the handle that created it: a mock hosted by the
  producer under test dies with it, so busbench hosts it in a handle of its own.
"""
from __future__ import annotations

import ctypes
import importlib.metadata as md
import threading
from dataclasses import dataclass
from pathlib import Path

from ...common.names import EXIT_ERROR
from ...native.libraries import given_file, open_by_path, package_folders
from ..errors import TargetError

REQUIRED_VERSION = "2.16.1"       # the confluent-kafka release the kafka extra pins
INSTALL_HINT = "pip install -e '.[kafka]'"

# rd_kafka_resp_err_t values busbench meets (rdkafka.h)
ERR_NO_ERROR = 0
ERR_PURGE_INFLIGHT = -151
ERR_PURGE_QUEUE = -152
ERR_FATAL = -150
ERR_MSG_TIMED_OUT = -192
ERR_QUEUE_FULL = -184
ERR_TIMED_OUT = -185
ERR_UNKNOWN_PARTITION = -190
ERR_TRANSPORT = -195
ERR_ALL_BROKERS_DOWN = -187
ERR_NOT_LEADER_FOR_PARTITION = 6
ERR_REQUEST_TIMED_OUT = 7

RD_KAFKA_PRODUCER, RD_KAFKA_CONSUMER = 0, 1
MSG_F_FREE, MSG_F_COPY, MSG_F_BLOCK = 0x1, 0x2, 0x4
PURGE_F_QUEUE, PURGE_F_INFLIGHT, PURGE_F_NON_BLOCKING = 0x1, 0x2, 0x4
PARTITION_UA = -1
API_PRODUCE = 0

_vp, _cp, _sz, _int, _i32, _i64 = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                   ctypes.c_int, ctypes.c_int32, ctypes.c_int64)

#: ``void dr_msg_cb(rd_kafka_t *, const rd_kafka_message_t *, void *opaque)``
DR_MSG_CB = ctypes.CFUNCTYPE(None, _vp, _vp, _vp)
#: ``int stats_cb(rd_kafka_t *, char *json, size_t json_len, void *opaque)``
STATS_CB = ctypes.CFUNCTYPE(_int, _vp, ctypes.POINTER(ctypes.c_char), _sz, _vp)

# name -> (restype, argtypes)
SYMBOLS = {
    "rd_kafka_version_str": (_cp, []),
    "rd_kafka_err2str": (_cp, [_int]),
    "rd_kafka_conf_new": (_vp, []),
    "rd_kafka_conf_destroy": (None, [_vp]),
    "rd_kafka_conf_set": (_int, [_vp, _cp, _cp, _cp, _sz]),
    "rd_kafka_conf_set_dr_msg_cb": (None, [_vp, _vp]),
    "rd_kafka_conf_set_stats_cb": (None, [_vp, _vp]),
    "rd_kafka_conf_set_opaque": (None, [_vp, _vp]),
    "rd_kafka_new": (_vp, [_int, _vp, _cp, _sz]),
    "rd_kafka_destroy": (None, [_vp]),
    "rd_kafka_topic_new": (_vp, [_vp, _cp, _vp]),
    "rd_kafka_topic_destroy": (None, [_vp]),
    "rd_kafka_produce": (_int, [_vp, _i32, _int, _vp, _sz, _vp, _sz, _vp]),
    "rd_kafka_last_error": (_int, []),
    "rd_kafka_poll": (_int, [_vp, _int]),
    "rd_kafka_flush": (_int, [_vp, _int]),
    "rd_kafka_purge": (_int, [_vp, _int]),
    "rd_kafka_outq_len": (_int, [_vp]),
    "rd_kafka_query_watermark_offsets": (_int, [_vp, _cp, _i32, ctypes.POINTER(_i64),
                                                ctypes.POINTER(_i64), _int]),
    "rd_kafka_mock_cluster_new": (_vp, [_vp, _int]),
    "rd_kafka_mock_cluster_destroy": (None, [_vp]),
    "rd_kafka_mock_cluster_bootstraps": (_cp, [_vp]),
    "rd_kafka_mock_topic_create": (_int, [_vp, _cp, _int, _int]),
    "rd_kafka_mock_broker_set_down": (_int, [_vp, _i32]),
    "rd_kafka_mock_broker_set_up": (_int, [_vp, _i32]),
    "rd_kafka_mock_broker_set_rtt": (_int, [_vp, _i32, _int]),
    "rd_kafka_mock_push_request_errors_array": (None, [_vp, ctypes.c_int16, _sz, ctypes.POINTER(_int)]),
}
#: what the producer kernel calls, by address
KERNEL_SYMBOLS = ("rd_kafka_produce", "rd_kafka_last_error")


class KafkaError(TargetError):
    """librdkafka cannot be loaded or refused a call busbench needs (environment: exit 3;
    a setting it refuses is a TargetConfigError, exit 2, naming the scenario key)."""
    exit_code_default = EXIT_ERROR


def find_library(path: str | Path | None = None) -> Path:
    """``path`` if given, else the librdkafka the installed confluent-kafka wheel bundles
    (found without importing confluent_kafka: nothing is loaded here)."""
    if path is not None:
        return given_file(path, KafkaError, "librdkafka library")
    folders = package_folders("confluent_kafka")
    if not folders:
        raise KafkaError(f"confluent-kafka is not installed (no package confluent_kafka); "
                         f"install busbench's extra: {INSTALL_HINT}")
    for folder in folders:
        found = sorted((folder.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
        if found:
            return found[0]
    raise KafkaError("the installed confluent-kafka bundles no librdkafka (confluent_kafka.libs/"
                     f"librdkafka-*.so.1): busbench drives the manylinux wheel's; {INSTALL_HINT}")


def installed_version() -> str | None:
    try:
        return md.version("confluent-kafka")
    except md.PackageNotFoundError:
        return None


@dataclass
class KafkaLib:
    path: Path
    cdll: ctypes.CDLL
    version: str              # the confluent-kafka wheel's release (its metadata)
    librdkafka: str           # what rd_kafka_version_str() says
    addresses: dict

    def describe(self) -> dict:
        return {"version": self.version, "librdkafka": self.librdkafka, "library": str(self.path),
                "version_source": "confluent-kafka wheel metadata"}

    def err2str(self, err: int) -> str:
        raw = self.cdll.rd_kafka_err2str(err)
        return raw.decode(errors="replace") if raw else "?"

    def describe_err(self, err: int) -> str:
        return f"{err} ({self.err2str(err)})"

    # ------------------------------------------------------------ configuration
    def conf(self, settings: dict) -> int:
        """A conf object with ``settings`` applied; KafkaError naming the key librdkafka refused."""
        conf = self.cdll.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        for key, value in settings.items():
            rc = self.cdll.rd_kafka_conf_set(conf, str(key).encode(), str(value).encode(), errstr, 512)
            if rc != 0:
                self.cdll.rd_kafka_conf_destroy(conf)
                raise KafkaConfigRefused(str(key), errstr.value.decode(errors="replace"))
        return conf

    def new(self, kind: int, conf: int) -> int:
        """rd_kafka_new (it owns ``conf`` on success; destroyed here on failure)."""
        errstr = ctypes.create_string_buffer(512)
        rk = self.cdll.rd_kafka_new(kind, conf, errstr, 512)
        if not rk:
            self.cdll.rd_kafka_conf_destroy(conf)
            raise KafkaError(f"rd_kafka_new refused: {errstr.value.decode(errors='replace')}")
        return rk

    def watermarks(self, rk: int, topic: str, partition: int, timeout_ms: int) -> tuple[int, int, int]:
        low, high = _i64(-1), _i64(-1)
        rc = self.cdll.rd_kafka_query_watermark_offsets(rk, topic.encode(), partition,
                                                        ctypes.byref(low), ctypes.byref(high),
                                                        timeout_ms)
        return rc, int(low.value), int(high.value)


class KafkaConfigRefused(KafkaError):
    def __init__(self, key: str, why: str):
        super().__init__(f"librdkafka refused config {key}: {why}")
        self.key, self.why = key, why


_lock = threading.Lock()
_loaded: dict[str, KafkaLib] = {}


def load(path: str | Path | None = None, expect_version: str | None = REQUIRED_VERSION,
         known_version: str | None = None) -> KafkaLib:
    """Load librdkafka by path (RTLD_LOCAL), check its symbols. Cached per path."""
    so = find_library(path).resolve()
    key = str(so)
    with _lock:
        lib = _loaded.get(key)
        if lib is None:
            cdll, addresses, _ = open_by_path(so, SYMBOLS, KafkaError, "librdkafka")
            reported = (cdll.rd_kafka_version_str() or b"?").decode(errors="replace")
            version = known_version or (installed_version() if path is None else None) or reported
            lib = KafkaLib(so, cdll, version, reported, addresses)
            _loaded[key] = lib
    if expect_version is not None and lib.version != expect_version:
        raise KafkaError(f"confluent-kafka {lib.version} found at {so}, the scenario asks for "
                         f"{expect_version}: set target.kafka.version, or install it ({INSTALL_HINT})")
    return lib
