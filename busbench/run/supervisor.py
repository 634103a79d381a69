"""The supervisor: every run executes in a child process the parent ``busbench`` watches.

busbench drives code it did not write (a user's C library, a user's Python bus,
a net-mesh release); that code may segfault, abort, hold the GIL forever or
eat memory. Run in-process, it takes busbench with it: no record, no JUnit, a
CI job learns only "139". So the parent keeps the deadline, the display, the
record and the exit code, and a child (``run/child.py``) owns the target, the load
and the evidence, telling the parent its story as it goes (JSON lines on a
pipe; see child.py for the messages). When the child dies, the parent's
record still holds everything up to that moment, with status ``crashed``, the
signal by name, the step and the call in flight, the child's stderr tail and
every thread's stack (faulthandler).

The deadline is the parent's too: at the run's deadline it asks the child to
stop (the child's own watchdog does the same); a child whose heartbeat has
stopped (a call that holds the GIL) or that has not ended ``KILL_GRACE_S``
past its teardown budget is killed with its whole process group, and the run
is recorded ``timed_out``. Ctrl-C and SIGTERM are forwarded; the parent ends
within ``INTERRUPT_GRACE_S`` whatever the child does. Nothing outlives the
child: its process group is killed at the end of every session (a
redis-server it started goes with it) and its temp directory (``TMPDIR``) is
removed.

One ``Child`` runs several jobs one after another (warm: compare's paired
rounds, matrix cells); after a crash the next job starts a fresh child.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..common import names as N
from ..common.pythonpath import child_env
from ..common.units import format_bytes, parse_memory  # noqa: F401 -- re-exported
if TYPE_CHECKING:
    # imported where used: they bring in Numba, and this module is imported before the
    # child is started (the sooner the child starts, the more of its start overlaps ours)
    from ..evidence.result import RunResult
    from ..verdicts import checks as C

#: past the deadline, a child whose heartbeat has been silent this long is killed
KILL_GRACE_S = 3.0
#: past the deadline, the child's own teardown gets this long (watchdog.TEARDOWN_BUDGET_S) plus the grace
TEARDOWN_ALLOWANCE_S = 10.0
#: Ctrl-C/SIGTERM: the child gets this long to record its run and end, then it is killed
INTERRUPT_GRACE_S = 3.0
#: starting a child and compiling its kernels: a bound for a child that never starts
START_BUDGET_S = 600.0
STDERR_TAIL_BYTES = 4000
STACKS_BYTES = 64_000
#: a process that died with one of these near its memory limit ran out of memory
_OOM_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGKILL", "SIGBUS")
OOM_NEAR = 0.8              # peak data size (sampled every 100 ms) at least this share of the limit
#: how running out of memory under RLIMIT_DATA shows in an error or the stderr tail
_OOM_WORDS = ("MemoryError", "can't start new thread", "std::bad_alloc", "out of memory",
              "Cannot allocate memory", "Memory allocation")

_SIGNAL_NAMES = {s.value: s.name for s in signal.Signals}


def signal_name(number: int) -> str:
    return _SIGNAL_NAMES.get(number, f"signal {number}")


@dataclass
class Job:
    """What the child runs: the scenario file as the parent loaded it."""
    source: str
    overrides: tuple = ()
    seed: int | None = None
    timeout_s: float | None = None
    pin: bool = False

    def to_dict(self) -> dict:
        return {"source": self.source, "overrides": list(self.overrides), "seed": self.seed,
                "timeout_s": self.timeout_s, "pin": self.pin}


@dataclass
class _Story:
    """What the parent has heard of the run in progress."""
    begin: dict | None = None
    started_at: float | None = None        # monotonic, when the deadline started
    deadline_s: float | None = None
    capabilities: dict = field(default_factory=dict)
    step: dict | None = None               # the step in progress: index, label
    steps: list = field(default_factory=list)
    snap: dict | None = None
    counters: dict = field(default_factory=dict)
    producers: list = field(default_factory=list)
    load_s: float = 0.0
    series: list = field(default_factory=list)
    flushes: list = field(default_factory=list)
    shutdown: dict | None = None
    verdicts: list = field(default_factory=list)
    last_heard: float = 0.0


class UsageFromChild(Exception):
    """The target says the user can fix it (exit 2): raised in the parent as TargetError."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _read_tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > limit:
        text = "...\n" + text.split("\n", 1)[-1]
    return text


