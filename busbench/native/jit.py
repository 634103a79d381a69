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
The jitted sources are found, not listed: every module of the package that
compiles code for Numba (``@kernel``, ``@kernel_inline``, ``@njit``,
``@intrinsic``... at the start of a line), and every package module those import
at module level, transitively (their constants are frozen into the kernels).
Reading the ~100 files for that costs ~20 ms per process (measured on the
2-core VM under a load average of 8; importing Numba itself takes ~500 ms).
"""
import hashlib
import os
import re
import threading
from pathlib import Path

from numba import njit

PACKAGE = Path(__file__).resolve().parents[1]
STAMP = "busbench-kernels.stamp"

# a cheap test before the regular expression
_MARKS = ("@kernel", "@njit", "@jit", "@intrinsic", "@cfunc", "@vectorize", "@guvectorize")
_DECORATOR = re.compile(r"\n[ \t]*@(kernel|kernel_inline|njit|jit|intrinsic|cfunc|vectorize|guvectorize)\b")
# a module-level import (column 0): ``from X import a, b`` or ``from X import (a,\n b)``
# (each pattern starts with a literal newline: the text is searched with one prepended, and
# a literal start is much faster to scan for than ``^`` in MULTILINE mode)
_FROM = re.compile(r"\nfrom[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)")
_IMPORT = re.compile(r"\nimport[ \t]+([^\n]+)")


def _dotted(relative: str) -> str:
    """``bus/kernels.py`` -> ``busbench.bus.kernels``; ``bus/__init__.py`` -> ``busbench.bus``."""
    parts = [PACKAGE.name, *relative[:-3].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(relative: str, text: str, modules: dict) -> set:
    """The package's files (of ``modules``: dotted name -> file) that ``relative`` imports at module level."""
    me = _dotted(relative)
    here = me if relative.endswith("__init__.py") else me.rpartition(".")[0]
    found = set()
    for source, names in _FROM.findall(text):
        if source.startswith("."):
            level = len(source) - len(source.lstrip("."))
            base = here.split(".")
            base = base[:len(base) - (level - 1)]
            source = ".".join(base + ([source.lstrip(".")] if source.lstrip(".") else []))
        if source in modules:
            found.add(modules[source])
        for name in re.sub(r"#[^\n]*", "", names).strip("() \n").split(","):
            sub = f"{source}.{name.split(' as ')[0].strip()}"
            if sub in modules:
                found.add(modules[sub])
    for names in _IMPORT.findall(text):
        for name in names.split("#")[0].split(","):
            name = name.split(" as ")[0].strip()
            if name in modules:
                found.add(modules[name])
    return found


def jitted_sources() -> tuple:
    """Package-relative paths of every jitted source (see the module's doc), sorted."""
    texts = {}
    root = str(PACKAGE)
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d != "__pycache__"]     # Numba's cache files: many
        prefix = folder[len(root) + 1:].replace(os.sep, "/")
        for name in files:
            if name.endswith(".py"):
                with open(folder + os.sep + name, encoding="utf-8") as f:
                    texts[f"{prefix}/{name}" if prefix else name] = "\n" + f.read()
    modules = {_dotted(relative): relative for relative in texts}
    todo = [relative for relative, text in texts.items()
            if any(mark in text for mark in _MARKS) and _DECORATOR.search(text)]
    seen = set(todo) | {"native/jit.py"}
    while todo:
        relative = todo.pop()
        for other in _imported(relative, texts[relative], modules):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return tuple(sorted(seen))


def _sources_digest(sources=None) -> str:
    h = hashlib.sha256()
    for name in sources if sources is not None else jitted_sources():
        path = PACKAGE / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


JITTED_SOURCES = jitted_sources()


def drop_stale_caches() -> bool:
    """Remove Numba's cache files under the package when any jitted source
    changed since they were written. Returns True when it removed some."""
    try:
        digest = _sources_digest(JITTED_SOURCES)
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


class LazyCFunc:
    """A C-callable kernel (``numba.cfunc``) compiled, or loaded from Numba's cache, the
    first time it is asked for in a process, once: the load loop's steps, which it
    calls by address, and the sink a C bus calls, so a process compiles only what its
    target uses (``numba.cfunc`` as a decorator compiles at import). ``nrt``: with
    Numba's reference counting (``numba.carray`` needs it; ``native.ffi.view`` does not)."""

    def __init__(self, signature, py_func, *, nrt: bool = False):
        self.signature, self.py_func, self.nrt = signature, py_func, nrt
        self._cfunc = None
        self._lock = threading.Lock()

    def compile(self) -> int:
        """Compile (or load) now; the address."""
        return self.address

    @property
    def address(self) -> int:
        with self._lock:
            if self._cfunc is None:
                from numba import cfunc
                options = {} if self.nrt else {"_nrt": False}
                self._cfunc = cfunc(self.signature, nopython=True, cache=True,
                                    **options)(self.py_func)
            return self._cfunc.address

    @property
    def compiled(self) -> bool:
        return self._cfunc is not None
