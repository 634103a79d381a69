"""CPU time of the bus's threads (the ``cpu_per_event`` metric, computed in
metrics.py), and pinning them to CPUs.

Why CPU time. On a shared 2-core VM the other tenants take the cores away for
a while: events/s falls, but the CPU time the bus's own threads spend per
event barely moves, because a thread that waits for a core is not charged.
So ``cpu_per_event`` (nanoseconds of producer + worker thread CPU time per
event dispatched) is the quieter metric for "did my change make the bus do
more work per event?", while throughput answers "how fast on this machine,
now?". Spinning counts as work: a producer spinning on a full ring, or a
worker polling an empty one, is charged.

How it is read. Each producer thread reads its own clock
(``time.thread_time_ns``) when its kernel returns (the load generator adds it
to ``cpu_ns``). The worker threads are the target's (``Target.worker_threads``;
a target that cannot name them leaves the metric "not measured", never 0).
They live for the whole run, so the runner reads their clocks from outside at
every step's start and end, through the Linux per-thread CPU clock of their kernel thread id (what ``pthread_getcpuclockid``
returns; built from ``native_id`` so a thread that has just exited is never
dereferenced), keeping each thread's last reading. The few milliseconds a
worker spends draining after the last reading are not counted. No GIL is
needed by the threads being measured: they are read, not interrupted.

Hardware counters (instructions, cache misses per event, via
``perf_event_open``) would be quieter still; they are not available on the VMs
busbench is developed on (``perf stat -e instructions``: not supported), and
nothing here depends on them.

Pinning (``--pin``): producer p runs on the p-th CPU this process may use,
the workers on the next ones, round robin (``os.sched_setaffinity`` on the
thread's id). Where the machine refuses, the run goes on unpinned and the
record says why.
"""
from __future__ import annotations

import os
import sys
import threading
import time

_CPUCLOCK_SCHED = 2
_CPUCLOCK_PERTHREAD = 4


def thread_cpu_ns(thread: threading.Thread) -> int | None:
    """CPU time ``thread`` has used so far, in ns; None when it is not running or unreadable."""
    if not thread.is_alive():
        return None
    try:
        if sys.platform.startswith("linux") and thread.native_id is not None:
            clock = ((~thread.native_id) << 3) | _CPUCLOCK_SCHED | _CPUCLOCK_PERTHREAD
        else:
            clock = time.pthread_getcpuclockid(thread.ident)
        return time.clock_gettime_ns(clock)
    except (OSError, AttributeError, TypeError, OverflowError):
        return None


class WorkerClocks:
    """The last CPU-time reading of each worker thread (threads exit; their last reading stays)."""

    def __init__(self):
        self._last: dict[int, int] = {}

    def read(self, threads) -> None:
        for thread in threads:
            value = thread_cpu_ns(thread)
            if value is not None:
                key = id(thread)
                self._last[key] = max(value, self._last.get(key, 0))

    @property
    def total_ns(self) -> int:
        return sum(self._last.values())


def worker_threads_of(target) -> list | None:
    """The target's worker threads (``Target.worker_threads``), or None when it
    cannot name them (then the worker part of the CPU metrics is not measured
    and workers are not pinned). Foreign targets need not define the method."""
    method = getattr(target, "worker_threads", None)
    threads = method() if method is not None else None
    return None if threads is None else list(threads)


class Pinning:
    """Pin producer and worker threads to CPUs, where allowed; says what it did."""

    def __init__(self, producers: int):
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = []
        self.producers = producers
        self.applied: dict[str, int] = {}
        self.errors: list[str] = []
        if not self.cpus:
            self.errors.append("os.sched_getaffinity is not available on this platform")

    def cpu_for(self, role: str, index: int) -> int | None:
        if not self.cpus:
            return None
        slot = index if role == "producer" else self.producers + index
        return self.cpus[slot % len(self.cpus)]

    def _pin(self, name: str, tid: int, cpu: int | None) -> None:
        if cpu is None:
            return
        try:
            os.sched_setaffinity(tid, {cpu})
            self.applied[name] = cpu
        except (AttributeError, OSError) as exc:
            self.errors.append(f"{name} -> CPU {cpu}: {exc}")

    def pin_current_producer(self, producer: int) -> None:
        """Called in the producer thread itself as it starts."""
        self._pin(f"producer-{producer}", 0, self.cpu_for("producer", producer))

    def pin_workers(self, threads) -> None:
        """``threads``: the target's worker threads; None when it cannot name them."""
        if threads is None:
            self.errors.append("the target cannot name its worker threads: workers not pinned")
            return
        for index, thread in enumerate(threads):
            if thread.is_alive() and thread.native_id is not None:
                self._pin(f"worker-{index}", thread.native_id, self.cpu_for("worker", index))

    def report(self) -> dict:
        return {"asked": True, "cpus": self.cpus, "applied": dict(sorted(self.applied.items())),
                "errors": list(dict.fromkeys(self.errors)),
                "effective": bool(self.applied) and not self.errors}
