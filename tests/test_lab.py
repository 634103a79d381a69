"""The false-sharing lab: sane numbers only. Never assert a speed or a speed
ratio here: machines are noisy, and the lab's own table is for reading."""
import json
import math

import pytest
from rich.console import Console

from busbench.verdicts import stats
from busbench.bus.layout import aligned_zeros
from busbench.run.lab import (LabUsageError, StrideResult, _interpret, render_lab_table,
                          run_false_sharing)


def test_the_lab_array_starts_on_a_128_byte_boundary_for_any_size():
    for words in (1, 7, 64, 1000):
        array = aligned_zeros(words, 128)
        assert array.ctypes.data % 128 == 0
        assert array.size == words and array.dtype.name == "int64" and not array.any()


@pytest.fixture(scope="module")
def tiny_lab():
    return run_false_sharing(strides=(8, 64, 128), threads=2, iterations=2_000, repeats=2)


def test_lab_gives_a_positive_finite_rate_and_a_ratio_for_every_stride(tiny_lab):
    assert [s.stride_bytes for s in tiny_lab.strides] == [8, 64, 128]
    for stride in tiny_lab.strides:
        assert len(stride.samples) == 2
        assert all(math.isfinite(rate) and rate > 0 for rate in stride.samples)
        assert math.isfinite(stride.ratio_to_widest) and stride.ratio_to_widest > 0
    assert tiny_lab.strides[-1].ratio_to_widest == 1.0
    reference = tiny_lab.single_thread_summary
    assert reference.n == 2 and math.isfinite(reference.median) and reference.median > 0


def test_lab_result_serialises_and_renders(tiny_lab):
    data = json.loads(json.dumps(tiny_lab.to_dict(), allow_nan=False))
    assert data["kind"] == "false_sharing_lab" and data["threads"] == 2
    assert [s["stride_bytes"] for s in data["strides"]] == [8, 64, 128]
    assert {"samples", "summary", "ratio_to_widest", "iterations_per_thread"} <= set(data["strides"][0])
    assert data["interpretation"].endswith(".")
    console = Console(record=True, width=120)
    console.print(render_lab_table(tiny_lab))
    text = console.export_text()
    assert "8 B" in text and "128 B" in text and "1 thread (reference)" in text


def test_lab_with_one_thread_runs():
    result = run_false_sharing(strides=(8, 256), threads=1, iterations=1_000, repeats=1)
    assert all(s.summary.median > 0 for s in result.strides)
    assert "one thread" in result.interpretation


@pytest.mark.parametrize("kwargs, complaint", [
    ({"strides": (4, 64)}, "multiple of 8"),
    ({"strides": (12,)}, "multiple of 8"),
    ({"strides": (0,)}, "at least 8"),
    ({"strides": ()}, "at least one stride"),
    ({"strides": (8, 8)}, "more than once"),
    ({"threads": 0}, "threads must be at least 1"),
    ({"repeats": 0}, "repeats must be at least 1"),
    ({"iterations": 0}, "iterations must be at least 1"),
])
def test_lab_rejects_bad_arguments_clearly(kwargs, complaint):
    with pytest.raises(LabUsageError, match=complaint):
        run_false_sharing(**kwargs)


def stride(stride_bytes, median, widest_median):
    return StrideResult(stride_bytes, 1, (median,), stats.summarize([median]),
                        median / widest_median)


def test_interpretation_is_read_from_the_numbers():
    slow = _interpret([stride(8, 65e6, 640e6), stride(128, 640e6, 640e6)], threads=2, cores=2)
    assert slow.startswith("Counters 8 B apart ran 9.8x slower than 128 B apart")
    assert "share a cache line" in slow
    even = _interpret([stride(8, 600e6, 640e6), stride(128, 640e6, 640e6)], threads=2, cores=2)
    assert "within 7% of 128 B apart" in even
    crowded = _interpret([stride(8, 600e6, 640e6), stride(128, 640e6, 640e6)], threads=4, cores=2)
    assert "4 threads on 2 cores" in crowded


def test_a_failing_worker_is_joined_and_its_error_raised(monkeypatch):
    import threading

    from busbench.run import lab

    def broken_kernel(counters, thread, stride_words, iterations, op):
        raise RuntimeError(f"kernel failed in thread {thread}")

    before = threading.active_count()
    monkeypatch.setattr(lab, "_increment_own_counter", broken_kernel)
    with pytest.raises(RuntimeError, match="kernel failed"):
        lab._measure(aligned_zeros(64, 128), threads=2, stride_words=8, iterations=10)
    assert threading.active_count() == before


@pytest.mark.parametrize("op", ["store", "add"])
def test_each_operation_counts_every_increment_and_reports_sane_rates(op):
    from busbench.run import lab
    result = lab.run_false_sharing(strides=(8, 128), threads=2, iterations=20_000, repeats=1, op=op)
    assert result.op == op and result.to_dict()["op"] == op
    for stride in result.strides:
        assert stride.summary.median > 0 and math.isfinite(stride.summary.median)


def test_an_unknown_operation_is_a_usage_error():
    from busbench.run import lab
    with pytest.raises(lab.LabUsageError, match="unknown operation"):
        lab.run_false_sharing(strides=(8, 128), iterations=10, repeats=1, op="xor")
