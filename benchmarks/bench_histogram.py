"""Cost of ``histogram.record`` inside a jitted loop: ns per record, one line.

50 M records: a 1 M-value lognormal sample (100 ns .. 10 s, as batch latencies
spread) replayed 50 times, so the input stays cache-resident and the loop
measures the histogram, not memory bandwidth. Run: python benchmarks/bench_histogram.py
"""
import time

import numpy as np
from numba import njit

from busbench.native import histogram as hist

SAMPLE = 1_000_000
REPEATS = 50


@njit(nogil=True, cache=True)
def _record_repeated(h, values, repeats):
    for _ in range(repeats):
        for i in range(values.shape[0]):
            hist.record(h, values[i])


def main():
    rng = np.random.default_rng(0)
    values = np.clip(np.exp(rng.normal(np.log(1e6), 2.5, SAMPLE)), 100, 10e9).astype(np.int64)
    h = hist.new_histograms(1)[0]
    _record_repeated(h, values[:10], 1)  # compile (or load from cache) outside the timing
    h = hist.new_histograms(1)[0]
    start = time.perf_counter_ns()
    _record_repeated(h, values, REPEATS)
    elapsed = time.perf_counter_ns() - start
    records = SAMPLE * REPEATS
    assert h[hist.COUNT] == records
    print(f"histogram.record in a jitted loop: {elapsed / records:.2f} ns/record "
          f"({records / 1e6:.0f} M records, {elapsed / 1e9:.2f} s, "
          f"HIST_LEN={hist.HIST_LEN}, p99={hist.percentile(h, 99)} ns)")


if __name__ == "__main__":
    main()
