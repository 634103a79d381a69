"""net-mesh's C ABI, as exported by the extension module of its Python wheel.

PyPI ``net-mesh`` (``import net``) ships ``net/_net*.so``; besides the Python
module it exports the C functions of net-mesh's ``include/net.h``. busbench
calls them two ways:

* from Python through ``ctypes`` (init, flush, stats, shutdown: cold paths);
* from Numba producer kernels (``net_ingest_raw``, ``net_ingest_raw_batch``):
  the kernels receive the functions' addresses as runtime values
  (``NetMeshLib.addresses``, called with ``bus.ffi.ccall_i32``), so one cached
  kernel drives whichever library it is handed. Libraries are loaded by path
  with ``RTLD_LOCAL``: several releases (targets/release_cache.py) live side
  by side in one process, each with its own handles and counters.

Which release a library is comes from a wheel's metadata (the installed
distribution's, or the release cache's manifest), never from ``net_version()``
alone: 0.34.0 answers "0.8.0".

Facts about 0.45.1 measured here (tests/netmesh/test_abi.py keeps them honest):

* ``net_init`` returns NULL, with no detail, for an unknown
  ``backpressure_mode``, ``num_shards: 0``, a ``ring_buffer_capacity`` that is
  not a power of two or below 1024, a malformed Redis URL, and, after ~9.5 s of
  retries, an unreachable Redis. Unknown keys are ignored silently.
* ``net_ingest_raw`` returns 0, -5 (ring full: backpressure) or -8 (shutting
  down); -2 for a payload that is not UTF-8. ``net_ingest_raw_batch`` returns
  how many it accepted (not which), or -8.
* After ``net_shutdown`` every call returns -8 (``net_shutdown`` again: 0); the
  handle's memory is leaked on purpose, so a shut-down handle is safe to pass.
  Counters are therefore not readable after shutdown. A garbage handle is not
  safe: it can segfault the process.
"""
from __future__ import annotations

import ctypes
import json
import threading
from dataclasses import dataclass
from pathlib import Path

REQUIRED_VERSION = "0.45.1"
INSTALL_HINT = "pip install -e '.[net-mesh]'"

# Return codes of net.h (net_error_t) that busbench meets.
NET_OK = 0
NET_ERR_NULL_POINTER = -1
NET_ERR_INVALID_UTF8 = -2
NET_ERR_INGESTION_FAILED = -5      # backpressure: the shard's ring is full
NET_ERR_BUFFER_TOO_SMALL = -7
NET_ERR_SHUTTING_DOWN = -8
NET_ERR_UNKNOWN = -99
RC_NAMES = {0: "ok", -1: "null pointer", -2: "invalid utf-8", -3: "invalid json", -4: "init failed",
            -5: "backpressure (ring full)", -6: "poll failed", -7: "buffer too small",
            -8: "shutting down", -9: "int overflow", -99: "unknown"}

_vp, _cp, _sz, _int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int


class NetStats(ctypes.Structure):
    """``net_stats_t`` of net.h: three u64 (no events_dispatched in 0.45.1)."""
    _fields_ = [("events_ingested", ctypes.c_uint64),
                ("events_dropped", ctypes.c_uint64),
                ("batches_dispatched", ctypes.c_uint64),
                # room for a release whose net_stats_t is longer (an older or newer
                # struct): net_stats_ex writes into busbench's memory, never past it
                ("_room", ctypes.c_uint64 * 13)]


# name -> (restype, argtypes): every symbol busbench needs, checked at load.
SYMBOLS = {
    "net_version": (_cp, []),
    "net_init": (_vp, [_cp]),
    "net_ingest_raw": (_int, [_vp, _cp, _sz]),
    "net_ingest_raw_batch": (_int, [_vp, ctypes.POINTER(_cp), ctypes.POINTER(_sz), _sz]),
    "net_flush": (_int, [_vp]),
    "net_stats": (_int, [_vp, _cp, _sz]),
    "net_stats_ex": (_int, [_vp, ctypes.POINTER(NetStats)]),
    "net_num_shards": (ctypes.c_uint16, [_vp]),
    "net_shutdown": (_int, [_vp]),
}
# What the jitted producer kernels call, by address (NetMeshLib.addresses).
KERNEL_SYMBOLS = ("net_ingest_raw", "net_ingest_raw_batch")


from ...native.libraries import given_file, open_by_path, package_folders  # noqa: E402
from ..errors import NetMeshConfigError, NetMeshError  # noqa: F401, E402  (one home: targets/errors.py)


def find_extension(path: str | Path | None = None) -> Path:
    """The extension module that exports the C ABI: ``path`` if given, else
    ``net/_net*.so`` of the installed ``net`` package (found without importing it)."""
    if path is not None:
        return given_file(path, NetMeshError, "net-mesh library")
    folders = package_folders("net")
    if not folders:
        raise NetMeshError(f"net-mesh is not installed (no Python package 'net'); "
                           f"install busbench's extra: {INSTALL_HINT}")
    for folder in folders:
        found = sorted(folder.glob("_net*.so"))
        if found:
            return found[0]
    raise NetMeshError(f"the installed package 'net' ({[str(f) for f in folders]}) "
                       f"has no _net*.so extension module: is it net-mesh? {INSTALL_HINT}")


