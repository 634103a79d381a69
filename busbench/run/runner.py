"""Runner: steps a target through a scenario -> RunResult.

One way through (STYLE.md): a frozen Scenario goes in, a RunResult comes out.
The runner knows no target's internals: it drives a ``Target`` (targets/) and
a ``LoadGenerator`` (load/) built on the target's ``produce`` entry; evidence
comes from ``evidence.py``, metrics from ``metrics.py``, the display's values
from ``sampler.py``. Every thread started here is joined on every exit path,
Ctrl-C included, and every run has a deadline (``watchdog.py``): past it the
run stops safely and is recorded as timed out.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from ..verdicts import checks as C
from ..common import names as N
from . import threadcpu, waiting
from . import watchdog as W
from ..native import histogram
from ..evidence.collector import EvidenceCollector
from ..evidence.types import ShutdownEvidence
from ..load import kernels as K
from ..load.generator import LoadGenerator, LoadSpec
from ..evidence.metrics import CpuTime, latency_summaries, run_metrics
from ..scenario.quiescence import Quiescence
from ..evidence.result import RunResult, StepRecord, environment
from .sampler import SAMPLE_INTERVAL_S, Sampler
from .snapshot import CheckState, ShardFill, Snapshot
from ..targets import TargetError, open_target
from ..targets.base import exports, throughput_counter
from ..common.units import format_count, format_duration

UNDER_LOAD_LEAD_S = 0.05      # load runs this long before a flush `under_load` is called
IMPLICIT_GRACE_S = W.IMPLICIT_SHUTDOWN_GRACE_S   # a scenario without a shutdown step
STOP_GRACE_S = 1.0            # past the deadline, producers get this long to see the stop flag


def load_spec(scenario) -> LoadSpec:
    """The scenario's `load:` section as plain values (explicit, field by field)."""
    load = scenario.load
    keys = load.keys
    kind = keys.tag
    hot_shard, hot_share, zipf_exponent = 0, 0.9, 1.1
    if kind == "hot":
        hot_shard, hot_share = keys.shard, keys.share
    elif kind == "zipf":
        zipf_exponent = keys.exponent
    elif kind not in ("uniform", "round_robin"):
        raise ValueError(f"load.keys: no translation for key distribution {kind!r}")
    return LoadSpec(producers=load.producers, rate_per_producer=load.per_producer_rate,
                    batch=load.batch, keys=kind, hot_shard=hot_shard, hot_share=hot_share,
                    zipf_exponent=zipf_exponent, late_after_ns=load.late_after,
                    retry_failed=load.on_fail == "retry", seed=scenario.seed)


def step_label(step) -> str:
    kind = step.tag
    if kind == "run":
        if step.duration is not None:
            return f"run {format_duration(step.duration)}"
        return f"run {format_count(step.events)} events"
    if kind == "flush":
        return "flush under load" if step.under_load else "flush"
    if kind == "check":
        return "check " + ", ".join(c.label for c in step.checks)
    if kind == "sleep":
        return f"sleep {format_duration(step.duration)}"
    if kind == "fault":
        return f"fault {step.fault.tag}"
    if kind == "shutdown":
        return f"shutdown (grace {format_duration(step.grace)})"
    return kind


