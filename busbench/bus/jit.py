"""The one way busbench compiles a kernel.

``nogil`` so producer and worker kernels run in parallel threads; ``cache``
so a process compiles once and later processes not at all; and no NRT
(Numba's reference counting), because the kernels never allocate, and with
NRT every array taken out of the ``BusState`` tuple at a call boundary costs
an atomic increment and decrement of that array's shared refcount: measured
here, 689 such calls in one ``ingest_batch`` and ~900 ns per 64-event call,
the refcount lines bouncing between producer and worker cores.
"""
from numba import njit

kernel = njit(nogil=True, cache=True, _nrt=False)
kernel_inline = njit(nogil=True, cache=True, _nrt=False, inline="always")
