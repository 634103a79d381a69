"""The watchdog: every run has a deadline, and a run past it stops safely.

A stalled adapter or producer that never recovers, a count step a slow bus
cannot finish, a flush with a long timeout: none of them may hang CI. Every
run gets a deadline (``--timeout``, else the scenario's ``timeout:``, else its
planned time times ``SLACK_FACTOR`` plus ``SLACK_S``). The runner asks the
watchdog at each step boundary and inside its waits; the watchdog's own thread,
at the deadline, raises the producers' stop flag and releases every stall, so
that whatever the runner is waiting on ends by itself. The runner then raises
``RunTimedOut``, tears down with bounded waits (``teardown``), and the run is
recorded with status ``timed_out`` (exit 3).

The deadline starts after the kernels are compiled: a first run on a cold
cache spends seconds compiling, which is not the scenario's time.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

SLACK_FACTOR = 2.0          # a default deadline is twice the planned time...
SLACK_S = 60.0              # ...plus a minute (a loaded CI machine, a slow first drain)
CLOSED_LOOP_FLOOR = 100_000.0   # events/s assumed for a closed-loop count step when planning
IMPLICIT_SHUTDOWN_GRACE_S = 5.0
TEARDOWN_BUDGET_S = 10.0    # bounded waits for the threads at teardown, in all

# Where a run's deadline came from (recorded, and named in the message).
FROM_OPTION, FROM_SCENARIO, FROM_PLAN = "--timeout", "scenario timeout", "planned time"


class RunTimedOut(Exception):
    """The run passed its deadline; the message says where it was."""


@dataclass(frozen=True)
class Deadline:
    seconds: float
    source: str                 # FROM_OPTION | FROM_SCENARIO | FROM_PLAN
    planned_s: float            # the scenario's planned time (an estimate, always recorded)

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "source": self.source,
                "planned_s": round(self.planned_s, 3)}


def _drain_s(scenario) -> float:
    """Worst time to drain full rings through the adapter (a flush, the final drain)."""
    bus = scenario.bus
    adapter = bus.adapter
    events = bus.shards * bus.capacity
    batches = math.ceil(events / bus.batch.max_events)
    per_batch = getattr(adapter, "per_batch", 0) + getattr(adapter, "retries", 0) * getattr(
        adapter, "backoff", 0) if adapter.tag in ("slow", "flaky") else 0
    per_event = getattr(adapter, "per_event", 0) if adapter.tag == "slow" else 0
    return (batches * per_batch + events * per_event) / 1e9


def planned_seconds(scenario) -> float:
    """What the scenario's steps should take at most if the bus keeps up: run
    steps, sleeps, flush timeouts, shutdown grace, every stall, and a drain of
    full rings per flush and at shutdown. An estimate for the default deadline."""
    bus, load = scenario.bus, scenario.load
    drain = _drain_s(scenario)
    # The call in progress at a step's end: every event of it may wait up to
    # block_timeout for room (the wait starts again after each bit of progress),
    # so a call lasts up to batch x block_timeout. min(shards, batch) waits, the
    # estimate before, was 4x short for 4096 events into 1024 two-slot rings
    # (a 52 ms step took 2.1 s; the fuzzer saw one such run pass 20 s).
    last_call = bus.block_timeout * load.batch / 1e9 \
        if bus.backpressure in ("block", "drop_oldest") else 0.0
    total = 0.0
    shut_down = False
    for step in scenario.steps:
        kind = step.tag
        if kind == "run":
            if step.duration is not None:
                total += step.duration / 1e9
            else:
                rate = load.total_rate or CLOSED_LOOP_FLOOR
                total += step.events / rate
            total += last_call
        elif kind == "flush":
            total += step.timeout / 1e9 + drain + last_call
        elif kind == "sleep":
            total += step.duration / 1e9
        elif kind == "fault":
            total += step.fault.planned_ns / 1e9
        elif kind == "shutdown":
            total += step.grace / 1e9 + drain
            shut_down = True
    if not shut_down:
        total += IMPLICIT_SHUTDOWN_GRACE_S + drain
    if bus.adapter.tag == "stall":
        total += (bus.adapter.at + bus.adapter.duration) / 1e9
    return total


def run_deadline(scenario, option_s: float | None = None) -> Deadline:
    """``--timeout`` wins over the scenario's ``timeout:``, which wins over the plan."""
    planned = planned_seconds(scenario)
    if option_s is not None:
        return Deadline(option_s, FROM_OPTION, planned)
    if getattr(scenario, "timeout", None) is not None:
        return Deadline(scenario.timeout / 1e9, FROM_SCENARIO, planned)
    return Deadline(planned * SLACK_FACTOR + SLACK_S, FROM_PLAN, planned)


