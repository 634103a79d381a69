"""The false-sharing lab: what it costs when two threads' counters share a cache line.

In the spirit of JMH's FalseSharing sample. Every thread increments only its
OWN counter; nothing is shared by the program. ``op="store"`` (the default)
is JMH's volatile increment: a load and a store, no locked instruction, as the
single writer of a striped slot does. ``op="add"`` is an atomic ``fetch_add``,
as the bus's shared counters do; its locked instruction costs enough on its
own to hide part of the line's movement (measured here, 2 threads: store 2.0
vs 8.1 G/s at 8 vs 128 B apart, 4x; add 148 vs 435 M/s, 2.9x).
The counters sit ``stride`` bytes apart in one int64 array aligned to 128
bytes (``bus.layout.aligned_zeros``, which also places the bus's counters).
At 8 bytes apart they share a 64-byte cache line, and the hardware moves that
line between cores on every increment; at 128 bytes or more each counter has
its line (and the neighbour the spatial prefetcher pulls with it) to itself.
BUS.md measured, on a 2-core EPYC VM: 8 B apart ~65 M increments/s in total,
64 or 128 B ~640 M/s, one thread ~330 M/s. Another 2-core EPYC VM (Zen 5)
gave ~150 M/s, ~418 M/s and ~210 M/s: the cost of sharing depends on the host.

Strides are interleaved across repeats (8, 64, 128, 256, 8, 64, ...) so a slow
moment of the machine hits every stride alike; each stride's figure is the
median over repeats.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from numba import njit
from rich.table import Table

from ..verdicts import stats
from ..native.atomics import fetch_add, load_relaxed, store_relaxed
from ..bus.layout import CACHE_PAIR_BYTES as ALIGNMENT_BYTES
from ..bus.layout import WORD as WORD_BYTES
from ..bus.layout import aligned_zeros

SCHEMA_VERSION = 1

#: what each thread does to its own counter
OP_STORE, OP_ADD = 0, 1
OPS = {"store": OP_STORE, "add": OP_ADD}
OP_WORDS = {"store": "a plain (volatile) increment", "add": "an atomic fetch_add"}

DEFAULT_STRIDES = (8, 64, 128, 256)
#: wall time aimed at per measurement when iterations are calibrated
TARGET_SECONDS = 0.12
_CALIBRATION_ITERATIONS = 250_000
_MIN_ITERATIONS = 10_000
_MAX_ITERATIONS = 200_000_000
#: a slowdown (narrowest vs widest stride) under this counts as "no effect"
_EFFECT_THRESHOLD = 1.2


class LabUsageError(ValueError):
    """A lab argument the user must fix (exit code 2)."""


@njit(nogil=True, cache=True)
def _increment_own_counter(counters, thread, stride_words, iterations, op=OP_STORE):
    # The index and the operation are run-time values: one compiled kernel serves
    # every stride and both operations.
    index = thread * stride_words
    if op == OP_ADD:
        for _ in range(iterations):
            fetch_add(counters, index, 1)
    else:
        # The single writer's increment (JMH's volatile field): a load and a
        # store the compiler must keep, no locked instruction.
        for _ in range(iterations):
            store_relaxed(counters, index, load_relaxed(counters, index) + 1)


@dataclass(frozen=True)
class StrideResult:
    stride_bytes: int
    iterations: int  # per thread, per measurement
    samples: tuple[float, ...]  # increments/s in total, one per repeat
    summary: stats.Summary
    ratio_to_widest: float  # median rate / median rate of the widest stride

    def to_dict(self) -> dict:
        return {"stride_bytes": self.stride_bytes, "iterations_per_thread": self.iterations,
                "samples": list(self.samples), "summary": self.summary.to_dict(),
                "ratio_to_widest": stats.json_number(self.ratio_to_widest)}


@dataclass(frozen=True)
class LabResult:
    threads: int
    cores: Optional[int]
    repeats: int
    op: str  # "store" or "add"
    strides: tuple[StrideResult, ...]  # in the order asked for
    single_thread_iterations: int
    single_thread_samples: tuple[float, ...]
    single_thread_summary: stats.Summary
    interpretation: str  # one sentence, from the numbers
    warnings: tuple[str, ...]

    @property
    def widest_stride(self) -> int:
        return max(result.stride_bytes for result in self.strides)

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "false_sharing_lab",
            "unit": "increments/s (all threads)",
            "threads": self.threads,
            "cores": self.cores,
            "repeats": self.repeats,
            "op": self.op,
            "alignment_bytes": ALIGNMENT_BYTES,
            "widest_stride_bytes": self.widest_stride,
            "strides": [result.to_dict() for result in self.strides],
            "single_thread": {"iterations": self.single_thread_iterations,
                              "samples": list(self.single_thread_samples),
                              "summary": self.single_thread_summary.to_dict()},
            "interpretation": self.interpretation,
            "warnings": list(self.warnings),
        }


def _measure(counters: np.ndarray, threads: int, stride_words: int, iterations: int,
             op: int = OP_STORE) -> float:
    """Total increments/s of ``threads`` threads, each on its own counter."""
    counters[:] = 0
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            barrier.wait()
            _increment_own_counter(counters, thread, stride_words, iterations, op)
        except threading.BrokenBarrierError:
            pass  # the main thread gave up starting threads; nothing to do
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    workers = []
    try:
        for thread in range(threads):
            worker = threading.Thread(target=work, args=(thread,), name=f"lab-{thread}",
                                      daemon=True)
            worker.start()
            workers.append(worker)
        # The clock starts when the last party reaches the barrier, so thread
        # creation is not timed; joining is (it is when the work is done).
        started = time.perf_counter_ns()
        barrier.wait()
        for worker in workers:
            worker.join()
        elapsed_ns = time.perf_counter_ns() - started
    finally:
        barrier.abort()  # releases any thread still waiting if we failed midway
        for worker in workers:
            worker.join()
    if errors:
        raise errors[0]
    counted = [int(counters[thread * stride_words]) for thread in range(threads)]
    if counted != [iterations] * threads:
        raise RuntimeError(f"lab counters read {counted}, expected {iterations} each: "
                           "the atomic increments lost updates")
    return threads * iterations * 1e9 / max(elapsed_ns, 1)


def _validate(strides: Sequence[int], threads: int, iterations: Optional[int],
              repeats: int) -> tuple[int, ...]:
    strides = tuple(strides)
    if not strides:
        raise LabUsageError("give at least one stride, e.g. 8,64,128,256")
    for stride in strides:
        if not isinstance(stride, (int, np.integer)) or stride < WORD_BYTES or stride % WORD_BYTES:
            raise LabUsageError(f"stride {stride!r} must be a whole number of bytes, a multiple "
                                f"of {WORD_BYTES} and at least {WORD_BYTES} (one int64 counter)")
    if len(set(strides)) != len(strides):
        raise LabUsageError(f"strides {list(strides)} list one more than once")
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise LabUsageError(f"threads must be at least 1, got {threads!r}")
    if iterations is not None and (not isinstance(iterations, (int, np.integer)) or iterations < 1):
        raise LabUsageError(f"iterations must be at least 1, got {iterations!r}")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise LabUsageError(f"repeats must be at least 1, got {repeats!r}")
    return tuple(int(stride) for stride in strides)


def _calibrate(counters: np.ndarray, threads: int, stride_words: int, op: int = OP_STORE) -> int:
    """Iterations per thread that make one measurement last about TARGET_SECONDS.

    Grows a trial run until it lasts a tenth of the target, so the milliseconds
    threads take to wake from the barrier do not skew the estimate."""
    iterations = _CALIBRATION_ITERATIONS
    while True:
        rate = _measure(counters, threads, stride_words, iterations, op)
        elapsed_s = threads * iterations / rate
        if elapsed_s >= TARGET_SECONDS / 10 or iterations >= _MAX_ITERATIONS:
            break
        iterations *= 4
    per_thread = rate / threads * TARGET_SECONDS
    return int(min(max(per_thread, _MIN_ITERATIONS), _MAX_ITERATIONS))


def _interpret(strides: Sequence[StrideResult], threads: int, cores: Optional[int]) -> str:
    narrowest = min(strides, key=lambda result: result.stride_bytes)
    widest = max(strides, key=lambda result: result.stride_bytes)
    if narrowest is widest:
        return (f"Only one stride ({narrowest.stride_bytes} B) was measured: "
                "add a wider one to see what sharing a cache line costs.")
    near, far = f"{narrowest.stride_bytes} B apart", f"{widest.stride_bytes} B apart"
    slowdown = widest.summary.median / narrowest.summary.median
    if threads == 1:
        return (f"With one thread, counters {near} ran at {1 / slowdown:.2f}x the rate of {far}: "
                "there is no other core to share a line with, so no false sharing can show.")
    if slowdown >= _EFFECT_THRESHOLD:
        if narrowest.stride_bytes < 64:
            why = "the threads share a cache line and every increment moves it between cores"
        elif narrowest.stride_bytes < ALIGNMENT_BYTES:
            why = ("their 64-byte lines are neighbours, and the spatial prefetcher moves "
                   "lines in pairs")
        else:
            why = "the lines are apart, so something else couples the threads (a shared core?)"
        return f"Counters {near} ran {slowdown:.1f}x slower than {far}: {why}."
    if cores is not None and threads > cores:
        reason = (f"{threads} threads on {cores} cores take turns, so their counters are "
                  "rarely hot at the same time")
    else:
        reason = "this machine shows no false-sharing cost (are both threads on one core?)"
    if slowdown <= 1 / _EFFECT_THRESHOLD:
        return (f"Counters {near} ran {1 / slowdown:.1f}x faster than {far}, "
                f"which false sharing cannot explain: {reason}.")
    return f"Counters {near} ran within {abs(slowdown - 1):.0%} of {far}: {reason}."


def run_false_sharing(strides: Sequence[int] = DEFAULT_STRIDES, threads: int = 2,
                      iterations: Optional[int] = None, repeats: int = 5,
                      op: str = "store") -> LabResult:
    """Measure total increments/s per stride, interleaved, plus a one-thread reference.

    ``iterations`` is per thread per measurement; None calibrates it per stride
    so each measurement lasts about TARGET_SECONDS (the whole lab: a few seconds).
    """
    strides = _validate(strides, threads, iterations, repeats)
    if op not in OPS:
        raise LabUsageError(f"unknown operation {op!r}: expected one of {', '.join(OPS)}")
    op_name, op = op, OPS[op]
    words = threads * max(strides) // WORD_BYTES
    counters = aligned_zeros(words, ALIGNMENT_BYTES)
    _increment_own_counter(counters, 0, 1, 1, op)  # compile (or load from cache) before timing

    stride_words = {stride: stride // WORD_BYTES for stride in strides}
    if iterations is None:
        per_stride = {stride: _calibrate(counters, threads, stride_words[stride], op)
                      for stride in strides}
        single_iterations = _calibrate(counters, 1, 1, op)
    else:
        per_stride = {stride: iterations for stride in strides}
        single_iterations = iterations

    rates: dict[int, list[float]] = {stride: [] for stride in strides}
    single_rates: list[float] = []
    for _ in range(repeats):
        for stride in strides:
            rates[stride].append(
                _measure(counters, threads, stride_words[stride], per_stride[stride], op))
        single_rates.append(_measure(counters, 1, 1, single_iterations, op))

    summaries = {stride: stats.summarize(rates[stride]) for stride in strides}
    widest_median = summaries[max(strides)].median
    results = tuple(StrideResult(stride, per_stride[stride], tuple(rates[stride]),
                                 summaries[stride], summaries[stride].median / widest_median)
                    for stride in strides)
    cores = os.cpu_count()
    warnings = stats.noise_warnings({f"{stride} B apart": summaries[stride] for stride in strides},
                                    busy_threads=threads, cores=cores)
    governor_warning = stats.cpu_governor_warning()
    if governor_warning:
        warnings.append(governor_warning)
    return LabResult(threads=threads, cores=cores, repeats=repeats, op=op_name, strides=results,
                     single_thread_iterations=single_iterations,
                     single_thread_samples=tuple(single_rates),
                     single_thread_summary=stats.summarize(single_rates),
                     interpretation=_interpret(results, threads, cores),
                     warnings=tuple(warnings))


def render_lab_table(result: LabResult) -> Table:
    """Median increments/s per stride, the ratio to the widest, and the reference."""
    table = Table(title=f"False sharing: {result.threads} thread(s), each doing "
                        f"{OP_WORDS[result.op]} on its own counter, median of {result.repeats}",
                  caption="\n".join((result.interpretation, *result.warnings)),
                  caption_justify="left")
    table.add_column("counters apart", justify="right")
    table.add_column("increments/s (total)", justify="right")
    table.add_column("per thread", justify="right")
    table.add_column(f"vs {result.widest_stride} B", justify="right")
    table.add_column("CV", justify="right")
    for stride in result.strides:
        summary = stride.summary
        table.add_row(f"{stride.stride_bytes} B", stats.format_si(summary.median),
                      stats.format_si(summary.median / result.threads),
                      f"{stride.ratio_to_widest:.2f}x", stats.format_cv(summary))
    reference = result.single_thread_summary
    table.add_section()
    table.add_row("1 thread (reference)", stats.format_si(reference.median),
                  stats.format_si(reference.median), "", stats.format_cv(reference))
    return table
