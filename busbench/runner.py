"""Runner: drives the reference bus through a scenario's steps -> RunResult.

One way through (STYLE.md): a frozen Scenario goes in, a RunResult comes out.
A sampler thread reads the counters at a fixed interval for the time series
and hands Snapshot values to the progress display; checks are evaluated from
recorded evidence. Every thread started here is joined on every exit path,
Ctrl-C included.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime, timezone

from . import checks as C
from . import threadcpu
from .bus import histogram
from .bus.config import BusConfig
from .bus.core import ReferenceBus
from .bus.layout import CounterLayout
from .load.generator import LoadGenerator, LoadSpec
from .result import ERROR, FAILED, INTERRUPTED, PASSED, RunResult, StepRecord, environment
from .snapshot import CHECK_FAILED, CHECK_PASSED, CHECK_PENDING, CheckState, ShardFill, Snapshot
from .units import format_count, format_duration

SAMPLE_INTERVAL_S = 0.1
HISTORY_S = 60.0
UNDER_LOAD_LEAD_S = 0.05      # load runs this long before a flush `under_load` is called


def bus_config(scenario) -> BusConfig:
    b, load = scenario.bus, scenario.load
    adapter = b.adapter
    kind = adapter.tag
    counters = b.counters
    layout = (CounterLayout.parse(counters.stride) if counters.layout == "stride"
              else CounterLayout.parse(counters.layout))
    return BusConfig(
        shards=b.shards, capacity=b.capacity, backpressure=b.backpressure,
        block_timeout_ns=b.block_timeout, max_events=b.batch.max_events,
        max_delay_ns=b.batch.max_delay, workers=b.workers, counters=layout, adapter=kind,
        slow_per_batch_ns=getattr(adapter, "per_batch", 0),
        slow_per_event_ns=getattr(adapter, "per_event", 0),
        flaky_failure_rate=getattr(adapter, "failure_rate", 0.0),
        flaky_retries=getattr(adapter, "retries", 0),
        flaky_backoff_ns=getattr(adapter, "backoff", 0),
        stall_at_ns=getattr(adapter, "at", None) if kind == "stall" else None,
        stall_for_ns=getattr(adapter, "duration", 0) if kind == "stall" else 0,
        # The verify bitmaps (two, calloc'd: untouched pages cost nothing) are
        # capped at 1 GiB each in all, whatever the number of producers.
        verify_events_per_producer=min(1 << 30, (1 << 33) // load.producers),
        mutations=tuple(b.mutations), latency=b.latency,
        intended_times=bool(load.rate.total or load.rate.per_producer), producers=load.producers,
        seed=scenario.seed)


def load_spec(scenario) -> LoadSpec:
    load = scenario.load
    keys = load.keys
    rate = load.rate
    per_producer = None
    if rate.per_producer:
        per_producer = rate.per_producer
    elif rate.total:
        per_producer = rate.total / load.producers
    return LoadSpec(producers=load.producers, rate_per_producer=per_producer, batch=load.batch,
                    keys=keys.tag, hot_shard=getattr(keys, "shard", 0),
                    hot_share=getattr(keys, "share", 0.9),
                    zipf_exponent=getattr(keys, "exponent", 1.1),
                    late_after_ns=load.late_after, retry_failed=load.on_fail == "retry",
                    seed=scenario.seed)


_warm = False


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel once per process,
    so no run's measured time is spent compiling. Returns seconds spent."""
    global _warm
    if _warm:
        return 0.0
    t0 = time.monotonic()
    bus = ReferenceBus(BusConfig(shards=2, capacity=64, producers=1, adapter="verify")).start()
    gen = LoadGenerator(bus, LoadSpec(producers=1, batch=8))
    try:
        gen.start(events=256)
        gen.wait()
        bus.flush(5.0)
    finally:
        gen.stop()
        bus.close(1.0)
    _warm = True
    return time.monotonic() - t0


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


