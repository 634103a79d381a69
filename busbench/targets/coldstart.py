"""The first run's compile: say it is happening, and make it short.

Any target's ``prepare(say)`` can announce its own compile with
``announcing_compiles(say, what)``: one line as soon as Numba starts compiling
(never on a warm cache) and one with the seconds it took. ``compile_kernels``
is handed what to compile by its target (builtin.py for the reference bus and
its load loop); this module knows no target.

A fresh install has no Numba cache, so the first run compiles every kernel
(measured on a 2-core machine, one process: 10.7 s, 6.9 s of it ``produce``
and what it calls, 3.3 s ``worker_loop`` and what it calls). Numba compiles
under one global lock per process, so threads cannot share that work; a second
*process* can. On a cold cache, ``compile_kernels`` starts ``python -m <the
target's module>`` (``busbench.targets.builtin``), which compiles a share of
the producer side first (the tallies, by signature) and says READY, then the
worker side (``worker_loop``, ``dispatch``, the adapters), into the on-disk
cache, while this process compiles the ring push, then ``produce``, loading
the helper's share from the cache. With one core, a machine whose cores are
all busy, or the worker side already cached, everything is compiled here.

Every kernel a scenario can reach is compiled whatever the scenario: modes,
adapters and layouts are runtime values (STYLE.md), so one specialization of
each kernel serves every scenario and the cache is shared by all of them.
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from numba.core import event

from ..common.pythonpath import child_env


def compiling_message(what: str) -> str:
    return f"compiling {what} (first run only, cached afterwards)…"


def compiled_message(what: str, seconds: float) -> str:
    return f"compiled {what} in {seconds:.1f} s"


BUILTIN_KERNELS = "Numba kernels"
COMPILING_MESSAGE = compiling_message(BUILTIN_KERNELS)
#: what the helper prints once its first share (compiled before the worker side, while
#: this process compiles ``producer_prelude``) is in the on-disk cache
READY = "ready"
#: the child compiling the worker side is given this long before it is killed
CHILD_TIMEOUT_S = 600.0

_lock = threading.Lock()
_warm: set = set()      # helper modules whose kernels this process has compiled or loaded


@dataclass(frozen=True)
class ColdStart:
    """What getting the kernels ready cost this process."""
    seconds: float
    compiled: int          # kernels compiled here (0: all loaded from the cache)
    helper_process: bool   # a second process compiled the worker side

    @property
    def was_cold(self) -> bool:
        return self.compiled > 0 or self.helper_process


class _CompileWatch:
    """Counts Numba compilations (cache misses only: a cache hit is not an
    event) and announces the first one, from whichever thread it happens on."""

    def __init__(self, announce: Callable[[str], None] | None, message: str = COMPILING_MESSAGE):
        self.announce = announce
        self.message = message
        self.count = 0
        self.announced = False
        self._lock = threading.Lock()
        self._listener = _Listener(self)

    def started(self):
        with self._lock:
            self.count += 1
        self.first()

    def first(self):
        with self._lock:
            if self.announced:
                return
            self.announced = True
        if self.announce is not None:
            self.announce(self.message)

    def __enter__(self):
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        event.unregister("numba:compile", self._listener)
        return False


class _Listener(event.Listener):
    def __init__(self, watch: _CompileWatch):
        self.watch = watch

    def on_start(self, ev):
        self.watch.started()

    def on_end(self, ev):
        pass


@contextmanager
def announcing_compiles(say: Callable[[str], None] | None,
                        what: str = BUILTIN_KERNELS) -> Iterator[_CompileWatch]:
    """For a target's ``prepare(say)``: around the code that compiles (or loads
    from the cache) its kernels, say "compiling <what> (first run only, cached
    afterwards)…" as soon as the first compile starts, from whichever thread,
    and "compiled <what> in N s" at the end. Silent when everything came from
    the cache."""
    t0 = time.monotonic()
    with _CompileWatch(say, compiling_message(what)) as watch:
        yield watch
    if watch.announced and say is not None:
        say(compiled_message(what, time.monotonic() - t0))


def _cached_on_disk(dispatcher) -> bool | None:
    """Whether Numba has a cache index for ``dispatcher`` (None: cannot tell).
    An index can still miss (another CPU, a changed source): then this
    process compiles what is missing itself, just without help."""
    try:
        return Path(dispatcher._cache._cache_file._index_path).exists()
    except AttributeError:      # a Numba whose cache internals moved
        return None


def _a_core_is_free() -> bool:
    """A second compiling process only helps when it gets a core of its own.
    Measured on 2 cores: at load 1.6, 6.4 s with the helper against 9.2 s
    without; at load 7.5, 20-21 s against 15-16 s (it only adds work there).
    The 1-minute load counts this user's previous run too, hence ``< cores``."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return cores > 1 and load < cores


def _spawn_worker_side(helper_module: str) -> subprocess.Popen | None:
    """``python -m <helper_module>`` importing this very copy of busbench."""
    env = child_env()
    try:
        return subprocess.Popen([sys.executable, "-m", helper_module], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _await_ready(child: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until the helper says READY (its first share is in the on-disk cache),
    it ends, or ``timeout_s`` passes. False: go on without it (this process then
    compiles that share itself)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([child.stdout], [], [], left)
        if ready:
            line = child.stdout.readline()
            if not line:
                return False             # ended without saying it
            if line.strip() == READY.encode():
                return True


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def compile_kernels(announce: Callable[[str], None] | None = None,
                    helper: bool | None = None, *,
                    producer_side: Callable[[], None],
                    producer_prelude: Callable[[], None] | None = None,
                    everything: Callable[[], None],
                    worker_kernel,
                    helper_module: str) -> ColdStart:
    """Compile (or load from the on-disk cache) every kernel a run needs, once
    per process. ``announce`` is called with a one-line message as soon as a
    compile starts (never on a warm cache). ``helper``: use a second process
    for the worker side (default: when ``worker_kernel``, a dispatcher of the
    worker side, has no cache yet and there are two cores). The target hands
    in ``producer_side()`` (compiles only the producer side), ``everything()``
    (runs every kernel once) and ``helper_module``, whose ``python -m`` fills
    the on-disk cache with the worker side. With ``producer_prelude`` the
    helper first compiles a share of the producer side and prints READY: this
    process compiles the prelude meanwhile, waits for READY, then compiles the
    producer side, loading that share from the cache."""
    with _lock:
        if helper_module in _warm:
            return ColdStart(0.0, 0, False)
        t0 = time.monotonic()
        child = None
        with _CompileWatch(announce) as watch:
            if helper is None:
                helper = _cached_on_disk(worker_kernel) is False and _a_core_is_free()
            if helper:
                child = _spawn_worker_side(helper_module)
                if child is not None:
                    watch.first()
            try:
                if child is not None:
                    if producer_prelude is not None:
                        producer_prelude()
                        _await_ready(child, CHILD_TIMEOUT_S)
                    producer_side()
                    try:
                        child.wait(timeout=CHILD_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        pass        # compiled here instead, below
                everything()
            finally:
                if child is not None:
                    _stop(child)
        _warm.add(helper_module)
        return ColdStart(time.monotonic() - t0, watch.count, child is not None)
