"""cpu_per_event in real runs: the producers' clocks come from the load generator's
threads, the workers' from the target (``Target.worker_threads``). A target that
cannot name its workers leaves the metric "not measured" (absent, a threshold
on it not evaluable), never 0; --pin goes through the same threads."""
from __future__ import annotations

import threading

from busbench.common import names as N
from busbench.run.runner import Runner
from busbench.scenario.schema import Scenario
from busbench.targets.builtin import BuiltinTarget
from busbench.targets.fake import FakeTarget

CPU_PARTS = ("cpu_per_event", "cpu_producers_per_event", "cpu_workers_per_event")


def scenario(checks=(), events=20_000, target_kind=None):
    return Scenario.model_validate({
        "name": "cpu", "description": "cpu metrics",
        "bus": {"shards": 2, "adapter": {"kind": "verify"}},
        "load": {"producers": 2, "batch": 16},
        "steps": [{"run": {"events": events}}, "flush", {"shutdown": {"grace": "1s"}}],
        "checks": list(checks)})


def test_builtin_run_measures_producer_and_worker_cpu_per_event():
    sc = scenario()
    result = Runner(sc, "cpu.yaml", target=BuiltinTarget.from_scenario(sc)).run()
    assert result.status == N.RUN_PASSED, result.error
    m = result.metrics
    assert m["cpu_producers_per_event"] > 0 and m["cpu_workers_per_event"] > 0
    assert abs(m["cpu_per_event"] - m["cpu_producers_per_event"] - m["cpu_workers_per_event"]) \
        < 1e-6 * m["cpu_per_event"]
    assert result.environment["scenario_hash"]
    assert "pinning" not in result.environment


def test_a_target_that_cannot_name_its_workers_leaves_cpu_per_event_not_measured():
    result = Runner(scenario(checks=[{"threshold": "cpu_per_event < 1s"}], events=400), "cpu.yaml",
                    target=FakeTarget(shards=2, producers=2)).run()
    assert FakeTarget(shards=2, producers=2).worker_threads() is None
    assert "cpu_per_event" not in result.metrics and "cpu_workers_per_event" not in result.metrics
    assert result.metrics["cpu_producers_per_event"] > 0      # busbench's own threads
    (verdict,) = [v for v in result.checks if v.kind == "threshold"]
    assert verdict.outcome == N.NOT_EVALUABLE                  # never a pass on a 0
    assert result.status == N.RUN_FAILED


class _NamedWorkerFake(FakeTarget):
    """A fake that names one worker thread, which burns CPU while the bus runs."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="fake-worker", daemon=True)

    def _spin(self):
        x = 0
        while not self._stop.is_set():
            x += 1

    def start(self):
        super().start()
        self._thread.start()

    def worker_threads(self):
        return [self._thread]

    def close(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        super().close()


def test_worker_cpu_comes_from_the_threads_the_target_names():
    target = _NamedWorkerFake(shards=2, producers=2)
    result = Runner(scenario(events=400), "cpu.yaml", target=target, pin_threads=True).run()
    assert not target._thread.is_alive()
    m = result.metrics
    assert m["cpu_workers_per_event"] > 0, m
    assert m["cpu_per_event"] > m["cpu_producers_per_event"]
    pinning = result.environment["pinning"]
    assert pinning["asked"] is True
    # pinned where the machine allows it, or the refusal is reported: never silent
    assert "worker-0" in pinning["applied"] or pinning["errors"]


def test_pinning_a_target_that_cannot_name_its_workers_says_so():
    result = Runner(scenario(events=400), "cpu.yaml", target=FakeTarget(shards=2, producers=2),
                    pin_threads=True).run()
    pinning = result.environment["pinning"]
    assert pinning["effective"] is False
    assert any("cannot name its worker threads" in e for e in pinning["errors"])
