"""The supervised child: runs scenarios for the parent ``busbench`` and streams its story.

Started by ``supervisor.Child`` as ``python -m busbench.run.child FD STACKS MARKS LIMIT``
in a session of its own. It owns the target, the load and the checks' evidence;
the parent owns the deadline, the display, the record and the exit code.

The message stream is JSON lines, one dict per line, on the pipe FD (child to
parent); the parent's commands are JSON lines on stdin (``run``, ``stop``,
``exit``). Nothing else: no RPC. What the child tells, as it goes:

* ``say``: a one-off line (what the target compiles or loads);
* ``begin``: the run's identity (scenario, target, layout, environment, deadline);
* ``started``: the kernels are compiled, the deadline starts now;
* ``snap``: the dashboard's snapshot, the sampler's row and the producers'
  tallies, every sample interval (100 ms);
* ``beat``: a heartbeat every 100 ms from a thread of its own: it needs only
  the GIL, so its silence says the GIL is held (or the process stopped);
* ``step`` (start) and ``step_end`` (its record: flush claim, shutdown claim,
  check verdicts and their evidence);
* ``result``: the whole record, when the run ended by itself.

Which call into the target is in flight is written into a small shared file
(``MARKS``: one byte per slot), never streamed: it must be right at the moment
of a crash. ``faulthandler`` writes every thread's stack into ``STACKS`` on a
fatal signal, and on SIGUSR1 (the parent asks before it kills a child that
holds the GIL: the handler runs in C and needs no GIL).
"""
from __future__ import annotations

import faulthandler
import json
import mmap
import os
import queue
import signal
import sys
import threading

BEAT_S = 0.1

# the marks file: slot -> byte code of the call in flight (0: none)
SLOT_MAIN, SLOT_OTHER, SLOT_LOAD = 0, 1, 2
MARK_BYTES = 16
CALLS = {1: "prepare", 2: "start", 3: "ingest", 4: "flush", 5: "shutdown", 6: "stats",
         7: "witness read-back", 8: "close", 9: "arm_fault"}
_CODE = {name: code for code, name in CALLS.items()}
#: target methods watched, and the call each is named as
WATCHED = {"prepare": "prepare", "start": "start", "flush": "flush", "shutdown": "shutdown",
           "counters": "stats", "stats": "stats", "delivery": "witness read-back",
           "close": "close", "arm_fault": "arm_fault"}


class Channel:
    """JSON lines to the parent; one lock, so that lines never interleave."""

    def __init__(self, fd: int):
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message: dict) -> None:
        from ..evidence.types import plain
        line = json.dumps(plain(message), default=str) + "\n"
        with self._lock:
            if self.broken:
                return
            try:
                self._file.write(line)
                self._file.flush()
            except (BrokenPipeError, OSError):
                self.broken = True


class Marks:
    """The calls in flight, one byte per slot in a file the parent reads after a crash."""

    def __init__(self, path: str):
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), MARK_BYTES)

    def set(self, slot: int, code: int) -> int:
        before = self._map[slot]
        self._map[slot] = code
        return before


def watch_target(target, marks: Marks) -> None:
    """Wrap the target's calls so that the marks say which one is in flight
    (main thread: slot 0, any other thread: slot 1)."""
    main = threading.main_thread()
    for method, call in WATCHED.items():
        original = getattr(target, method, None)
        if original is None or not callable(original):
            continue

        def wrapped(*args, _original=original, _code=_CODE[call], **kwargs):
            slot = SLOT_MAIN if threading.current_thread() is main else SLOT_OTHER
            before = marks.set(slot, _code)
            try:
                return _original(*args, **kwargs)
            finally:
                marks.set(slot, before)
        try:
            setattr(target, method, wrapped)
        except AttributeError:        # a read-only attribute: that call is not watched
            pass


def snapshot_to_dict(snapshot) -> dict:
    from dataclasses import asdict
    return asdict(snapshot)


def _make_runner_class():
    from .runner import Runner

    class StreamingRunner(Runner):
        """The runner, telling the parent each step and sample as it goes."""

        def __init__(self, *args, channel: Channel, marks: Marks, **kwargs):
            super().__init__(*args, **kwargs)
            self.channel, self.marks = channel, marks
            self._started_sent = False

        def _on_sample(self, sample) -> None:
            if not self._started_sent:
                return
            snap = self.snapshot(sample)
            row = {"t": round(sample.t, 4), **sample.counters}
            if sample.shard_fill is not None:
                row["shard_fill"] = list(sample.shard_fill)
            self.channel.send({"t": "snap", "snap": snapshot_to_dict(snap), "row": row,
                               "producers": [p.to_dict() for p in self.gen.truths()],
                               "load_s": self.load_s})

        def _announce_not_observable(self, caps) -> None:
            # called once the kernels are compiled, just before the deadline starts
            super()._announce_not_observable(caps)
            self.channel.send({"t": "started", "capabilities": caps.to_dict()})
            self._started_sent = True

        def _run_load(self, duration_ns=None, events=None):
            self.marks.set(SLOT_LOAD, _CODE["ingest"])
            try:
                return super()._run_load(duration_ns=duration_ns, events=events)
            finally:
                self.marks.set(SLOT_LOAD, 0)

        def _flush(self, i, step) -> dict:
            if step.under_load:
                self.marks.set(SLOT_LOAD, _CODE["ingest"])
            try:
                return super()._flush(i, step)
            finally:
                self.marks.set(SLOT_LOAD, 0)

        def _step(self, i, step) -> dict:
            self.channel.send({"t": "step", "index": i, "label": self.step_label,
                               "started_s": __import__("time").monotonic() - self.t0})
            details = super()._step(i, step)
            self.channel.send({"t": "step_end", "index": i, "kind": step.tag,
                               "label": self.step_label, "details": details,
                               "counters": self.target.counters(),
                               "producers": [p.to_dict() for p in self.gen.truths()],
                               "load_s": self.load_s})
            return details

    return StreamingRunner


