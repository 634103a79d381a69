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


@intrinsic
def view(typingctx, address, shape, dtype):
    """``view(address, (n,) or (rows, cols), np.int64)``: a C-contiguous array over memory
    at an integer address (what ``numba.carray`` makes of a pointer, without its overload
    machinery: a few instructions to compile, so a step that rebuilds a bus's 26 arrays
    from their addresses compiles in a fraction of the time). No reference count: the
    memory is the caller's and must outlive the view."""
    if not isinstance(address, types.Integer):
        return None
    if not isinstance(shape, types.BaseTuple) or not all(isinstance(t, types.Integer)
                                                          for t in shape.types):
        return None
    if not isinstance(dtype, (types.NumberClass, types.DType)):
        return None
    dt = dtype.dtype
    ndim = len(shape.types)
    arrty = types.Array(dt, ndim, "C")

    def codegen(context, builder, sig, args):
        from numba.np.arrayobj import make_array, populate_array
        addr = context.cast(builder, args[0], sig.args[0], types.int64)
        intp = context.get_value_type(types.intp)
        shapes = [context.cast(builder, builder.extract_value(args[1], i), sig.args[1].types[i],
                               types.intp) for i in range(ndim)]
        itemsize = context.get_abi_sizeof(context.get_data_type(dt))
        strides = [ir.Constant(intp, itemsize)]
        for i in range(ndim - 1, 0, -1):
            strides.insert(0, builder.mul(strides[0], shapes[i]))
        ary = make_array(arrty)(context, builder)
        populate_array(ary, data=builder.inttoptr(addr, context.get_data_type(dt).as_pointer()),
                       shape=shapes, strides=strides, itemsize=ir.Constant(intp, itemsize),
                       meminfo=None)
        return ary._getvalue()

    return arrty(address, shape, dtype), codegen