class Watchdog:
    """Counts down a run's deadline on its own thread; at expiry calls each of
    ``on_expire`` (raise the stop flag, release the stalls) once.

    The runner polls ``check()``; ``clip()`` shortens a wait that would cross
    the deadline (when the shortened wait ran into the deadline the run is cut
    short, so its outcome, a flush timed out or a shutdown made lossy, is never
    judged); ``sleep()`` wakes at the deadline.
    """

    def __init__(self, deadline: Deadline, on_expire=()):
        self.deadline = deadline
        self.on_expire = list(on_expire)
        self.where = "starting"            # the step the runner is in, for the message
        self._expired = threading.Event()
        self._expire_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._clipped = False
        self._end = None
        self._thread = None
        self.expire_errors: list[str] = []

    def start(self) -> Watchdog:
        self._end = time.monotonic() + self.deadline.seconds
        self._thread = threading.Thread(target=self._run, name="busbench-watchdog", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        if self._cancelled.wait(self.deadline.seconds):
            return
        self._expire()

    def expire_now(self) -> None:
        """The deadline, now (the supervising parent's clock came first)."""
        if self._end is not None:
            self._expire()

    def _expire(self) -> None:
        with self._expire_lock:
            if self._expired.is_set():
                return
            self._expired.set()
        for action in self.on_expire:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 -- keep releasing what else can be released
                self.expire_errors.append(f"{type(exc).__name__}: {exc}")

    def cancel(self) -> None:
        self._cancelled.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    @property
    def cut_short(self) -> bool:
        """Past the deadline, or a wait was clipped to it and the deadline has come
        (a clipped wait that ended early by itself, a flush that reached, is fine)."""
        return self._expired.is_set() or (self._clipped and self.remaining() <= 0)

    def remaining(self) -> float:
        if self._end is None:
            return math.inf
        return max(0.0, self._end - time.monotonic())

    def clip(self, seconds: float) -> float:
        left = self.remaining()
        if seconds > left:
            self._clipped = True
            return left
        return seconds

    def sleep(self, seconds: float) -> None:
        self._expired.wait(self.clip(seconds))

    def message(self) -> str:
        d = self.deadline
        return (f"the run passed its {d.seconds:g}s deadline ({d.source}; planned "
                f"{d.planned_s:.3g}s) during {self.where}; stopped: producers told to stop, "
                f"stalls released, shutdown with grace 0")

    def check(self) -> None:
        if self.cut_short:
            raise RunTimedOut(self.message())


def teardown(gen, target, budget_s: float = TEARDOWN_BUDGET_S) -> list:
    """Stop the producers and the target with bounded waits, whatever state they
    are in: stop flag, release every fault, join the producers, close the target
    (grace 0, on a thread of its own, joined with a bound). Returns the names of
    the threads still alive after ``budget_s`` (normally none): ours, and those
    the target says it started (``Target.threads``). An error of the target's
    close (a worker that failed) is raised here, in the caller's thread."""
    end = time.monotonic() + budget_s
    if gen is not None:
        gen.stop_flag[0] = 1
    target.release_faults()
    if gen is not None:
        gen.stop(timeout_s=max(0.0, end - time.monotonic()))
    errors: list = []

    def close():
        try:
            target.close()
        except BaseException as exc:  # noqa: BLE001 -- re-raised below, in the caller's thread
            errors.append(exc)

    closer = threading.Thread(target=close, name="busbench-teardown", daemon=True)
    closer.start()
    closer.join(max(0.1, end - time.monotonic()))
    if gen is not None and gen.running:
        gen.stop(timeout_s=max(0.0, end - time.monotonic()))
    ours = [closer, *(gen.threads() if gen is not None else ()), *target.threads()]
    left = [t.name for t in ours if t.is_alive()]
    if errors:
        raise errors[0]
    return left
