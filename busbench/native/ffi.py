"""Calling a C function through a pointer held in an int64, from jitted code.

Why not ``numba.types.ExternalFunction``: it binds a symbol *name* at compile
time, so two libraries exporting the same name (two releases of net-mesh
loaded side by side, or a user's bus next to net-mesh) cannot both be called
by one compiled kernel. Why not a ctypes function object: it is a "dynamic
global" and turns ``cache=True`` off. Here the address is a runtime value, so
one cached kernel calls whichever library it is handed, as layouts and modes
already are runtime values (BUS.md).

The C side is described by an arity and an integer return width. Every
argument travels as an int64 (a handle, a pointer from ``arr.ctypes.data``, a
length, a count): on the x86-64 System V and AArch64 ABIs these all occupy one
integer register each, so passing an int64 where C declares a pointer, a
``size_t`` or an ``int`` is exact. The return value is read at its declared
width (``int`` is 32 bits: reading 64 would take garbage in the upper half)
and sign-extended to int64.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I64 = ir.IntType(64)


def _caller(return_bits: int):
    ret = ir.IntType(return_bits)

    @intrinsic
    def call(typingctx, address, args):
        if not isinstance(address, types.Integer):
            return None
        if not isinstance(args, types.BaseTuple) or not all(
                isinstance(t, types.Integer) for t in args.types):
            return None
        arity = len(args.types)

        def codegen(context, builder, sig, llargs):
            fnty = ir.FunctionType(ret, [_I64] * arity)
            addr = context.cast(builder, llargs[0], sig.args[0], types.int64)
            fn = builder.inttoptr(addr, fnty.as_pointer())
            values = []
            for i, t in enumerate(sig.args[1].types):
                v = builder.extract_value(llargs[1], i)
                values.append(context.cast(builder, v, t, types.int64))
            result = builder.call(fn, values)
            return result if return_bits == 64 else builder.sext(result, _I64)

        return types.int64(address, args), codegen

    return call


#: ``ccall_i32(address, (a0, a1, ...))``: call a C function returning ``int``.
ccall_i32 = _caller(32)
#: ``ccall_i64(address, (a0, a1, ...))``: call a C function returning a 64-bit integer.
ccall_i64 = _caller(64)


@intrinsic
def as_voidptr(typingctx, address):
    """An integer address as a ``void*`` (for ``numba.carray`` over memory a C caller handed us)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        addr = context.cast(builder, args[0], sig.args[0], types.int64)
        return builder.inttoptr(addr, context.get_value_type(types.voidptr))

    return types.voidptr(address), codegen
