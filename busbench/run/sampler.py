"""The sampler: reads a target's counters at a fixed interval and produces
``Sample`` values (the time series, the regression gate's throughput samples,
the display's rates). It owns what it produces and writes into no other
object: the runner reads ``series`` and ``throughput_samples`` when it is
done, and a listener gets each sample as it is made.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from ..common import names as N

SAMPLE_INTERVAL_S = 0.1
HISTORY_S = 60.0


@dataclass(frozen=True)
class Sample:
    t: float                  # seconds since the run started
    counters: dict            # what the target exported
    rates: dict               # names.COUNTER_NAMES (those exported) -> per second, last interval
    history: tuple            # the history counter per second, oldest first (the sparkline)
    shard_fill: list | None = None  # events queued per ring; None: the target cannot observe it


class Sampler(threading.Thread):
    """``read()`` -> counters dict; ``loading()`` -> is the load running now;
    ``listener(sample)`` is called from the sampler's thread; ``fill()`` ->
    events queued per ring, or None when the target cannot observe it (then a
    series row has no ``shard_fill``, as a counter a target does not export is
    absent, never 0). ``history_counter``: whose rate the history keeps (the
    display's throughput: ``targets.base.throughput_counter``; None: none)."""

    def __init__(self, read, loading, t0, listener=None, interval_s=SAMPLE_INTERVAL_S,
                 fill=lambda: None, history_counter: str | None = N.EVENTS_DISPATCHED):
        super().__init__(name="busbench-sampler", daemon=True)
        self._read, self._loading, self.t0 = read, loading, t0
        self._fill = fill
        self.history_counter = history_counter
        self._listener = listener
        self.interval_s = interval_s
        self.done = threading.Event()
        self.series: list = []
        self.throughput_samples: list = []
        self._history = deque(maxlen=max(1, int(HISTORY_S / interval_s)))
        self._last = None
        self._lock = threading.Lock()

    def run(self):
        while not self.done.wait(self.interval_s):
            self.sample()

    def sample(self) -> Sample:
        with self._lock:
            t = time.monotonic() - self.t0
            loading = self._loading()
            counters = self._read()
            fill = self._fill()
            fill = None if fill is None else [int(x) for x in fill]
            row = {"t": round(t, 4), **counters}
            if fill is not None:      # the report's ring-fill heat map reads it from the record
                row["shard_fill"] = fill
            self.series.append(row)
            rates = {}
            if self._last is not None:
                dt = t - self._last[0]
                for k in N.COUNTER_NAMES:
                    if k in counters and k in self._last[1]:
                        rates[k] = (counters[k] - self._last[1][k]) / dt if dt > 0 else 0.0
                shown = rates.get(self.history_counter) if self.history_counter else None
                if shown is not None:
                    self._history.append(shown)
                rate = rates.get(N.EVENTS_DISPATCHED)
                # Intervals spent wholly under load feed the regression gate's samples.
                if rate is not None and loading and self._last[2]:
                    self.throughput_samples.append(rate)
            self._last = (t, counters, loading)
            sample = Sample(t, counters, rates, tuple(self._history), fill)
        if self._listener is not None:
            self._listener(sample)
        return sample

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()