def _proc_status(pid: int) -> dict:
    """VmData and VmHWM of a live process, in bytes (Linux); {} elsewhere."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("VmData:", "VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


class Child:
    """One supervised child process, which runs jobs one after another."""

    def __init__(self, memory_limit: int | None = None, say=lambda line: None):
        self.memory_limit = memory_limit
        self.say = say
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self._buffer = b""
        self._fd = -1
        self.exit_status: int | None = None   # raw wait status, once reaped
        self.rusage = None
        self.peak_data = 0
        self.peak_rss = 0
        self.startup_s: float | None = None
        self.prepare_s: float | None = None
        self._t_job = 0.0
        self.jobs_run = 0

    # ------------------------------------------------------------------ process
    @property
    def alive(self) -> bool:
        if self.proc is None:
            return False
        if self.exit_status is None:
            self._reap(0.0)
        return self.exit_status is None

    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="busbench-run-"))
        self.stderr_path = self.tmp / "stderr.txt"
        self.stacks_path = self.tmp / "stacks.txt"
        self.marks_path = self.tmp / "marks.bin"
        self.marks_path.write_bytes(bytes(16))
        read_fd, write_fd = os.pipe()
        env = child_env()
        env["TMPDIR"] = str(self.tmp)          # the child's temp files go with its directory
        if self.memory_limit:
            # OpenBLAS (numpy's) sizes a buffer per core at import: one thread, one buffer
            env.setdefault("OPENBLAS_NUM_THREADS", "1")
        t0 = time.monotonic()
        with open(self.stderr_path, "wb") as stderr:
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "busbench.run.child", str(write_fd), str(self.stacks_path),
                     str(self.marks_path), str(self.memory_limit or 0)],
                    stdin=subprocess.PIPE, stdout=stderr, stderr=stderr, pass_fds=(write_fd,),
                    start_new_session=True, env=env, close_fds=True)
            finally:
                os.close(write_fd)
        self._fd = read_fd
        self.exit_status = None
        self._t_spawn = t0

    def _send(self, message: dict) -> bool:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def _messages(self, timeout: float) -> tuple[list, bool]:
        """The messages that arrive within ``timeout``; and whether the pipe closed."""
        out = []
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except InterruptedError:
            return out, False
        if not ready:
            return out, False
        try:
            data = os.read(self._fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            return out, True
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out, False

    def _sample_memory(self) -> None:
        if self.alive:
            status = _proc_status(self.proc.pid)
            self.peak_data = max(self.peak_data, status.get("VmData", 0))
            self.peak_rss = max(self.peak_rss, status.get("VmHWM", 0))

    def _reap(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the child to end; record its status and rusage."""
        if self.proc is None or self.exit_status is not None:
            return True
        end = time.monotonic() + timeout
        while True:
            try:
                pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:        # reaped elsewhere: Popen's returncode holds it
                self.exit_status = 0 if self.proc.returncode is None else self.proc.returncode
                return True
            if pid:
                self.exit_status, self.rusage = status, rusage
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.peak_rss = max(self.peak_rss, rusage.ru_maxrss * 1024)
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)

    def kill(self, dump_stacks: bool = False) -> None:
        """The whole process group: the child and whatever it started."""
        if self.proc is None:
            return
        if dump_stacks and self.exit_status is None:
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)     # faulthandler: no GIL needed
                time.sleep(0.3)
            except ProcessLookupError:
                pass
        self._killpg()
        self._reap(5.0)

    def _killpg(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """End the child (asked, then killed) and everything it started; remove its files."""
        if self.proc is not None:
            if self.exit_status is None:
                self._send({"cmd": "exit"})
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                self._reap(5.0)
            self._killpg()          # a helper left in its group (a redis-server) goes too
            self._reap(1.0)
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def process_info(self) -> dict:
        return {"isolated": True, "pid": self.proc.pid if self.proc else None,
                "peak_rss_bytes": self.peak_rss or None,
                "peak_data_bytes": self.peak_data or None,
                "memory_limit_bytes": self.memory_limit,
                # spawn to a live interpreter; the job sent to its deadline starting (imports,
                # the target opened and prepared, kernels loaded from Numba's cache)
                "startup_s": None if self.startup_s is None else round(self.startup_s, 3),
                "prepare_s": None if self.prepare_s is None else round(self.prepare_s, 3),
                "warm": self.jobs_run > 1}

    # ------------------------------------------------------------------ a run
    def run(self, scenario, job: Job, progress=None) -> RunResult:
        """Run ``job`` in the child (started if need be); always a RunResult, also
        when the child crashed, hung or was interrupted."""
        if self.proc is None:
            self.start()
        elif not self.alive:
            raise RuntimeError("this child has ended: a Session starts a new one")
        self.jobs_run += 1
        story = _Story(last_heard=time.monotonic())
        t_job = self._t_job = time.monotonic()
        self._scenario = scenario
        self.prepare_s = None
        self._send({"cmd": "run", "job": job.to_dict()})
        interrupted_at = None
        stop_sent = False
        closed = False
        handlers = _ForwardSignals()
        with handlers:
            while True:
                if handlers.signalled and interrupted_at is None:
                    interrupted_at = time.monotonic()
                    try:
                        os.kill(self.proc.pid, signal.SIGINT)
                    except ProcessLookupError:
                        pass
                messages, closed = self._messages(0.1)
                now = time.monotonic()
                if messages:
                    story.last_heard = now
                for k, m in enumerate(messages):
                    outcome = self._hear(m, story, progress, scenario)
                    if outcome is not None:
                        kind, value = outcome
                        # the job's last line may have come in the same read as its outcome
                        if not any(later.get("t") == "done" for later in messages[k + 1:]):
                            self._drain_done(1.0)
                        if kind == "result":
                            return self._finish(result_from_dict(value), story, interrupted_at)
                        if kind == "usage":
                            raise UsageFromChild(*value)
                        if kind in ("failed", "interrupted"):
                            status = N.RUN_INTERRUPTED if kind == "interrupted" else N.RUN_ERROR
                            return self._partial(scenario, job, story, status, value or "interrupted")
                self._sample_memory()
                if closed or self._reap(0.0):
                    # the pipe closed or the process ended: take what is left, then judge
                    more, _ = self._messages(0.05)
                    for m in more:
                        outcome = self._hear(m, story, progress, scenario)
                        if outcome is not None and outcome[0] == "result":
                            self._reap(2.0)
                            return self._finish(result_from_dict(outcome[1]), story, interrupted_at)
                    self._reap(2.0)
                    return self._crashed(scenario, job, story, interrupted_at)
                if interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE_S:
                    self.kill(dump_stacks=True)
                    return self._partial(scenario, job, story, N.RUN_INTERRUPTED,
                                         f"interrupted; the process did not end within "
                                         f"{INTERRUPT_GRACE_S:g} s and was killed")
                if story.started_at is None:
                    if now - t_job > START_BUDGET_S:
                        self.kill(dump_stacks=True)
                        return self._partial(scenario, job, story, N.RUN_TIMED_OUT,
                                             f"the process did not start the run within "
                                             f"{START_BUDGET_S:g} s; killed")
                    continue
                past = now - (story.started_at + story.deadline_s)
                if past >= 0 and not stop_sent:
                    stop_sent = self._send({"cmd": "stop"})
                if past >= 0 and (now - story.last_heard > KILL_GRACE_S
                                  or past > TEARDOWN_ALLOWANCE_S + KILL_GRACE_S):
                    self.kill(dump_stacks=True)
                    return self._partial(
                        scenario, job, story, N.RUN_TIMED_OUT,
                        f"the process did not respond (a call into the bus held the GIL or "
                        f"never returned); killed after {now - story.started_at:.0f} s "
                        f"(deadline {story.deadline_s:g} s)", killed=True)

    def _drain_done(self, timeout: float) -> None:
        """Read up to the child's ``done`` (the job's last line)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            messages, closed = self._messages(0.05)
            if closed or any(m.get("t") == "done" for m in messages):
                return

    def _hear(self, m: dict, story: _Story, progress, scenario):
        from ..evidence.result import StepRecord
        kind = m.get("t")
        if kind == "say":
            self.say(m["line"])
        elif kind == "ready":
            if self.startup_s is None:
                self.startup_s = time.monotonic() - self._t_spawn
        elif kind == "begin":
            story.begin = m
            story.deadline_s = (m.get("deadline") or {}).get("seconds")
        elif kind == "started":
            story.started_at = time.monotonic()
            self.prepare_s = story.started_at - self._t_job
            story.capabilities = m.get("capabilities") or {}
        elif kind == "snap":
            story.snap = m["snap"]
            story.counters = dict(m["snap"].get("counters") or {})
            story.producers = m.get("producers") or story.producers
            story.load_s = m.get("load_s", story.load_s)
            story.series.append(m["row"])
            if progress is not None:
                progress.update(snapshot_from_dict(m["snap"]))
        elif kind == "step":
            story.step = {"index": m["index"], "label": m["label"],
                          "started_s": m.get("started_s", 0.0)}
        elif kind == "step_end":
            details = m.get("details") or {}
            story.counters = m.get("counters") or story.counters
            story.producers = m.get("producers") or story.producers
            story.load_s = m.get("load_s", story.load_s)
            started = story.step
            t0 = (started or {}).get("started_s", 0.0)
            elapsed = (time.monotonic() - story.started_at) if story.started_at else t0
            story.steps.append(StepRecord(m["index"], m["kind"], m["label"], t0,
                                          max(0.0, elapsed - t0), story.counters, details))
            if "flush" in details:
                story.flushes.append(details["flush"])
            if "shutdown" in details:
                story.shutdown = details["shutdown"]
            for v in details.get("checks") or ():
                story.verdicts.append(_verdict(v))
            if started is not None and started.get("index") == m["index"]:
                story.step = None
        elif kind == "result":
            return "result", m["record"]
        elif kind == "usage_error":
            return "usage", (m["message"], m.get("exit_code", N.EXIT_USAGE))
        elif kind == "failed":
            return "failed", m.get("error")
        elif kind == "interrupted":
            return "interrupted", None
        return None

    # ------------------------------------------------------------------ records
    def _finish(self, result: RunResult, story: _Story, interrupted_at) -> RunResult:
        self._sample_memory()
        result.process = self.process_info()
        return self._out_of_memory(result, story, self._scenario)

    def _out_of_memory(self, result: RunResult, story: _Story, scenario=None) -> RunResult:
        """An error under a memory limit that looks like running out of it (a MemoryError,
        a thread that could not start, a peak near the limit) is the crash it is."""
        from ..verdicts import checks as C
        if self.memory_limit and result.status == N.RUN_ERROR and result.error \
                and (any(w in result.error for w in _OOM_WORDS) or self._near_limit()):
            result.status = N.RUN_CRASHED
            where = _where(story)
            result.error = (f"out of memory (limit {format_bytes(self.memory_limit)})"
                            + (f" during {where}" if where else "") + f": {result.error}")
            result.crash = {**(result.crash or {}), "signal": None, "exit_code": None,
                            "out_of_memory": True, "step": story.step, "reason": result.error,
                            "stderr_tail": _read_tail(self.stderr_path, STDERR_TAIL_BYTES),
                            "peak_rss_bytes": self.peak_rss or None,
                            "peak_data_bytes": self.peak_data or None}
            short = result.error.split(":")[0]
            if scenario is not None and not any(v.at == "end" for v in result.checks):
                result.checks = _judge(scenario, story, short)   # as for a child that died
            else:
                result.checks = [v if v.outcome != N.NOT_EVALUABLE else
                                 C.Verdict(v.name, v.kind, v.outcome, v.expect,
                                           f"{short}: {v.evidence}", v.numbers, v.at)
                                 for v in result.checks]
        return result

    def _near_limit(self) -> bool:
        return bool(self.memory_limit) and \
            max(self.peak_data, self.peak_rss) >= OOM_NEAR * self.memory_limit

    def _calls_in_flight(self) -> list:
        from .child import CALLS, SLOT_LOAD, SLOT_MAIN, SLOT_OTHER
        try:
            marks = self.marks_path.read_bytes()
        except OSError:
            return []
        calls = []
        for slot in (SLOT_MAIN, SLOT_OTHER, SLOT_LOAD):
            name = CALLS.get(marks[slot]) if slot < len(marks) else None
            if name and name not in calls:
                calls.append(name)
        return calls

    def _death(self) -> tuple[str | None, int | None]:
        """(signal name, None) or (None, exit code) of a child that ended, from Popen's
        returncode (set when reaped: negative for a signal)."""
        code = None if self.proc is None else self.proc.returncode
        if self.exit_status is None or code is None:
            return None, None
        if code < 0:
            return signal_name(-code), None
        return None, code

    def _crash_info(self, story: _Story, sig, code) -> dict:
        oom = False
        if self.memory_limit:
            tail = _read_tail(self.stderr_path, STDERR_TAIL_BYTES)
            oom = any(w in tail for w in _OOM_WORDS) or (sig in _OOM_SIGNALS and self._near_limit())
        return {"signal": sig, "exit_code": code, "step": story.step,
                "calls_in_flight": self._calls_in_flight(), "out_of_memory": oom,
                "stderr_tail": _read_tail(self.stderr_path, STDERR_TAIL_BYTES),
                "stacks": _read_tail(self.stacks_path, STACKS_BYTES),
                "peak_rss_bytes": self.peak_rss or None, "peak_data_bytes": self.peak_data or None}

    def _crashed(self, scenario, job, story, interrupted_at) -> RunResult:
        sig, code = self._death()
        crash = self._crash_info(story, sig, code)
        how = f"({sig})" if sig else f"(exit code {code})"
        where = _where(story)
        events = story.counters.get(N.EVENTS_INGESTED)
        if events is None and story.producers:
            events = sum(p.get("landed", 0) for p in story.producers)
        after = f" after {events:,} events" if events else ""
        calls = crash["calls_in_flight"]
        during = f" during {where}" if where else " before the run started"
        in_call = f"; call in flight: {', '.join(calls)}" if calls else ""
        if crash["out_of_memory"]:
            message = (f"out of memory (limit {format_bytes(self.memory_limit)}): the bus "
                       f"crashed {how}{during}{after}{in_call}")
        else:
            message = f"the bus crashed {how}{during}{after}{in_call}"
        crash["reason"] = message
        self.exit_status = self.exit_status if self.exit_status is not None else 0
        status = N.RUN_INTERRUPTED if interrupted_at is not None else N.RUN_CRASHED
        return self._partial(scenario, job, story, status, message, crash=crash)

    def _partial(self, scenario, job, story: _Story, status, message, crash=None,
                 killed=False) -> RunResult:
        """A record of what the parent heard, for a run that did not end by itself."""
        from ..evidence.result import RunResult
        if killed or (crash is None and not self.alive):
            sig, code = self._death()
            crash = self._crash_info(story, sig, code)
            crash["reason"] = message
        elif crash is None and self.proc is not None:
            crash = None
        begin = story.begin or {}
        from ..evidence.result import environment
        result = RunResult(
            scenario_name=begin.get("scenario_name", scenario.name),
            scenario=begin.get("scenario") or scenario.to_dict(), source=job.source,
            target=begin.get("target", scenario.target_name), layout=begin.get("layout", "-"),
            environment=begin.get("environment") or environment(scenario.to_dict()),
            started_at=begin.get("started_at") or _now(), status=status, error=message,
            deadline=begin.get("deadline"), series_interval_s=begin.get("series_interval_s", 0.0))
        result.duration_s = (time.monotonic() - story.started_at) if story.started_at else 0.0
        result.load_s = story.load_s
        step = story.step
        if step is not None and story.started_at is not None and \
                str(step.get("label", "")).startswith(("run", "flush under load")):
            # the load step in progress counts up to the last thing heard
            result.load_s += max(0.0, story.last_heard - story.started_at - step.get("started_s", 0.0))
        ingested = story.counters.get(N.EVENTS_INGESTED)
        if ingested:
            result.metrics = {"dropped_ratio": story.counters.get(N.EVENTS_DROPPED, 0) / ingested}
        result.steps = list(story.steps)
        result.series = list(story.series)
        result.counters = dict(story.counters)
        for key, value in typed_evidence(story.producers, story.flushes, story.shutdown).items():
            setattr(result, key, value)
        result.capabilities = story.capabilities
        result.backpressure = getattr(scenario.bus, "backpressure", None)
        result.checks = _judge(scenario, story, message)
        result.crash = crash
        result.process = self.process_info()
        return self._out_of_memory(result, story, scenario)


def result_from_dict(d: dict) -> RunResult:
    """A record (``to_dict``) back into a RunResult: what a supervised child sent."""
    from ..evidence.result import RunResult, StepRecord
    from dataclasses import fields

    from ..verdicts.checks import Verdict
    names = {f.name for f in fields(RunResult)}
    values = {k: v for k, v in d.items() if k in names}
    verdict_fields = {f.name for f in fields(Verdict)}
    values["checks"] = [Verdict(**{k: v for k, v in c.items() if k in verdict_fields})
                        for c in d.get("checks", [])]
    values["steps"] = [StepRecord(**s) for s in d.get("steps", [])]
    values.update(typed_evidence(d.get("producers"), d.get("flushes"), d.get("shutdown")))
    return RunResult(**values)


def typed_evidence(producers, flushes, shutdown) -> dict:
    """The record's producer, flush and shutdown entries (their to_dict) as the types
    a RunResult holds."""
    from ..load.generator import ProducerTruth
    from ..evidence.types import FlushEvidence, ShutdownEvidence
    return {"producers": tuple(ProducerTruth.from_dict(p) for p in producers or ()),
            "flushes": tuple(FlushEvidence.from_dict(f) for f in flushes or ()),
            "shutdown": None if shutdown is None else ShutdownEvidence.from_dict(shutdown)}


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _where(story: _Story) -> str:
    if story.step is not None:
        return f"step {story.step['index'] + 1} ({story.step['label']})"
    if story.started_at is None:
        return ""
    return "the end of the run" if story.steps else "the start of the run"


def _verdict(d: dict) -> C.Verdict:
    from ..verdicts import checks as C
    from dataclasses import fields
    names = {f.name for f in fields(C.Verdict)}
    return C.Verdict(**{k: v for k, v in d.items() if k in names})


def _judge(scenario, story: _Story, message: str) -> list:
    """Verdicts of a run that did not end: those its check steps gave, then the
    checks of the steps it did not reach and its end checks, judged on the
    evidence received where it suffices (a flush's record, a shutdown claim),
    else not evaluable, naming why."""
    from ..verdicts import checks as C
    from ..scenario.schema import CheckStep
    verdicts = list(story.verdicts)
    reached = {s.index for s in story.steps}
    short = message.split(": the bus ")[0] if message.startswith("out of memory") else message
    ev = C.Evidence.from_dict({
        "counters": dict(story.counters), "producers": list(story.producers), "delivery": None,
        "flushes": list(story.flushes), "shutdown": story.shutdown, "metrics": {},
        "quiescent": False, "capabilities": story.capabilities,
        "backpressure": getattr(scenario.bus, "backpressure", None), "unquiet": short})
    pending = []
    for index, step in enumerate(scenario.steps):
        if isinstance(step, CheckStep) and index not in reached:
            pending += [(spec, f"step {index}") for spec in step.checks]
    pending += [(spec, "end") for spec in scenario.checks]
    for spec, at in pending:
        why = C.predicted_not_observable(spec.kind, story.capabilities or {})
        if why:
            verdicts.append(C.Verdict(spec.label, spec.kind, N.NOT_OBSERVABLE, spec.expect, why,
                                      {}, at))
            continue
        v = C.Verdict(spec.label, spec.kind, N.NOT_EVALUABLE, spec.expect, short, {}, at)
        if _final(spec):
            try:
                judged = C.evaluate(spec, ev, at)
            except Exception:  # noqa: BLE001 -- partial evidence: not evaluable, never crash here
                judged = v
            if judged.outcome in (N.PASSED, N.FAILED):
                v = judged
        verdicts.append(v)
    return verdicts


def _final(spec) -> bool:
    """Checks whose evidence is final once received: a flush's record, a shutdown claim.
    Every other check needs the end of the run (quiescence, the witness, the metrics)."""
    return spec.kind in (N.FLUSH_BARRIER, N.FLUSH_COMPLETES, N.LOSSY_SHUTDOWN)


def snapshot_from_dict(d: dict):
    from .snapshot import CheckState, ShardFill, Snapshot
    d = dict(d)
    d["shards"] = tuple(ShardFill(**s) for s in d.get("shards") or ())
    d["checks"] = tuple(CheckState(**c) for c in d.get("checks") or ())
    d["throughput_history"] = tuple(d.get("throughput_history") or ())
    return Snapshot(**d)


class _ForwardSignals:
    """SIGINT and SIGTERM to the parent, while a child runs: noted (the loop forwards
    them to the child), never raised mid-message."""

    def __init__(self):
        self.signalled = False
        self._previous = {}

    def _handler(self, signum, frame):
        self.signalled = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False


def run_supervised(scenario, job: Job, progress=None, say=lambda line: None,
                   memory_limit: int | None = None) -> RunResult:
    """One run in a child of its own, ended with it."""
    with Session(memory_limit=memory_limit, say=say) as session:
        return session.run(scenario, job, progress)


class Session:
    """Runs one after another in one warm child (compare's paired rounds, the matrix's
    cells: kernels compiled once, every round in one process); a crashed child is
    replaced by a fresh one for the next run. ``isolate=False``: in this process, as
    before supervision (for gdb, perf, py-spy). A target's usage error found in the
    child is raised here as the ``TargetError`` it was."""

    def __init__(self, isolate: bool = True, memory_limit: int | None = None,
                 say=lambda line: None):
        self.isolate, self.memory_limit, self.say = isolate, memory_limit, say
        self.child: Child | None = None

    def prestart(self) -> None:
        """Start the child now (it imports the runner and Numba while this process still
        validates scenarios): on two cores, its start-up overlaps the parent's."""
        if self.isolate and self.child is None:
            self.child = Child(memory_limit=self.memory_limit, say=self.say)
            self.child.start()

    def run(self, scenario, job: Job, progress=None, fresh: bool = False) -> RunResult:
        """``fresh``: in a child that ran nothing before (``run``: one process per scenario)."""
        from ..targets.errors import TargetError
        if not self.isolate:
            from .runner import Runner
            return Runner(scenario, job.source, progress=progress, say=self.say,
                          pin_threads=job.pin, timeout_s=job.timeout_s).run()
        limits = getattr(scenario, "limits", None)
        limit = self.memory_limit if self.memory_limit is not None else getattr(limits, "memory", None)
        if self.child is not None and (self.child.memory_limit != limit or not self.child.alive
                                       or (fresh and self.child.jobs_run > 0)):
            self.child.close()
            self.child = None
        if self.child is None:
            self.child = Child(memory_limit=limit, say=self.say)
        self.child.say = self.say
        try:
            return self.child.run(scenario, job, progress)
        except UsageFromChild as e:
            raise TargetError(str(e), e.exit_code) from None

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
