"""Where the EventBusStats counters live in memory: padded, packed, stride, striped.

The counters are one int64 array; a kernel finds counter ``c`` of writer ``w``
at ``c * counter_stride + w * writer_stride`` (in int64 words), so one compiled
kernel serves every layout: the layout is data, not code.

* ``padded`` (128 B apart). crossbeam-utils' ``CachePadded`` uses 128 bytes on
  x86-64 and aarch64: Intel's spatial prefetcher (Intel 64 and IA-32
  Optimization Reference Manual, "Spatial Prefetcher") pulls 64-byte lines in
  pairs, so two counters 64 bytes apart can still fight over a 128-byte pair.
* ``packed`` (8 B apart, one cache line): net-mesh before its PERF_AUDIT §1.2
  fix. Producer-hot ``events_ingested`` and worker-hot ``events_dispatched``
  share a line, and every increment moves it between cores. Measured here
  (2-core EPYC VM, two threads doing ``fetch_add``): ~65 M adds/s in total
  8 B apart against ~640 M/s 64 or 128 B apart, and ~150 ns a round trip.
* ``stride N`` generalises both for sweeps (8, 64, 128, 256 bytes...).
* ``striped``: one single-writer slot per thread for every counter, each slot
  on its own 128-byte block, summed when read. No locked instruction on the hot
  path at all (a single writer needs only a plain store): the step after
  net-mesh's fix, measured at 0.65-1.0x of the no-counter throughput.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CACHE_PAIR_BYTES = 128
WORD = 8

# Counter ids, in EventBusStats order.
EVENTS_INGESTED = 0
EVENTS_DROPPED = 1
BATCHES_DISPATCHED = 2
EVENTS_DISPATCHED = 3
SHUTDOWN_WAS_LOSSY = 4
N_COUNTERS = 5
COUNTER_NAMES = ("events_ingested", "events_dropped", "batches_dispatched",
                 "events_dispatched", "shutdown_was_lossy")


@dataclass(frozen=True)
class CounterLayout:
    """A counter layout: its name, and the strides kernels index with."""
    name: str               # "padded", "packed", "striped" or "stride"
    stride_bytes: int       # distance between two counters (shared layouts)

    @property
    def label(self) -> str:
        return f"stride {self.stride_bytes}" if self.name == "stride" else self.name

    @property
    def striped(self) -> bool:
        return self.name == "striped"

    @staticmethod
    def parse(spec) -> "CounterLayout":
        """``"padded"``, ``"packed"``, ``"striped"``, ``64`` or ``{"stride": 64}``."""
        if isinstance(spec, CounterLayout):
            return spec
        if isinstance(spec, dict):
            spec = spec.get("stride")
        if spec == "padded":
            return CounterLayout("padded", CACHE_PAIR_BYTES)
        if spec == "packed":
            return CounterLayout("packed", WORD)
        if spec == "striped":
            return CounterLayout("striped", CACHE_PAIR_BYTES)
        if isinstance(spec, int) and not isinstance(spec, bool) and spec >= WORD and spec % WORD == 0:
            return CounterLayout("stride", spec)
        raise ValueError(f"unknown counter layout {spec!r}: expected padded, packed, "
                         "striped or a stride in bytes (a multiple of 8)")


def aligned_zeros(words: int, align: int = CACHE_PAIR_BYTES) -> np.ndarray:
    """An int64 array of ``words`` zeros whose first element is ``align``-aligned."""
    raw = np.zeros(words + align // WORD, dtype=np.int64)
    offset = (-raw.ctypes.data % align) // WORD
    out = raw[offset:offset + words]
    assert out.ctypes.data % align == 0
    return out


@dataclass(frozen=True)
class CounterArray:
    """The counters of one bus: the array and how to index it."""
    layout: CounterLayout
    words: np.ndarray
    counter_stride: int     # in words
    writer_stride: int      # in words; 0 for shared (atomically added) layouts
    writers: int

    @staticmethod
    def allocate(layout: CounterLayout, writers: int) -> "CounterArray":
        if layout.striped:
            slot = CACHE_PAIR_BYTES // WORD
            counter_stride = writers * slot
            words = aligned_zeros(N_COUNTERS * counter_stride)
            return CounterArray(layout, words, counter_stride, slot, writers)
        counter_stride = layout.stride_bytes // WORD
        # Pad the tail to a whole 128-byte block so nothing else shares the last line.
        words = aligned_zeros(((N_COUNTERS * counter_stride + 15) // 16) * 16)
        return CounterArray(layout, words, counter_stride, 0, writers)

    def address_of(self, counter: int, writer: int = 0) -> int:
        index = counter * self.counter_stride + writer * self.writer_stride
        return self.words.ctypes.data + index * WORD

    def read(self, counter: int) -> int:
        start = counter * self.counter_stride
        if self.writer_stride == 0:
            return int(self.words[start])
        return int(self.words[start:start + self.writers * self.writer_stride:self.writer_stride].sum())

    def read_all(self) -> dict:
        return {name: self.read(i) for i, name in enumerate(COUNTER_NAMES)}
