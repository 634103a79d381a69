"""A jitted kernel calls a C function through an address held as a runtime
value (busbench/native/ffi.py): the basis for driving any bus's C ABI and several
releases of one library in a single process."""
import ctypes

import numpy as np
from numba import njit

from busbench.native.ffi import ccall_i32, ccall_i64

LIBC = ctypes.CDLL(None)


def address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


@njit(cache=True)
def _call1_i32(fn, a):
    return ccall_i32(fn, (a,))


@njit(cache=True)
def _call3_i32(fn, a, b, n):
    return ccall_i32(fn, (a, b, n))


@njit(cache=True)
def _strlen_of(fn, buf):
    return ccall_i64(fn, (buf.ctypes.data,))


def test_int_return_is_read_at_32_bits_and_sign_extended():
    # abs(int): the upper half of rax is not part of the result
    assert _call1_i32(address(LIBC.abs), -7) == 7
    assert _call1_i32(address(LIBC.abs), -(1 << 31) + 1) == (1 << 31) - 1


def test_pointers_from_arrays_and_lengths_pass_as_int64():
    a = np.frombuffer(b"abcdef\0", np.uint8).copy()
    b = np.frombuffer(b"abcxef\0", np.uint8).copy()
    memcmp = address(LIBC.memcmp)
    assert _call3_i32(memcmp, a.ctypes.data, b.ctypes.data, 3) == 0
    assert _call3_i32(memcmp, a.ctypes.data, b.ctypes.data, 6) < 0   # negative int kept negative
    assert _call3_i32(memcmp, b.ctypes.data, a.ctypes.data, 6) > 0


def test_size_t_return_at_64_bits():
    buf = np.frombuffer(b"hello, bus\0", np.uint8).copy()
    assert _strlen_of(address(LIBC.strlen), buf) == 10


def test_one_compiled_kernel_calls_whichever_function_it_is_handed():
    # the address is a runtime value: the same specialization serves both
    assert _call1_i32(address(LIBC.abs), -3) == 3
    assert _call1_i32(address(LIBC.toupper), ord("a")) == ord("A")
    assert len(_call1_i32.signatures) == 1