class _Sampler(threading.Thread):
    """Reads the counters every interval: the time series, and the snapshots
    the progress display renders. Never writes to the bus."""

    def __init__(self, runner, interval_s):
        super().__init__(name="busbench-sampler", daemon=True)
        self.runner = runner
        self.interval_s = interval_s
        self.done = threading.Event()
        self.history = deque(maxlen=max(1, int(HISTORY_S / interval_s)))
        self._last = None

    def run(self):
        while not self.done.wait(self.interval_s):
            self.sample()

    def sample(self):
        r = self.runner
        t = time.monotonic() - r.t0
        counters = r.bus.stats().as_dict()
        r.series.append({"t": round(t, 4), **{k: v for k, v in counters.items()}})
        rates = {}
        if self._last is not None:
            dt = t - self._last[0]
            for k in ("events_ingested", "events_dropped", "batches_dispatched", "events_dispatched"):
                rates[k] = (counters[k] - self._last[1][k]) / dt if dt > 0 else 0.0
            self.history.append(rates["events_dispatched"])
            # Intervals spent wholly under load feed the regression gate's samples.
            if r.loading and self._last[2]:
                r.throughput_samples.append(rates["events_dispatched"])
        self._last = (t, counters, r.loading)
        if r.progress is not None:
            r.progress.update(r.snapshot(counters, rates, tuple(self.history), t))