def run_job(job: dict, channel: Channel, marks: Marks, current: dict) -> None:
    from datetime import datetime, timezone

    from ..evidence.result import environment
    from ..scenario import load_scenario
    from ..targets import TargetError, open_target
    sc = load_scenario(job["source"], overrides=job.get("overrides") or [], seed=job.get("seed"))
    try:
        target = open_target(sc)
    except TargetError:
        target = None                  # the runner opens it again and records why it cannot
    if target is not None:
        watch_target(target, marks)
    runner_class = _make_runner_class()
    runner = runner_class(sc, job["source"], say=lambda line: channel.send({"t": "say", "line": line}),
                          pin_threads=bool(job.get("pin")), timeout_s=job.get("timeout_s"),
                          target=target, channel=channel, marks=marks)
    channel.send({"t": "begin", "scenario_name": sc.name, "scenario": sc.to_dict(),
                  "source": job["source"], "target": getattr(target, "name", sc.target_name),
                  "layout": getattr(target, "layout", "-"),
                  "environment": environment(sc.to_dict()),
                  "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "deadline": runner.deadline.to_dict(),
                  "series_interval_s": runner.sample_interval_s})
    current["runner"] = runner
    try:
        result = runner.run()
    except TargetError as exc:        # the user's to fix (exit 2): the parent says so
        channel.send({"t": "usage_error", "message": str(exc), "exit_code": exc.exit_code})
        return
    finally:
        current["runner"] = None
        for slot in (SLOT_MAIN, SLOT_OTHER, SLOT_LOAD):
            marks.set(slot, 0)
    channel.send({"t": "result", "record": result.to_dict()})


def _stop_current(current: dict) -> None:
    """The parent's deadline: what the watchdog does at expiry, now."""
    runner = current.get("runner")
    if runner is not None:
        runner.watchdog.expire_now()


def _limit_memory(limit: int) -> None:
    """RLIMIT_DATA: the heap and every private writable mapping (Linux 4.7+), i.e.
    what a bus allocates. Not RLIMIT_AS: address space merely reserved (LLVM's,
    malloc's per-thread arenas, thread stacks' guard pages) would count, and a
    limit a bus could use fully would be refused at import time."""
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError):
        pass


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the parent dies (a SIGKILLed busbench
    leaves no child behind)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _import_ahead() -> None:
    """What every run needs (the runner, the targets, Numba), imported before the first
    job arrives: the parent is still validating scenarios meanwhile."""
    try:
        from ..scenario import load_scenario  # noqa: F401
        from ..targets import open_target  # noqa: F401
        from . import runner  # noqa: F401
    except Exception:  # noqa: BLE001 -- the job imports again, and reports what fails
        pass


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fd, stacks_path, marks_path, limit = int(argv[0]), argv[1], argv[2], int(argv[3])
    _die_with_parent()
    stacks = open(stacks_path, "w", encoding="utf-8")    # noqa: SIM115 -- faulthandler keeps it
    faulthandler.enable(file=stacks, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True, chain=False)
    if limit > 0:
        _limit_memory(limit)
    channel = Channel(fd)
    marks = Marks(marks_path)
    jobs: queue.Queue = queue.Queue()
    current: dict = {"runner": None}
    alive = threading.Event()

    def read_commands():
        for line in sys.stdin:
            try:
                command = json.loads(line)
            except ValueError:
                continue
            if command.get("cmd") == "stop":
                _stop_current(current)
            else:
                jobs.put(command)
        jobs.put({"cmd": "exit"})         # the parent closed the pipe

    def beat():
        while not alive.wait(BEAT_S):
            channel.send({"t": "beat"})
    threads = [threading.Thread(target=read_commands, name="busbench-child-commands", daemon=True),
               threading.Thread(target=beat, name="busbench-child-beat", daemon=True)]
    for t in threads:
        t.start()
    channel.send({"t": "ready", "pid": os.getpid()})
    _import_ahead()
    try:
        while True:
            command = jobs.get()
            if command.get("cmd") != "run":
                break
            try:
                run_job(command["job"], channel, marks, current)
            except KeyboardInterrupt:
                channel.send({"t": "interrupted"})
            except Exception as exc:  # noqa: BLE001 -- told to the parent, which records it
                channel.send({"t": "failed", "error": f"{type(exc).__name__}: {exc}"})
            channel.send({"t": "done"})
    except KeyboardInterrupt:
        pass
    finally:
        alive.set()
    return 0


if __name__ == "__main__":
    code = main()
    # Every run tore down what it started (the runner's teardown) before its result was
    # sent: skip the interpreter's finalization (Numba's, LLVM's), which the parent would
    # otherwise wait for after every run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
