"""What each argument of a call into a foreign bus carries, as the numbers a kernel reads.

A c-abi target file (scenario/foreign.py) names each argument of a call by its
kind (``handle``, ``ptr``, ``len``...); the c-abi target (targets/cabi.py)
translates the kinds into the one producer loop's call description (load/ccall.py), runtime values, so one compiled kernel
serves every argument order. Every kind is one integer register on x86-64
System V and AArch64 (ffi.py).
"""
HANDLE, PTR, LEN, PTRS, LENS, N, TIMEOUT_MS, GRACE_MS, OUT, OUT_SIZE, CONFIG, CONFIG_LEN, \
    CALLBACK, CONTEXT = range(14)