@dataclass
class NetMeshLib:
    """The loaded library: version, and ctypes wrappers of the cold-path calls."""
    path: Path
    cdll: ctypes.CDLL
    version: str                 # the release, from wheel metadata (see version_source)
    addresses: dict
    reported_version: str = "?"  # what net_version() says (0.34.0 says "0.8.0")
    version_source: str = ""     # where ``version`` comes from
    missing: tuple = ()          # optional symbols this release does not export

    def describe(self) -> dict:
        """What the record keeps about the library that drove a run."""
        return {"version": self.version, "version_source": self.version_source,
                "library": str(self.path), "net_version": self.reported_version,
                "missing_symbols": list(self.missing)}

    # ------------------------------------------------------------ lifecycle
    def init(self, config_json: str) -> int:
        """A bus handle, or 0 when net-mesh refused (it says no more than that)."""
        return self.cdll.net_init(config_json.encode()) or 0

    def shutdown(self, handle: int) -> int:
        return self.cdll.net_shutdown(handle)

    def flush(self, handle: int) -> int:
        return self.cdll.net_flush(handle)

    def num_shards(self, handle: int) -> int | None:
        """The shard count, or None when this release does not export net_num_shards."""
        if "net_num_shards" in self.missing:
            return None
        return self.cdll.net_num_shards(handle)

    # ------------------------------------------------------------ ingest (Python side)
    def ingest_raw(self, handle: int, payload: bytes) -> int:
        return self.cdll.net_ingest_raw(handle, payload, len(payload))

    def ingest_raw_batch(self, handle: int, payloads: list[bytes]) -> int:
        n = len(payloads)
        ptrs = (_cp * n)(*payloads)
        lens = (_sz * n)(*[len(p) for p in payloads])
        return self.cdll.net_ingest_raw_batch(handle, ptrs, lens, n)

    # ------------------------------------------------------------ counters
    def stats_ex(self, handle: int) -> tuple[int, NetStats]:
        out = NetStats()
        rc = self.cdll.net_stats_ex(handle, ctypes.byref(out))
        return rc, out

    def stats_json(self, handle: int) -> tuple[int, bytes]:
        if "net_stats" in self.missing:
            return NET_ERR_UNKNOWN, b""
        size = 4096
        for _ in range(4):       # bounded: the JSON is ~150 bytes today
            buf = ctypes.create_string_buffer(size)
            rc = self.cdll.net_stats(handle, buf, size)
            if rc != NET_ERR_BUFFER_TOO_SMALL:
                return rc, buf.value if rc >= 0 else b""
            size *= 4
        return NET_ERR_BUFFER_TOO_SMALL, b""


_lock = threading.Lock()
_loaded: dict[str, NetMeshLib] = {}
#: symbols a release may lack (reported, not fatal); everything else in SYMBOLS is required
OPTIONAL = ("net_stats", "net_num_shards")


def installed_version() -> str | None:
    """The installed net-mesh distribution's version (its metadata), or None."""
    import importlib.metadata as md
    try:
        return md.version("net-mesh")
    except md.PackageNotFoundError:
        return None


def _manifest_version(so: Path) -> str | None:
    """The version a release-cache manifest beside ``so`` records (from the wheel's METADATA)."""
    try:
        data = json.loads((so.parent / "manifest.json").read_text())
        return data["version"] if Path(data["library"]).resolve() == so else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(path: str | Path | None = None, expect_version: str | None = REQUIRED_VERSION,
         known_version: str | None = None) -> NetMeshLib:
    """Load the library by path (``RTLD_LOCAL``), check its version and symbols.

    The version is ``known_version`` when the caller read it from a wheel's
    metadata; else the installed distribution's metadata (no ``path``), or the
    release cache's manifest beside ``path``; only for a bare library given by
    path with neither, what ``net_version()`` says (recorded as such). Cached
    per path; raises ``NetMeshError`` with a clear message."""
    so = find_extension(path).resolve()
    key = str(so)
    with _lock:
        lib = _loaded.get(key)
        if lib is None:
            cdll, addresses, absent = open_by_path(
                so, SYMBOLS, NetMeshError, "net-mesh library",
                f" ({INSTALL_HINT}, or a release: busbench releases fetch net-mesh X)", OPTIONAL)
            raw = cdll.net_version()
            reported = raw.decode(errors="replace") if raw else "?"
            if known_version is not None:
                version, source = known_version, "wheel metadata"
            elif path is None and installed_version() is not None:
                version, source = installed_version(), "installed distribution's metadata"
            elif _manifest_version(so) is not None:
                version, source = _manifest_version(so), "release cache manifest (wheel metadata)"
            else:
                version, source = reported, "net_version() (no wheel metadata for this library)"
            lib = NetMeshLib(so, cdll, version, addresses, reported, source, absent)
            _loaded[key] = lib
    if expect_version is not None and lib.version != expect_version:
        raise NetMeshError(f"net-mesh {lib.version} (by {lib.version_source}) found at {so}, "
                           f"the scenario asks for net-mesh {expect_version}: set "
                           f"target.net-mesh.version, or fetch it: busbench releases fetch net-mesh "
                           f"{expect_version}")
    return lib


def describe_rc(rc: int) -> str:
    return f"{rc} ({RC_NAMES.get(rc, 'unknown code')})"
