"""Fixed-memory log-linear latency histogram (HdrHistogram layout), usable in jitted code.

A histogram is ONE 1-d ``np.int64`` array of ``HIST_LEN`` slots, so the workers'
histograms are the rows of one 2-d array (``hists[worker]``). Each batch worker
records into its own row (single writer: no atomics); Python merges the rows.
Memory is fixed: nothing grows with the length of the run.

Layout of one histogram (slot indices)::

    [0, HEADER_LEN)         header: COUNT, SUM, MIN, MAX, OVERFLOW, UNDERFLOW, rest 0
    [HEADER_LEN, HIST_LEN)  COUNTS_LEN bucket counts

The header takes 16 slots (128 bytes) and ``HIST_LEN * 8`` is a multiple of
128, so in a 2-d array each worker's hot header starts a multiple of 128 bytes
from the array's start (see BUS.md on padding); the rows' neighbouring slots
are the rarely written top buckets, so workers do not share hot cache lines.

Bucketing (HdrHistogram with 1 ns units and 3 significant digits):

* 2048 sub-buckets per power of two. Values 0..2047 get one bucket each
  (exact). Above, the range [1024 * 2**k, 2048 * 2**k) is cut into 1024
  buckets of width 2**k, so a bucket is never wider than 1/1024 of the values
  in it. ``bucket_value`` returns the bucket's midpoint, hence any recorded
  value is reported within 1/2048 (~0.05 %) relative; percentiles are further
  clamped to the exact [min, max].
* 32 such ranges (k = 0..31) reach ``HIGHEST_TRACKABLE = 2**42 - 1`` ns, about
  73 minutes. Larger values are recorded as HIGHEST_TRACKABLE and counted in
  OVERFLOW; negative values (a clock going backwards) are recorded as 0 and
  counted in UNDERFLOW. SUM, MIN and MAX are those of the recorded (clamped)
  values, which also keeps SUM far from int64 overflow.
* COUNTS_LEN = (32 + 1) * 1024 = 33 792 buckets; with the header,
  HIST_LEN = 33 808 slots = 270 464 bytes per histogram.

Index arithmetic is HdrHistogram's: for value v, the range is
``k = bit_length(v | 2047) - 11`` and the bucket is
``(k + 1) * 1024 + (v >> k) - 1024``; a count-leading-zeros instruction and
three integer operations.
"""
from fractions import Fraction
import math

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

SUB_BUCKET_BITS = 11                       # 2048 sub-buckets per power of two
SUB_BUCKET_COUNT = 1 << SUB_BUCKET_BITS
SUB_BUCKET_HALF_BITS = SUB_BUCKET_BITS - 1
SUB_BUCKET_HALF = 1 << SUB_BUCKET_HALF_BITS  # 1024
SUB_BUCKET_MASK = SUB_BUCKET_COUNT - 1
RANGE_COUNT = 32                           # powers of two above the exact range
HIGHEST_TRACKABLE = (1 << (SUB_BUCKET_BITS + RANGE_COUNT - 1)) - 1  # 2**42 - 1 ns
COUNTS_LEN = (RANGE_COUNT + 1) * SUB_BUCKET_HALF

# Header slots.
COUNT, SUM, MIN, MAX, OVERFLOW, UNDERFLOW = 0, 1, 2, 3, 4, 5
HEADER_LEN = 16
HIST_LEN = HEADER_LEN + COUNTS_LEN
EMPTY_MIN = np.iinfo(np.int64).max


def new_histograms(n):
    """``n`` empty histograms, one per row of an ``(n, HIST_LEN)`` int64 array."""
    hists = np.zeros((n, HIST_LEN), dtype=np.int64)
    hists[:, MIN] = EMPTY_MIN
    return hists


@njit(nogil=True, cache=True)
def bucket_index(value):
    """Index in the counts region of the bucket holding ``value`` (clamped to range)."""
    v = min(max(np.int64(value), 0), HIGHEST_TRACKABLE)
    k = 64 - leading_zeros(v | SUB_BUCKET_MASK) - SUB_BUCKET_BITS
    return ((k + 1) << SUB_BUCKET_HALF_BITS) + (v >> k) - SUB_BUCKET_HALF


