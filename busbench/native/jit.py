"""The one way busbench compiles a kernel.

``nogil`` so producer and worker kernels run in parallel threads; ``cache``
so a process compiles once and later processes not at all; and no NRT
(Numba's reference counting), because the kernels never allocate, and with
NRT every array taken out of the ``BusState`` tuple at a call boundary costs
an atomic increment and decrement of that array's shared refcount: measured
here, 689 such calls in one ``ingest_batch`` and ~900 ns per 64-event call,
the refcount lines bouncing between producer and worker cores.

Numba keys a cached kernel on its own source file only, not on the files of
the kernels it inlines: after an edit to ``bus/kernels.py``, a cached
``load/kernels.produce`` would still run the old ring code. So the cache is
stamped with a hash of every jitted source, and dropped when that changes.
"""
import hashlib
from pathlib import Path

from numba import njit

PACKAGE = Path(__file__).resolve().parents[1]
JITTED_SOURCES = ("native/atomics.py", "native/clock.py", "bus/config.py", "native/ffi.py", "native/histogram.py",
                  "native/jit.py", "bus/kernels.py", "bus/layout.py", "load/kernels.py", "native/text_payload.py",
                  "run/lab.py", "common/names.py", "native/payload.py", "scenario/foreign.py", "targets/builtin_kernels.py",
                  "targets/cabi_kernels.py", "targets/sink.py", "targets/netmesh/kernels.py")
STAMP = "busbench-kernels.stamp"


def _sources_digest() -> str:
    h = hashlib.sha256()
    for name in JITTED_SOURCES:
        path = PACKAGE / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


def drop_stale_caches() -> bool:
    """Remove Numba's cache files under the package when any jitted source
    changed since they were written. Returns True when it removed some."""
    try:
        digest = _sources_digest()
        stamp = PACKAGE / "bus" / "__pycache__" / STAMP
        if stamp.exists() and stamp.read_text() == digest:
            return False
        removed = False
        for pattern in ("*.nbi", "*.nbc"):
            for f in PACKAGE.rglob(f"__pycache__/{pattern}"):
                f.unlink(missing_ok=True)
                removed = True
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
        return removed
    except OSError:     # a read-only install: Numba then caches elsewhere or not at all
        return False


drop_stale_caches()

kernel = njit(nogil=True, cache=True, _nrt=False)
kernel_inline = njit(nogil=True, cache=True, _nrt=False, inline="always")
