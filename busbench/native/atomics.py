"""Atomic memory operations for Numba, emitted as LLVM instructions.

Numba has no CPU atomics API. These intrinsics emit ``atomicrmw``, ``cmpxchg``,
atomic ``load``/``store`` and ``fence`` through llvmlite, so that jitted kernels
running in parallel (``nogil=True``) can share int64 arrays safely. On x86-64
``fetch_add`` becomes ``lock xadd`` and an acquire load or release store a plain
``mov``: as fast as the same code in C.

Every operation takes a 1-d C-contiguous int64 (or uint64) array and an index.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_pointer(context, builder, arytype, ary, index):
    array = context.make_array(arytype)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, arytype, array, [index],
                                    wraparound=False)


def _check_array(ary):
    if not isinstance(ary, types.Array) or ary.ndim != 1:
        raise TypeError("atomic operations take a 1-d array")
    if ary.dtype not in (types.int64, types.uint64):
        raise TypeError("atomic operations take an int64 or uint64 array")


def _rmw(op):
    def typer(typingctx, ary, index, value):
        _check_array(ary)

        def codegen(context, builder, sig, args):
            ary_v, index_v, value_v = args
            ptr = _element_pointer(context, builder, sig.args[0], ary_v, index_v)
            val = context.cast(builder, value_v, sig.args[2], sig.args[0].dtype)
            return builder.atomic_rmw(op, ptr, val, "seq_cst")

        return ary.dtype(ary, index, value), codegen

    return typer


@intrinsic
def fetch_add(typingctx, ary, index, value):
    """``old = ary[index]; ary[index] += value`` atomically (seq_cst); returns old."""
    return _rmw("add")(typingctx, ary, index, value)


@intrinsic
def fetch_or(typingctx, ary, index, value):
    """``old = ary[index]; ary[index] |= value`` atomically (seq_cst); returns old."""
    return _rmw("or")(typingctx, ary, index, value)


@intrinsic
def exchange(typingctx, ary, index, value):
    """Store ``value`` and return the old value, atomically (a full barrier on x86)."""
    return _rmw("xchg")(typingctx, ary, index, value)


@intrinsic
def compare_and_swap(typingctx, ary, index, expected, desired):
    """If ``ary[index] == expected`` store ``desired``; return the value found.

    The swap happened exactly when the returned value equals ``expected``.
    """
    _check_array(ary)

    def codegen(context, builder, sig, args):
        ary_v, index_v, exp_v, des_v = args
        ptr = _element_pointer(context, builder, sig.args[0], ary_v, index_v)
        dtype = sig.args[0].dtype
        exp = context.cast(builder, exp_v, sig.args[2], dtype)
        des = context.cast(builder, des_v, sig.args[3], dtype)
        pair = builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return ary.dtype(ary, index, expected, desired), codegen


def _load(ordering):
    def typer(typingctx, ary, index):
        _check_array(ary)

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
            return builder.load_atomic(ptr, ordering, 8)

        return ary.dtype(ary, index), codegen

    return typer


def _store(ordering):
    def typer(typingctx, ary, index, value):
        _check_array(ary)

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
            val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
            builder.store_atomic(val, ptr, ordering, 8)
            return context.get_dummy_value()

        return types.void(ary, index, value), codegen

    return typer


@intrinsic
def load_acquire(typingctx, ary, index):
    """Atomic load with acquire ordering."""
    return _load("acquire")(typingctx, ary, index)


@intrinsic
def load_relaxed(typingctx, ary, index):
    """Atomic load with no ordering: never torn, never cached in a register."""
    return _load("monotonic")(typingctx, ary, index)


@intrinsic
def store_release(typingctx, ary, index, value):
    """Atomic store with release ordering."""
    return _store("release")(typingctx, ary, index, value)


@intrinsic
def store_relaxed(typingctx, ary, index, value):
    """Atomic store with no ordering (a plain ``mov`` that the compiler keeps)."""
    return _store("monotonic")(typingctx, ary, index, value)


@intrinsic
def fence_seq_cst(typingctx):
    """A full memory fence (``mfence`` on x86)."""

    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint (``pause`` on x86): a polite busy-wait step."""

    def codegen(context, builder, sig, args):
        # The LLVM intrinsic, not inline asm: Numba's JIT has no asm parser.
        fnty = ir.FunctionType(ir.VoidType(), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen
