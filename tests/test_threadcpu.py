"""Thread CPU clocks and pinning: what cpu_per_event is built from."""
import os
import threading

import pytest

from busbench.run import threadcpu
from busbench.evidence.metrics import CPU_PER_EVENT, CpuTime, cpu_metrics


def test_a_busy_thread_accumulates_cpu_time_read_from_outside():
    stop = threading.Event()
    progress = []

    def spin():
        x = 0
        while not stop.is_set():
            x += 1
            if x % 100_000 == 0:
                progress.append(x)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        clocks = threadcpu.WorkerClocks()
        for _ in range(200):                   # bounded: at most ~2 s of waiting
            clocks.read([thread])
            if clocks.total_ns > 0 and progress:
                break
            stop.wait(0.01)
        assert clocks.total_ns > 0
    finally:
        stop.set()
        thread.join(5)
    last = clocks.total_ns
    clocks.read([thread])                      # a finished thread keeps its last reading
    assert clocks.total_ns == last
    assert threadcpu.thread_cpu_ns(thread) is None


def test_cpu_metrics_divide_producer_and_worker_time_by_events():
    m = cpu_metrics(CpuTime((300, 100), 600), 10)
    assert m[CPU_PER_EVENT] == 100.0
    assert m["cpu_producers_per_event"] == 40.0 and m["cpu_workers_per_event"] == 60.0
    assert cpu_metrics(CpuTime((0,), 0), 10) == {} and cpu_metrics(CpuTime((5,), 5), 0) == {}


def test_workers_the_target_cannot_name_leave_the_metric_not_measured_never_zero():
    m = cpu_metrics(CpuTime((300, 100), None), 10)
    assert CPU_PER_EVENT not in m and "cpu_workers_per_event" not in m
    assert m["cpu_producers_per_event"] == 40.0


def test_pinning_assigns_producers_then_workers_round_robin():
    pinning = threadcpu.Pinning(producers=3)
    pinning.cpus = [0, 1]
    assert [pinning.cpu_for("producer", p) for p in range(3)] == [0, 1, 0]
    assert pinning.cpu_for("worker", 0) == 1


def test_pinning_refused_by_the_machine_is_reported_and_the_run_goes_on(monkeypatch):
    def refuse(pid, cpus):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "sched_setaffinity", refuse, raising=False)
    pinning = threadcpu.Pinning(producers=1)
    pinning.cpus = [0]
    pinning.pin_current_producer(0)
    report = pinning.report()
    assert report["effective"] is False and "not permitted" in report["errors"][0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity here")
def test_a_pinned_producer_thread_runs_only_on_its_cpu():
    pinning = threadcpu.Pinning(producers=1)
    seen = []

    def body():
        pinning.pin_current_producer(0)
        seen.append(os.sched_getaffinity(0))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(5)
    if pinning.errors:
        pytest.skip(f"this machine refuses pinning: {pinning.errors}")
    assert seen == [{pinning.cpus[0]}]
    assert os.sched_getaffinity(0) == set(pinning.cpus)      # the main thread is left alone