class Runner:
    def __init__(self, scenario, source: str = "<scenario>", progress=None,
                 sample_interval_s: float = SAMPLE_INTERVAL_S, pin_threads: bool = False):
        self.scenario = scenario
        self.source = source
        self.progress = progress
        self.sample_interval_s = sample_interval_s
        self.config = bus_config(scenario)
        self.spec = load_spec(scenario)
        self.series: list = []
        self.throughput_samples: list = []
        self.loading = False
        self.step_index = 0
        self.step_label = "starting"
        self.step_progress = None
        self.status = "running"
        self.check_states: dict = {}
        self.worker_clocks = threadcpu.WorkerClocks()     # cpu_per_event (threadcpu.py)
        self.pinning = threadcpu.Pinning(self.spec.producers) if pin_threads else None
        for spec in scenario.checks:
            self.check_states[spec.label] = CheckState(spec.label, CHECK_PENDING,
                                                       expected_to_fail=spec.expect == "fail")

    # ------------------------------------------------------------------ snapshot
    def snapshot(self, counters, rates, history, elapsed) -> Snapshot:
        shards = tuple(ShardFill(f, self.config.capacity) for f in self.bus.shard_fill())
        latency = None
        hists = self.bus.latency_histograms()
        if hists is not None and hists[0][histogram.COUNT] > 0:
            latency = histogram.summary(hists[0])
        return Snapshot(
            scenario=self.scenario.name, target=self.scenario.target,
            layout=self.config.counters.label, step_index=self.step_index,
            step_count=len(self.scenario.steps), step_label=self.step_label,
            step_progress=self.step_progress() if callable(self.step_progress) else None,
            elapsed_s=elapsed, counters={k: counters[k] for k in (
                "events_ingested", "events_dropped", "batches_dispatched", "events_dispatched")},
            rates=rates or {k: 0.0 for k in ("events_ingested", "events_dropped",
                                            "batches_dispatched", "events_dispatched")},
            shutdown_was_lossy=bool(counters["shutdown_was_lossy"]), shards=shards,
            throughput_history=history, checks=tuple(self.check_states.values()),
            latency_ns=latency, status=self.status)

    # ------------------------------------------------------------------ evidence
    def evidence(self, quiescent: bool) -> C.Evidence:
        counters = self.bus.stats().as_dict()
        gt = self.bus.ground_truth([t.next_seq for t in self.gen.truths()])
        bus_truth = {"verify": gt.verify, "received": gt.received.tolist(),
                     "evicted": gt.evicted.tolist(), "rejected": gt.rejected.tolist(),
                     "stranded": gt.stranded.tolist(), "duplicates": gt.duplicates,
                     "order_violations": gt.order_violations,
                     "received_and_dropped": gt.received_and_dropped,
                     "beyond_bitmap": gt.beyond_bitmap}
        report = self.bus.shutdown_report
        return C.Evidence(counters=counters, producers=[t.as_dict() for t in self.gen.truths()],
                          bus_truth=bus_truth, flushes=list(self.flushes),
                          shutdown=None if report is None else dict(report.__dict__),
                          metrics=self.metrics(counters), quiescent=quiescent)

    def metrics(self, counters) -> dict:
        load_s = self.load_s
        m = {
            "events_ingested": counters["events_ingested"],
            "events_dropped": counters["events_dropped"],
            "events_dispatched": counters["events_dispatched"],
            "batches_dispatched": counters["batches_dispatched"],
            "dropped_ratio": (counters["events_dropped"] / counters["events_ingested"]
                              if counters["events_ingested"] else 0.0),
            "mean_batch_size": (counters["events_dispatched"] / counters["batches_dispatched"]
                                if counters["batches_dispatched"] else 0.0),
            "late_sends": sum(t.late for t in self.gen.truths()),
            "duration": load_s,
        }
        m.update(threadcpu.cpu_metrics(self.gen.cpu_ns, self.worker_clocks.total_ns,
                                       counters["events_dispatched"]))
        if load_s > 0:
            m["throughput"] = counters["events_dispatched"] / load_s
            m["ingest_rate"] = counters["events_ingested"] / load_s
        for key, summary in (self.latency_summaries() or {}).items():
            prefix = "latency" if key == "corrected" else "latency_uncorrected"
            if summary["count"]:
                for name in ("p50", "p90", "p99", "p999", "max", "mean"):
                    m[f"{prefix}.{name}"] = summary[name]
        return m

    def latency_summaries(self):
        hists = self.bus.latency_histograms()
        if hists is None:
            return None
        return {"corrected": histogram.summary(hists[0]),
                "uncorrected": histogram.summary(hists[1])}

    def _record_verdicts(self, specs, at):
        ev = self.evidence(quiescent=not self.gen.running)
        for spec in specs:
            v = C.evaluate(spec, ev, at)
            self.verdicts.append(v)
            state = CHECK_PASSED if v.outcome == C.PASSED else CHECK_FAILED
            self.check_states[f"{spec.label} ({at})" if at != "end" else spec.label] = CheckState(
                spec.label if at == "end" else f"{spec.label} ({at})", state,
                evidence=v.evidence, expected_to_fail=spec.expect == "fail")

    # ------------------------------------------------------------------ steps
    def _run_load(self, duration_ns=None, events=None):
        if self.config.stall_at_ns is not None and not self._adapter_stall_armed:
            self.bus.schedule_adapter_stall(self.config.stall_at_ns, self.config.stall_for_ns)
            self._adapter_stall_armed = True
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

    def _step(self, i, step) -> dict:
        kind = step.tag
        if kind == "run":
            self._run_load(duration_ns=step.duration, events=step.events)
            return {}
        if kind == "flush":
            timeout_s = step.timeout / 1e9
            if step.under_load:
                t0 = time.monotonic()
                self.gen.start()
                try:
                    time.sleep(UNDER_LOAD_LEAD_S)
                    result = self.bus.flush(timeout_s)
                finally:
                    self.gen.stop(wait_for_stalled=False)
                    self.load_s += time.monotonic() - t0
            else:
                result = self.bus.flush(timeout_s)
            record = {"step": i, "reached": result.reached, "timed_out": result.timed_out,
                      "waited_s": result.waited_s, "timeout_s": timeout_s, "method": result.method,
                      "under_load": step.under_load, "in_flight_at_call": result.in_flight_at_call,
                      "shards": [{"shard": s.shard, "target": s.target, "head": s.head,
                                  "settled": s.settled, "reached": s.reached,
                                  "unsettled": s.unsettled} for s in result.shards]}
            self.flushes.append(record)
            return {"flush": record}
        if kind == "check":
            self._record_verdicts(step.checks, f"step {i}")
            return {"checks": [v.to_dict() for v in self.verdicts if v.at == f"step {i}"]}
        if kind == "sleep":
            time.sleep(step.duration / 1e9)
            return {}
        if kind == "fault":
            fault = step.fault
            if fault.tag == "stall_producer":
                self.bus.arm_producer_stall(fault.producer, fault.after, fault.duration)
                return {"fault": "stall_producer", "producer": fault.producer,
                        "after_s": fault.after / 1e9, "for_s": fault.duration / 1e9}
            self.bus.schedule_adapter_stall(fault.after, fault.duration)
            return {"fault": "stall_adapter", "after_s": fault.after / 1e9,
                    "for_s": fault.duration / 1e9}
        if kind == "shutdown":
            return {"shutdown": self._shutdown(step.grace / 1e9)}
        raise AssertionError(f"unknown step {kind}")

    def _shutdown(self, grace_s):
        report = self.bus.shutdown(grace_s)
        return dict(report.__dict__)

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        sc = self.scenario
        self.t0 = time.monotonic()
        self.load_s = 0.0
        self.flushes = []
        self.verdicts = []
        self._adapter_stall_armed = False
        self.bus = ReferenceBus(self.config)
        self.gen = LoadGenerator(self.bus, self.spec)
        result = RunResult(scenario_name=sc.name, scenario=sc.to_dict(), source=self.source,
                           target=sc.target, layout=self.config.counters.label,
                           environment=environment(sc.to_dict()),
                           started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           series=self.series, series_interval_s=self.sample_interval_s)
        sampler = _Sampler(self, self.sample_interval_s)
        steps = list(sc.steps)
        try:
            self.step_label = "compiling kernels"
            warm_up()
            self.t0 = time.monotonic()
            self.bus.start()
            if self.pinning is not None:
                self.gen.thread_setup = self.pinning.pin_current_producer
                self.pinning.pin_workers(threadcpu.bus_worker_threads(self.bus))
            sampler.start()
            for i, step in enumerate(steps):
                self.step_index, self.step_label = i, step_label(step)
                started = time.monotonic()
                self.worker_clocks.read(threadcpu.bus_worker_threads(self.bus))
                details = self._step(i, step)
                self.worker_clocks.read(threadcpu.bus_worker_threads(self.bus))
                result.steps.append(StepRecord(i, step.tag, self.step_label, started - self.t0,
                                               time.monotonic() - started,
                                               self.bus.stats().as_dict(), details))
            if not self.bus.shut_down:
                self.step_label = "shutdown (implicit)"
                details = {"shutdown": self._shutdown(5.0)}
                result.steps.append(StepRecord(len(steps), "shutdown", "shutdown (implicit)",
                                               time.monotonic() - self.t0, 0.0,
                                               self.bus.stats().as_dict(), details))
            self.step_label = "waiting for producers"
            self.gen.stop()      # a stalled producer wakes at the end of its stall
            self._record_verdicts(sc.checks, "end")
            ok = all(v.ok for v in self.verdicts)
            result.status = PASSED if ok else FAILED
        except KeyboardInterrupt:
            result.status = INTERRUPTED
            result.error = "interrupted"
        except Exception as exc:     # the run itself could not complete: exit 3
            result.status = ERROR
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._teardown(sampler)
            self.status = {"passed": "finished", "failed": "failed"}.get(result.status, result.status)
        self._fill(result)
        return result

    def _teardown(self, sampler):
        """Stop everything we started, whatever happened (Ctrl-C may come again)."""
        for _attempt in range(3):
            try:
                self.gen.stop_flag[0] = 1
                self.bus.release_stalls()
                self.gen.stop()
                self.bus.close(0.0)
                break
            except KeyboardInterrupt:
                continue
        sampler.done.set()
        if sampler.is_alive():
            sampler.join()
        try:
            sampler.sample()          # the final frame
        except Exception:
            pass

    def _fill(self, result: RunResult):
        counters = self.bus.stats().as_dict()
        result.duration_s = time.monotonic() - self.t0
        result.load_s = self.load_s
        result.counters = counters
        result.producers = [t.as_dict() for t in self.gen.truths()]
        ev = self.evidence(quiescent=True)
        result.bus_truth = ev.bus_truth
        result.flushes = self.flushes
        report = self.bus.shutdown_report
        result.shutdown = None if report is None else dict(report.__dict__)
        result.latency = self.latency_summaries()
        result.metrics = self.metrics(counters)
        result.checks = list(self.verdicts)
        if self.pinning is not None:
            result.environment["pinning"] = self.pinning.report()
        result.throughput_samples = list(self.throughput_samples)
