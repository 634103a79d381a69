"""The reference bus (BUS.md): atomics, counter layouts, jitted kernels, lifecycle.

Importing the package first drops Numba caches made stale by an edit to any
jitted source (see jit.py), before any cached kernel can be loaded.
"""
from ..native import jit  # noqa: F401