@njit(nogil=True, cache=True)
def bucket_value(index):
    """Midpoint of bucket ``index``: within 1/2048 of every value the bucket holds."""
    k = (np.int64(index) >> SUB_BUCKET_HALF_BITS) - 1
    sub = (np.int64(index) & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF
    if k < 0:  # the exact range 0..2047, width 1
        sub -= SUB_BUCKET_HALF
        k = 0
    return (sub << k) + ((np.int64(1) << k) >> 1)


@njit(nogil=True, cache=True)
def record_n(h, value, count):
    """Record ``count`` occurrences of ``value`` (ns) into histogram ``h``."""
    v = np.int64(value)
    n = np.int64(count)
    if v < 0:
        h[UNDERFLOW] += n
        v = 0
    elif v > HIGHEST_TRACKABLE:
        h[OVERFLOW] += n
        v = HIGHEST_TRACKABLE
    h[HEADER_LEN + bucket_index(v)] += n
    h[COUNT] += n
    h[SUM] += v * n
    if v < h[MIN]:
        h[MIN] = v
    if v > h[MAX]:
        h[MAX] = v


@njit(nogil=True, cache=True)
def record(h, value):
    """Record one ``value`` (ns) into histogram ``h``."""
    record_n(h, value, 1)


@njit(nogil=True, cache=True)
def record_array(h, values):
    """Record every element of the 1-d array ``values`` into ``h``."""
    for i in range(values.shape[0]):
        record_n(h, values[i], 1)


@njit(nogil=True, cache=True)
def merge_into(dst, src):
    """Add histogram ``src`` into ``dst``, as if ``src``'s values were recorded there."""
    dst[COUNT] += src[COUNT]
    dst[SUM] += src[SUM]
    dst[MIN] = min(dst[MIN], src[MIN])
    dst[MAX] = max(dst[MAX], src[MAX])
    dst[OVERFLOW] += src[OVERFLOW]
    dst[UNDERFLOW] += src[UNDERFLOW]
    for i in range(HEADER_LEN, HIST_LEN):
        dst[i] += src[i]


def merge(hists):
    """One new histogram holding every row of ``hists`` (2-d, or a sequence of 1-d)."""
    merged = new_histograms(1)[0]
    for row in hists:
        merge_into(merged, row)
    return merged


def percentile(h, q):
    """Value at percentile ``q`` (0..100), nearest rank, like HdrHistogram's valueAtPercentile.

    The smallest recorded value with at least ``ceil(q/100 * count)`` values at or
    below it (numpy's ``method="inverted_cdf"``), reported as its bucket's
    midpoint clamped to [min, max] (the top rank as the exact max). None when
    the histogram is empty.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    count = int(h[COUNT])
    if count == 0:
        return None
    # Exact rational arithmetic: 99.9 % of 1000 is rank 999, not 1000 via float noise.
    rank = max(1, math.ceil(Fraction(q).limit_denominator(10**9) * count / 100))
    if rank == count:  # the top rank is the max, known exactly
        return int(h[MAX])
    cumulative = np.cumsum(h[HEADER_LEN:])
    index = int(np.searchsorted(cumulative, rank, side="left"))
    return int(min(max(bucket_value(index), h[MIN]), h[MAX]))


def summary(h):
    """``count, p50, p90, p99, p999, max, mean, min`` in ns; when empty, count 0 and the rest None."""
    count = int(h[COUNT])
    if count == 0:
        return {"count": 0, **dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean", "min"))}
    return {
        "count": count,
        "p50": percentile(h, 50),
        "p90": percentile(h, 90),
        "p99": percentile(h, 99),
        "p999": percentile(h, 99.9),
        "max": int(h[MAX]),
        "mean": int(h[SUM]) / count,
        "min": int(h[MIN]),
    }
