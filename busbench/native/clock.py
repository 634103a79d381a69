"""Clock, sleep and yield callable from jitted code, with Numba caching intact.

``clock_gettime``, ``nanosleep`` and ``sched_yield`` are declared in the LLVM
module by intrinsics, so the kernels that call them stay cacheable (a ctypes
function pointer would be a "dynamic global" and disable ``cache=True``).
``clock_gettime(CLOCK_MONOTONIC)`` costs ~32 ns here: read it per batch or per
ingest call, not per event. Its values are the same clock as Python's
``time.monotonic_ns()``, so Python and jitted code can share deadlines.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .atomics import cpu_relax
from .jit import kernel_inline

CLOCK_MONOTONIC = 1
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_TIMESPEC = ir.LiteralStructType([_I64, _I64])


def _declare(builder, name, ret, args):
    module = builder.module
    fnty = ir.FunctionType(ret, args)
    return cgutils.get_or_insert_function(module, fnty, name)


@intrinsic
def monotonic_ns(typingctx):
    """Nanoseconds of CLOCK_MONOTONIC (the clock of ``time.monotonic_ns``)."""

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "clock_gettime", _I32, [_I32, _TIMESPEC.as_pointer()])
        ts = cgutils.alloca_once(builder, _TIMESPEC)
        builder.call(fn, [ir.Constant(_I32, CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(_I64, 1_000_000_000)), nsec)

    return types.int64(), codegen


@intrinsic
def sleep_ns(typingctx, nanoseconds):
    """Sleep the calling thread (``nanosleep``); releases the core to others."""

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "nanosleep", _I32,
                      [_TIMESPEC.as_pointer(), _TIMESPEC.as_pointer()])
        ns = context.cast(builder, args[0], sig.args[0], types.int64)
        ts = cgutils.alloca_once(builder, _TIMESPEC)
        billion = ir.Constant(_I64, 1_000_000_000)
        builder.store(builder.sdiv(ns, billion), cgutils.gep_inbounds(builder, ts, 0, 0))
        builder.store(builder.srem(ns, billion), cgutils.gep_inbounds(builder, ts, 0, 1))
        builder.call(fn, [ts, ir.Constant(_TIMESPEC.as_pointer(), None)])
        return context.get_dummy_value()

    return types.void(nanoseconds), codegen


@intrinsic
def yield_cpu(typingctx):
    """``sched_yield()``: give the core away after a short spin."""

    def codegen(context, builder, sig, args):
        fn = _declare(builder, "sched_yield", _I32, [])
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen



# Politeness for spin loops, shared by the bus's kernels and the producers'.
SPIN_LIMIT = 64
YIELD_LIMIT = 256


@kernel_inline
def backoff(spins):
    """Spin politely, then give the core away (pure spinning starves 2 cores)."""
    if spins < SPIN_LIMIT:
        cpu_relax()
    elif spins < YIELD_LIMIT:
        yield_cpu()
    else:
        sleep_ns(20_000)
    return spins + 1
