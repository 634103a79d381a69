"""The events busbench sends, and the checksum both sides keep of them.

An event's payload is ``producer << SEQ_BITS | seq``: producer p numbers its
events 0, 1, 2, ... Any witness downstream (the reference bus's ``verify``
adapter, Redis streams read back) decodes the pair and needs nothing else.

Checksums: per producer, the producer side sums ``mix(seq)`` over what it
offered, what was refused and what was stranded; the witness side sums it over
what it received, and the bus over what it evicted or rejected. Sums are modulo
2**64 (int64 arithmetic wraps). Counts alone let an event delivered *and*
reported dropped stand in for another event lost silently; with the mix (the
splitmix64 finaliser, a bijection of 64-bit words) the two sums then differ
unless two distinct sets of sequence numbers collide, about 2**-64 for any
bug that does not know the mix. O(1) memory per producer, every event covered.

Jitted (``mix``) and numpy (``mix_array``) versions compute the same values.
"""
import numpy as np

from .jit import kernel, kernel_inline

SEQ_BITS = 40
SEQ_MASK = (1 << SEQ_BITS) - 1
from ..common.names import CHECKSUM_MOD as MOD  # noqa: E402  (one home)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


@kernel_inline
def mix(seq):
    """splitmix64's finaliser of seq + golden ratio, as an int64.

    In uint64 on purpose: Numba's int64 arithmetic lets LLVM assume no signed
    overflow, and with the seq's range known (``value & SEQ_MASK``) it folded
    the wrapping multiplies into wrong values (measured: a different checksum
    for the same seq depending on the caller). Unsigned wrap-around is defined.
    """
    z = np.uint64(seq) + _GOLDEN
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return np.int64(z ^ (z >> _S31))


@kernel_inline
def add_wrap(a, b):
    """a + b mod 2**64 for int64 values, computed unsigned (wraps by definition)."""
    return np.int64(np.uint64(a) + np.uint64(b))


def mix_py(seq: int) -> int:
    """``mix`` in Python ints (Python producers and sinks), as an unsigned 64-bit int."""
    z = (seq + 0x9E3779B97F4A7C15) & (MOD - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (MOD - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (MOD - 1)
    return z ^ (z >> 31)


@kernel
def mix_range_sum(lo, hi):
    """Sum of mix(q) for lo <= q < hi (int64, wrapping)."""
    s = np.int64(0)
    for q in range(lo, hi):
        s += mix(q)
    return s


class RangeChecksum:
    """The checksum of [0, n) for a growing n, extended incrementally (each seq
    is mixed once over a run, off the producers' hot path)."""

    def __init__(self):
        self.n = 0
        self.total = 0

    def upto(self, n: int) -> int:
        if n > self.n:
            self.total = (self.total + int(mix_range_sum(self.n, n))) % MOD
            self.n = n
        elif n < self.n:
            raise ValueError("a producer's next_seq never goes back")
        return self.total


def mix_array(seqs) -> np.ndarray:
    """``mix`` over an array of sequence numbers (uint64 results)."""
    z = np.asarray(seqs, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def checksum(seqs) -> int:
    """The checksum of a collection of sequence numbers, as an int in [0, 2**64)."""
    return int(mix_array(seqs).sum(dtype=np.uint64)) % MOD


def as_checksum(value) -> int:
    """An int64 sum read from a kernel's array, as an int in [0, 2**64)."""
    return int(value) % MOD
