"""The first run's compile: say it is happening, and make it short.

``compile_kernels`` says one line as soon as Numba starts compiling (never on
a warm cache) and one with the seconds it took. It is handed what to compile
by its target (builtin.py for the reference bus; ``compile_foreign_loop`` for
a C bus); this module knows no target.

A fresh install has no Numba cache, so the first run compiles every kernel
its target uses. Numba compiles under one global lock per process, so threads
cannot share that work; a second *process* can. On a cold cache,
``compile_kernels`` forks helper processes (a fork inherits the imported
modules: nothing to start or import) that compile their shares into the
on-disk cache, each saying on a pipe when a share is there, while this process
compiles its own and then loads theirs. The shares (measured alone on 2 cores):

* the reference bus (builtin.py): the ring step 4.3 s, here; the worker side's
  ``dispatch`` 1.9 s then the load loop 3.2 s, in the helper; then
  ``worker_loop`` around ``dispatch`` 1.0 s, here. 5.7 s in all.
* a C bus (``compile_foreign_loop``: c-abi, net-mesh, Kafka): the load loop
  3.2 s here, the foreign step 2.5 s in a helper, what the run calls from Python
  and the witness's kernels in another (0.3 s; net-mesh's 0.6 s more), and for
  c-abi the sink a C bus calls 2.0 s in a third.

With one core, or the shares already cached, everything is compiled (or
loaded) here; a busy machine still gains from the helper (``_cores_to_share``).

Every kernel a scenario can reach is compiled whatever the scenario: modes,
adapters and layouts are runtime values (STYLE.md), so one specialization of
each kernel serves every scenario and the cache is shared by all of them.
"""
from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from numba.core import event



def compiling_message(what: str) -> str:
    return f"compiling {what} (first run only, cached afterwards)…"


def compiled_message(what: str, seconds: float) -> str:
    return f"compiled {what} in {seconds:.1f} s"


BUILTIN_KERNELS = "Numba kernels"
COMPILING_MESSAGE = compiling_message(BUILTIN_KERNELS)
#: a helper's share is waited for this long (measured: 2-4 s each on 2 cores; a helper
#: stuck past it is killed and what it did not compile is compiled here)
SHARE_TIMEOUT_S = 120.0

_lock = threading.Lock()
_warm: set = set()      # keys of the kernel sets this process has compiled or loaded


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


def _cached_on_disk(dispatcher) -> bool | None:
    """Whether Numba has a cache index for ``dispatcher`` (None: cannot tell).
    An index can still miss (another CPU, a changed source): then this
    process compiles what is missing itself, just without help."""
    try:
        return Path(dispatcher._cache._cache_file._index_path).exists()
    except AttributeError:      # a Numba whose cache internals moved
        return None


def _cores_to_share() -> bool:
    """A forked helper adds no work (nothing to start or import), so it pays whenever
    there is a second core, also on a busy machine. Measured on 2 cores beside two
    busy loops (load ~4): the reference bus's kernels in 12.9-13.9 s with the helper,
    17.4-20.2 s without. (A *spawned* helper, which started an interpreter and imported
    Numba, lost at load 7.5: 20-21 s against 15-16 s, so it ran only below load 2.)"""
    return (os.cpu_count() or 1) > 1