class Runner:
    def __init__(self, scenario, source: str = "<scenario>", progress=None,
                 sample_interval_s: float = SAMPLE_INTERVAL_S, target=None,
                 say=lambda line: None, pin_threads: bool = False,
                 timeout_s: float | None = None):
        self.scenario = scenario
        self.deadline = W.run_deadline(scenario, timeout_s)
        self.watchdog = W.Watchdog(self.deadline)
        self.quiet = Quiescence()
        self.source = source
        self.progress = progress
        # one-off lines (what the target's prepare compiles or loads): the CLI
        # prints them before any progress, on stderr under --quiet
        self.say = say
        self.sample_interval_s = sample_interval_s
        self.spec = load_spec(scenario)
        self._target = target          # tests may hand in a target (a fake); else built in run()
        self.loading = False
        self.step_index = 0
        self.step_label = "starting"
        self.step_progress = None
        self.step_started = time.monotonic()
        self.step_expected_s, self.waiting_for = 0.0, ""     # waiting.plan(step)
        self.status = "running"
        self.check_states: dict = {}
        self._caps: dict = {}          # the target's capabilities, once prepared
        # cpu_per_event: the producers' clocks (the load generator) and the
        # target's worker threads' clocks, read at every step's start and end
        self.worker_clocks = threadcpu.WorkerClocks()
        self.workers_known = False
        self.pinning = threadcpu.Pinning(self.spec.producers) if pin_threads else None
        for spec in scenario.checks:
            self.check_states[spec.label] = CheckState(spec.label, N.CHECK_PENDING,
                                                       expected_to_fail=spec.expect == "fail")

    # ------------------------------------------------------------------ display
    def _on_sample(self, sample) -> None:
        if self.progress is not None:
            self.progress.update(self.snapshot(sample))

    def snapshot(self, sample) -> Snapshot:
        t = self.target
        fill = sample.shard_fill
        shards = tuple(ShardFill(f, t.capacity) for f in fill) if fill is not None else ()
        latency = None
        hists = t.latency_histograms()
        if hists is not None and hists[0][histogram.COUNT] > 0:
            latency = histogram.summary(hists[0])
        counters = sample.counters
        caps = self._caps
        lossy = (bool(counters[N.SHUTDOWN_WAS_LOSSY])
                 if exports(caps, N.SHUTDOWN_WAS_LOSSY, counters) and N.SHUTDOWN_WAS_LOSSY in counters
                 else None)
        return Snapshot(
            scenario=self.scenario.name, target=getattr(t, "label", t.name), layout=t.layout,
            step_index=self.step_index, step_count=len(self.scenario.steps),
            step_label=self.step_label,
            step_progress=self.step_progress() if callable(self.step_progress) else None,
            elapsed_s=sample.t, counters={k: counters[k] for k in N.COUNTER_NAMES if k in counters},
            rates=sample.rates or {k: 0.0 for k in N.COUNTER_NAMES if k in counters},
            shutdown_was_lossy=lossy, shards=shards,
            throughput_history=sample.history, checks=tuple(self.check_states.values()),
            latency_ns=latency, status=self.status,
            step_elapsed_s=time.monotonic() - self.step_started,
            step_expected_s=self.step_expected_s, waiting_for=self.waiting_for,
            capabilities=caps)

    # ------------------------------------------------------------------ cpu time
    def _read_worker_clocks(self) -> None:
        threads = threadcpu.worker_threads_of(self.target)
        self.workers_known = threads is not None
        if threads:
            self.worker_clocks.read(threads)

    def _cpu_time(self) -> CpuTime:
        """The CPU time so far; workers None when the target cannot name its threads."""
        return CpuTime(tuple(self.gen.cpu_ns),
                       self.worker_clocks.total_ns if self.workers_known else None)

    # ------------------------------------------------------------------ verdicts
    def _record_verdicts(self, specs, at) -> C.Evidence:
        quiescent = self.quiet.at_check(self.gen.running, self.target.shut_down)
        ev = self.collector.collect(quiescent=quiescent, load_s=self.load_s,
                                    unquiet="" if quiescent else self.quiet.reason)
        for spec in specs:
            v = C.evaluate(spec, ev, at)
            self.verdicts.append(v)
            label = spec.label if at == "end" else f"{spec.label} ({at})"
            self.check_states[label] = CheckState(label, v.outcome, evidence=v.evidence,
                                                  expected_to_fail=spec.expect == "fail")
        return ev

    # ------------------------------------------------------------------ steps
    def _run_load(self, duration_ns=None, events=None):
        self.target.before_load()
        t0 = time.monotonic()
        self.quiet.load_started()
        self.gen.start(duration_ns=duration_ns, events=events)
        self.loading = True
        if duration_ns:
            self.step_progress = lambda: min(1.0, (time.monotonic() - t0) / (duration_ns / 1e9))
        elif events:
            self.step_progress = lambda: min(1.0, sum(t.offered + t.turned_away
                                                     for t in self.gen.truths()) / events)
        try:
            # a producer stalled mid-push by a fault stays in flight: do not wait for it
            while not self.gen.wait(0.05) and not self.gen.only_stalled_left:
                self.watchdog.check()
        finally:
            self.loading = False
            self._stop_producers(wait_for_stalled=False)
            self.load_s += time.monotonic() - t0
            self.step_progress = None

    def _stop_producers(self, wait_for_stalled=True) -> None:
        """Stop the producers, waiting at most until the deadline (plus a second
        for the stop flag and the released stalls to be seen): a producer stuck
        in a target's ingest must not hang the run; the caller's next
        ``watchdog.check()`` then ends it as timed out, and teardown joins."""
        self.gen.stop(wait_for_stalled=wait_for_stalled,
                      timeout_s=self.watchdog.remaining() + STOP_GRACE_S)

    def _flush(self, i, step):
        timeout_s = step.timeout / 1e9
        idle = not self.gen.running

        def call():
            # clipped to the deadline: a flush cut short by it is never judged
            # (the run ends timed out at the step's end)
            return self.target.flush(self.watchdog.clip(timeout_s))
        if not step.under_load:
            record = self.collector.flush(i, timeout_s, False, call)
        else:
            t0 = time.monotonic()
            self.quiet.load_started()
            self.gen.start()
            try:
                self.watchdog.sleep(UNDER_LOAD_LEAD_S)
                record = self.collector.flush(i, timeout_s, True, call)
            finally:
                self._stop_producers(wait_for_stalled=False)
                self.load_s += time.monotonic() - t0
        self.quiet.flushed(record.claimed_reached, record.timed_out, step.under_load, idle)
        return record

    def _step(self, i, step) -> dict:
        kind = step.tag
        if kind == "run":
            self._run_load(duration_ns=step.duration, events=step.events)
            return {}
        if kind == "flush":
            return {"flush": self._flush(i, step).to_dict()}
        if kind == "check":
            ev = self._record_verdicts(step.checks, f"step {i}")
            return {"checks": [v.to_dict() for v in self.verdicts if v.at == f"step {i}"],
                    "evidence": ev.to_dict()}
        if kind == "sleep":
            self.watchdog.sleep(step.duration / 1e9)
            return {}
        if kind == "fault":
            return self.target.arm_fault(step.fault)
        if kind == "shutdown":
            claim = self.target.shutdown(self.watchdog.clip(step.grace / 1e9))
            return {"shutdown": ShutdownEvidence.from_claim(claim).to_dict()}
        raise AssertionError(f"unknown step {kind}")

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        sc = self.scenario
        self.t0 = time.monotonic()
        self.load_s = 0.0
        self.verdicts = []
        try:
            self.target = self._target if self._target is not None else open_target(sc)
        except TargetError as exc:     # the scenario asks what the target cannot do
            return RunResult(scenario_name=sc.name, scenario=sc.to_dict(), source=self.source,
                             target=sc.target_name, layout="-",
                             environment=environment(sc.to_dict()),
                             started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             status=N.RUN_ERROR, error=f"target {sc.target_name}: {exc}",
                             deadline=self.deadline.to_dict())
        t = self.target
        self.gen = LoadGenerator(self.spec, t.shards, t.produce, t.producer_stalling)
        self.collector = EvidenceCollector(t, self.gen, backpressure=sc.bus.backpressure,
                                           cpu_time=self._cpu_time)
        result = RunResult(scenario_name=sc.name, scenario=sc.to_dict(), source=self.source,
                           target=t.name, layout=t.layout, environment=environment(sc.to_dict()),
                           started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           series_interval_s=self.sample_interval_s,
                           deadline=self.deadline.to_dict())
        sampler = Sampler(t.counters, lambda: self.loading, self.t0, self._on_sample,
                          self.sample_interval_s, fill=t.shard_fill)
        steps = list(sc.steps)
        usage_error = None
        try:
            for line in t.describe_native():     # what native code or module is loaded, first
                self.say(line)
            self.step_label = "compiling kernels"
            t.prepare(self.say)
            # what the display may show (targets.base.exports), once the target
            # knows itself (a foreign bus's stats are known once it is loaded)
            self._caps = t.capabilities.to_dict()
            sampler.history_counter = throughput_counter(self._caps)
            native = getattr(t, "native_library", None)
            if native is not None and native() is not None:
                result.environment["native_library"] = native()   # which library, which release
            # the deadline starts once the kernels are compiled (not the scenario's time)
            self._announce_not_observable(t.capabilities)
            self.t0 = sampler.t0 = time.monotonic()
            self.watchdog.on_expire = [self._release_everything]
            self.watchdog.start()
            if hasattr(t, "readback_deadline"):     # the witness is read back within the deadline
                t.readback_deadline = time.monotonic() + self.deadline.seconds
            t.start()
            if self.pinning is not None:
                self.gen.thread_setup = self.pinning.pin_current_producer
                self.pinning.pin_workers(threadcpu.worker_threads_of(t))
            sampler.start()
            for i, step in enumerate(steps):
                self.step_index, self.step_label = i, step_label(step)
                self.step_expected_s, self.waiting_for = waiting.plan(step)
                started = self.step_started = time.monotonic()
                self.watchdog.where = f"step {i + 1} ({self.step_label})"
                self._read_worker_clocks()
                details = self._step(i, step)
                self._read_worker_clocks()
                self.watchdog.check()
                result.steps.append(StepRecord(i, step.tag, self.step_label, started - self.t0,
                                               time.monotonic() - started, t.counters(), details))
            if not t.shut_down:
                self.step_label = self.watchdog.where = "shutdown (implicit)"
                self.step_started, self.step_expected_s = time.monotonic(), 0.0
                self.waiting_for = waiting.shutdown_waits_for(int(IMPLICIT_GRACE_S * 1e9))
                claim = t.shutdown(self.watchdog.clip(IMPLICIT_GRACE_S))
                details = {"shutdown": ShutdownEvidence.from_claim(claim).to_dict()}
                self.watchdog.check()
                result.steps.append(StepRecord(len(steps), "shutdown", "shutdown (implicit)",
                                               time.monotonic() - self.t0, 0.0, t.counters(),
                                               details))
            self.step_label = self.watchdog.where = "waiting for producers"
            self.step_started, self.step_expected_s = time.monotonic(), 0.0
            self.waiting_for = waiting.PRODUCERS_TO_RETURN
            self._stop_producers()      # a stalled producer wakes at the end of its stall
            self.watchdog.check()
            self._record_verdicts(sc.checks, "end")
            ok = all(v.ok for v in self.verdicts)
            result.status = N.RUN_PASSED if ok else N.RUN_FAILED
        except W.RunTimedOut as exc:     # the watchdog: stopped safely at the deadline, exit 3
            result.status = N.RUN_TIMED_OUT
            result.error = str(exc)
        except KeyboardInterrupt:
            result.status = N.RUN_INTERRUPTED
            result.error = "interrupted"
        except TargetError as exc:   # 2: the user can fix it (library, module); 3: the run broke
            result.status = N.RUN_ERROR
            result.error = str(exc)
            if exc.exit_code == N.EXIT_USAGE:
                usage_error = exc
        except Exception as exc:     # the run itself could not complete: exit 3
            result.status = N.RUN_ERROR
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            # before the final frame, so that it says how the run ended
            self.status = N.DISPLAY_STATUS.get(result.status, result.status)
            self.waiting_for = ""
            result.threads_left = self._teardown(sampler)
        if usage_error is not None:
            raise usage_error
        self._fill(result, sampler)
        return result

    def _announce_not_observable(self, caps) -> None:
        """Checks this target cannot give evidence for, said before the run (and on the display)."""
        for spec in self.scenario.all_checks:
            why = C.predicted_not_observable(spec.kind, caps.to_dict())
            if why:
                self.say(f"not observable on this target: {spec.label} ({why})")
                if spec.label in self.check_states:
                    self.check_states[spec.label] = CheckState(
                        spec.label, N.NOT_OBSERVABLE, evidence=why,
                        expected_to_fail=spec.expect == "fail")
        if not any(spec.kind == N.LOSSY_SHUTDOWN for spec in self.scenario.all_checks):
            why = C.predicted_not_observable(N.LOSSY_SHUTDOWN, caps.to_dict())
            if why:
                self.say(f"not observable on this target: lossy_shutdown ({why})")
        if caps.note:
            self.say(f"note: {caps.note}")

    def _teardown(self, sampler) -> list:
        """Stop everything we started, whatever happened (Ctrl-C may come again),
        with bounded waits; the names of the threads still alive (normally none)."""
        self.watchdog.cancel()
        left = []
        for _attempt in range(3):
            try:
                left = W.teardown(self.gen, self.target)
                break
            except KeyboardInterrupt:
                continue
        sampler.stop()
        try:
            sampler.sample()          # the final frame
        except Exception:
            pass
        return left

    def _release_everything(self):
        """The watchdog's action at the deadline (its own thread): whatever the
        runner waits on ends by itself."""
        self.gen.stop_flag[K.STOP_FLAG] = 1
        self.target.release_faults()

    def _fill(self, result: RunResult, sampler):
        t = self.target
        counters = t.counters()
        ev = self.collector.collect(quiescent=True, load_s=self.load_s)
        result.duration_s = time.monotonic() - self.t0
        result.load_s = self.load_s
        result.counters = counters
        result.producers = ev.producers
        result.delivery = ev.delivery
        result.capabilities = ev.capabilities
        result.backpressure = ev.backpressure
        result.flushes = ev.flushes
        result.shutdown = ev.shutdown
        result.latency = latency_summaries(t.latency_histograms())
        result.metrics = run_metrics(counters, self.gen.truths(), self.load_s,
                                     t.latency_histograms(), cpu=self._cpu_time())
        result.checks = list(self.verdicts)
        if self.pinning is not None:
            result.environment["pinning"] = self.pinning.report()
        result.series = sampler.series
        result.throughput_samples = list(sampler.throughput_samples)
