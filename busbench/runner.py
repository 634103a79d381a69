"""Runner: steps a target through a scenario -> RunResult.

One way through (STYLE.md): a frozen Scenario goes in, a RunResult comes out.
The runner knows no target's internals: it drives a ``Target`` (targets/) and
a ``LoadGenerator`` (load/) built on the target's ``produce`` entry; evidence
comes from ``evidence.py``, metrics from ``metrics.py``, the display's values
from ``sampler.py``. Every thread started here is joined on every exit path,
Ctrl-C included.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from . import checks as C
from . import names as N
from .bus import histogram
from .evidence import EvidenceCollector
from .load.generator import LoadGenerator, LoadSpec
from .metrics import latency_summaries, run_metrics
from .result import RunResult, StepRecord, environment
from .sampler import SAMPLE_INTERVAL_S, Sampler
from .snapshot import CheckState, ShardFill, Snapshot
from .targets import TargetError, open_target
from .units import format_count, format_duration

UNDER_LOAD_LEAD_S = 0.05      # load runs this long before a flush `under_load` is called
IMPLICIT_GRACE_S = 5.0


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


def warm_up() -> float:
    """Compile the builtin target's kernels (kept for callers of the old name)."""
    from .targets.builtin import warm_up as builtin_warm_up
    return builtin_warm_up()


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
                 sample_interval_s: float = SAMPLE_INTERVAL_S, target=None, say=None):
        self.scenario = scenario
        self.say = say or (lambda message: None)   # progress lines before the run (stderr)
        self.source = source
        self.progress = progress
        self.sample_interval_s = sample_interval_s
        self.spec = load_spec(scenario)
        self._target = target          # tests may hand in a target (a fake); else built in run()
        self.loading = False
        self.step_index = 0
        self.step_label = "starting"
        self.step_progress = None
        self.status = "running"
        self.check_states: dict = {}
        for spec in scenario.checks:
            self.check_states[spec.label] = CheckState(spec.label, N.CHECK_PENDING,
                                                       expected_to_fail=spec.expect == "fail")

    # ------------------------------------------------------------------ display
    def _on_sample(self, sample) -> None:
        if self.progress is not None:
            self.progress.update(self.snapshot(sample))

    def snapshot(self, sample) -> Snapshot:
        t = self.target
        fill = t.shard_fill()
        shards = tuple(ShardFill(f, t.capacity) for f in fill) if fill is not None else ()
        latency = None
        hists = t.latency_histograms()
        if hists is not None and hists[0][histogram.COUNT] > 0:
            latency = histogram.summary(hists[0])
        counters = sample.counters
        return Snapshot(
            scenario=self.scenario.name, target=getattr(t, "label", t.name), layout=t.layout,
            step_index=self.step_index, step_count=len(self.scenario.steps),
            step_label=self.step_label,
            step_progress=self.step_progress() if callable(self.step_progress) else None,
            elapsed_s=sample.t, counters={k: counters[k] for k in N.COUNTER_NAMES if k in counters},
            rates=sample.rates or {k: 0.0 for k in N.COUNTER_NAMES if k in counters},
            shutdown_was_lossy=bool(counters.get(N.SHUTDOWN_WAS_LOSSY, False)), shards=shards,
            throughput_history=sample.history, checks=tuple(self.check_states.values()),
            latency_ns=latency, status=self.status)

    # ------------------------------------------------------------------ verdicts
    def _record_verdicts(self, specs, at) -> C.Evidence:
        ev = self.collector.collect(quiescent=not self.gen.running, load_s=self.load_s)
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
                pass
        finally:
            self.loading = False
            self.gen.stop(wait_for_stalled=False)
            self.load_s += time.monotonic() - t0
            self.step_progress = None

    def _flush(self, i, step) -> dict:
        timeout_s = step.timeout / 1e9

        def call():
            return self.target.flush(timeout_s)
        if not step.under_load:
            return self.collector.flush(i, timeout_s, False, call)
        t0 = time.monotonic()
        self.gen.start()
        try:
            time.sleep(UNDER_LOAD_LEAD_S)
            return self.collector.flush(i, timeout_s, True, call)
        finally:
            self.gen.stop(wait_for_stalled=False)
            self.load_s += time.monotonic() - t0

    def _step(self, i, step) -> dict:
        kind = step.tag
        if kind == "run":
            self._run_load(duration_ns=step.duration, events=step.events)
            return {}
        if kind == "flush":
            return {"flush": self._flush(i, step)}
        if kind == "check":
            ev = self._record_verdicts(step.checks, f"step {i}")
            return {"checks": [v.to_dict() for v in self.verdicts if v.at == f"step {i}"],
                    "evidence": ev.to_dict()}
        if kind == "sleep":
            time.sleep(step.duration / 1e9)
            return {}
        if kind == "fault":
            return self.target.arm_fault(step.fault)
        if kind == "shutdown":
            return {"shutdown": self.target.shutdown(step.grace / 1e9).to_dict()}
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
                             target=sc.target_name, layout="-", environment=environment(),
                             started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             status=N.RUN_ERROR, error=f"target {sc.target_name}: {exc}")
        t = self.target
        self.gen = LoadGenerator(self.spec, t.shards, t.produce, t.producer_stalling)
        self.collector = EvidenceCollector(t, self.gen, backpressure=sc.bus.backpressure)
        result = RunResult(scenario_name=sc.name, scenario=sc.to_dict(), source=self.source,
                           target=t.name, layout=t.layout, environment=environment(),
                           started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           series_interval_s=self.sample_interval_s)
        sampler = Sampler(t.counters, lambda: self.loading, self.t0, self._on_sample,
                          self.sample_interval_s)
        steps = list(sc.steps)
        usage_error = None
        try:
            for line in t.describe_native():     # what native code or module is loaded, first
                self.say(line)
            self.step_label = "compiling kernels"
            t.prepare(self.say)
            self._announce_not_observable(t.capabilities)
            self.t0 = sampler.t0 = time.monotonic()
            t.start()
            sampler.start()
            for i, step in enumerate(steps):
                self.step_index, self.step_label = i, step_label(step)
                started = time.monotonic()
                details = self._step(i, step)
                result.steps.append(StepRecord(i, step.tag, self.step_label, started - self.t0,
                                               time.monotonic() - started, t.counters(), details))
            if not t.shut_down:
                self.step_label = "shutdown (implicit)"
                details = {"shutdown": t.shutdown(IMPLICIT_GRACE_S).to_dict()}
                result.steps.append(StepRecord(len(steps), "shutdown", "shutdown (implicit)",
                                               time.monotonic() - self.t0, 0.0, t.counters(),
                                               details))
            self.step_label = "waiting for producers"
            self.gen.stop()      # a stalled producer wakes at the end of its stall
            self._record_verdicts(sc.checks, "end")
            ok = all(v.ok for v in self.verdicts)
            result.status = N.RUN_PASSED if ok else N.RUN_FAILED
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
            self._teardown(sampler)
            self.status = N.DISPLAY_STATUS.get(result.status, result.status)
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

    def _teardown(self, sampler):
        """Stop everything we started, whatever happened (Ctrl-C may come again)."""
        for _attempt in range(3):
            try:
                self.gen.stop_flag[0] = 1
                self.target.release_faults()
                self.gen.stop()
                self.target.close()
                break
            except KeyboardInterrupt:
                continue
        sampler.stop()
        try:
            sampler.sample()          # the final frame
        except Exception:
            pass

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
                                     t.latency_histograms())
        result.checks = list(self.verdicts)
        result.series = sampler.series
        result.throughput_samples = list(sampler.throughput_samples)