class _Helper:
    """A helper process forked from this one: it inherits the imported modules and
    Numba's initialized compiler (no interpreter to start, nothing to import: ~0.6 s
    of a second core saved per helper), compiles its shares into the on-disk cache in
    turn, says the name of each on a pipe as soon as it is there, and exits without
    running this process's exit handlers."""

    def __init__(self, pid: int, fd: int, names: tuple):
        self.pid, self.fd, self.names = pid, fd, names
        self.done: set = set()
        self.status: int | None = None
        self._buffer = b""

    def _hear(self, timeout_s: float) -> None:
        if self.fd < 0:
            return
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return
        data = os.read(self.fd, 4096)
        if not data:                    # ended (or died): nothing more will come
            os.close(self.fd)
            self.fd = -1
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        self.done.update(line.decode() for line in lines)

    def await_share(self, name: str, timeout_s: float) -> bool:
        """Wait until the helper said ``name`` is in the cache; False when it ended
        without (or ``timeout_s`` passed): the caller then compiles it itself."""
        deadline = time.monotonic() + timeout_s
        while name not in self.done and self.fd >= 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._hear(left)
        return name in self.done

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            if time.monotonic() >= deadline:
                return False
            self._hear(min(0.05, deadline - time.monotonic()))
        return True

    def stop(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.status = -1
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _start_compiler() -> None:
    """Numba's first compile in a process sets its compiler up (~0.3 s on 2 cores):
    done before forking, the helpers inherit it instead of each doing it again."""
    from numba import njit
    njit(lambda: 0)()


def _fork(share: tuple) -> _Helper | None:
    """Fork a helper that runs each ``(name, function)`` of ``share`` in turn. Forked
    from the thread that compiles, before it compiles: no other thread of this
    process compiles, so no lock the helper needs is held at the fork."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:                         # the helper
        code = 1
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            for name, function in share:
                function()
                os.write(write_fd, name.encode() + b"\n")
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return _Helper(pid, read_fd, tuple(name for name, _ in share))


def compile_kernels(announce: Callable[[str], None] | None = None,
                    helper: bool | None = None, *,
                    key: str,
                    here: Callable[[Callable[[str], None]], None],
                    helpers: tuple = (),
                    everything: Callable[[], None],
                    probe) -> ColdStart:
    """Compile (or load from the on-disk cache) every kernel a run needs, once per
    process and ``key``. ``announce`` is called with a one-line message as soon as a
    compile starts and with the seconds it took at the end (never on a warm cache).

    A target hands in ``helpers``: per helper process, ``(name, function)`` pairs,
    each function compiling a share into the on-disk cache; ``here(wait)``: this
    process's share, where ``wait(name)`` returns once a helper's share ``name`` is
    in the cache (so what needs it loads it instead of compiling it again);
    ``everything()``: runs every kernel once (what the helpers compiled is loaded,
    what they could not is compiled here); ``probe``: a dispatcher of a helper's
    share. ``helper``: use helper processes (default: when ``probe`` has no cache
    yet and there is a second core)."""
    with _lock:
        if key in _warm:
            return ColdStart(0.0, 0, False)
        t0 = time.monotonic()
        children = []
        with _CompileWatch(announce) as watch:
            if helper is None:
                helper = bool(helpers) and _cached_on_disk(probe) is False and _cores_to_share()
            if helper:
                watch.first()
                _start_compiler()
                children = [c for c in (_fork(share) for share in helpers) if c is not None]

            def wait(name: str) -> None:
                for child in children:
                    if name in child.names:
                        child.await_share(name, SHARE_TIMEOUT_S)

            try:
                here(wait)
                for child in children:
                    child.wait(SHARE_TIMEOUT_S)     # past it: compiled here instead, below
                everything()
            finally:
                for child in children:
                    child.stop()
        _warm.add(key)
        cold = ColdStart(time.monotonic() - t0, watch.count, bool(children))
        if cold.was_cold and announce is not None:
            announce(compiled_message(BUILTIN_KERNELS, cold.seconds))
        return cold


def compile_foreign_loop(say: Callable[[str], None] | None = None,
                         helper: bool | None = None, *, sink: bool = False,
                         extra: tuple = ()) -> ColdStart:
    """For a target calling a bus's C function (c-abi, net-mesh, Kafka): the load loop
    (``load.kernels.produce``) here while a helper compiles the foreign step
    (``load.foreign``), and with ``sink`` another the C sink (``sink.C_SINK``, c-abi);
    the reference bus's ring push and workers are not compiled. A third helper compiles
    the kernels a run calls from Python (``load.kernels.warm_run_side``) and the
    target's ``extra`` ``(name, function)`` shares (its witness's kernels). ``say``
    hears "compiling Numba kernels…" as a compile starts and the seconds it took
    (nothing when warm)."""
    from ..load import foreign, kernels
    from .sink import C_SINK
    # apart: when the loop is cached already (the quick start ran), this process has
    # nothing to compile and the helpers share the two cores
    shares = [(("foreign step", foreign.STEP.compile),),
              (("run side", kernels.warm_run_side), *extra)]
    if sink:
        shares.append((("sink", C_SINK.compile),))

    def everything():
        kernels.warm_produce()
        foreign.STEP.compile()
        if sink:
            C_SINK.compile()

    return compile_kernels(say, helper, key="foreign+sink" if sink else "foreign",
                           here=lambda wait: kernels.warm_produce(), helpers=tuple(shares),
                           everything=everything, probe=foreign.c_step)
