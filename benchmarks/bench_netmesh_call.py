"""net-mesh's ingest called from a jitted loop two ways, in one process: by symbol
name (``numba.types.ExternalFunction`` + ``llvmlite.binding.add_symbol``, how the
kernels called it before issue 14) and through an address passed at run time
(``busbench.native.ffi.ccall_i32``, how they call it now, so that several releases
can live side by side). Same library, a fresh bus per run (no adapter configured, 2 shards of
65,536 slots, DropNewest), rounds interleaved A, B, B, A, ...; each figure is
the median over rounds of calls per second; the ratio is paired per round.

Run: nice python benchmarks/bench_netmesh_call.py [--events 200000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numba
import numpy as np
from numba import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from busbench.native.ffi import ccall_i32
from busbench.targets.netmesh import abi

by_name = types.ExternalFunction("net_ingest_raw", types.int32(types.int64, types.int64, types.int64))


@numba.njit(nogil=True)
def loop_by_name(handle, payload, n):
    ok = 0
    for _ in range(n):
        ok += by_name(handle, payload.ctypes.data, payload.size) == 0
    return ok


@numba.njit(nogil=True)
def loop_by_address(fn, handle, payload, n):
    ok = 0
    for _ in range(n):
        ok += ccall_i32(fn, (handle, payload.ctypes.data, np.int64(payload.size))) == 0
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import llvmlite.binding as llvm
    lib = abi.load()
    llvm.add_symbol("net_ingest_raw", lib.addresses["net_ingest_raw"])
    payload = np.frombuffer(b'"0123456789abcdef0123456789abcdef"', np.uint8).copy()
    config = json.dumps({"num_shards": 2, "ring_buffer_capacity": 1 << 16,
                         "backpressure_mode": "DropNewest"})
    fn = lib.addresses["net_ingest_raw"]
    loop_by_name(0, payload, 1)
    loop_by_address(fn, 0, payload, 1)          # compile both before timing
    rates = {"by name": [], "by address": []}
    for r in range(args.rounds):
        order = ["by name", "by address"] if r % 2 == 0 else ["by address", "by name"]
        for variant in order:
            handle = lib.init(config)
            t = time.perf_counter()
            if variant == "by name":
                loop_by_name(handle, payload, args.events)
            else:
                loop_by_address(fn, handle, payload, args.events)
            rates[variant].append(args.events / (time.perf_counter() - t))
            lib.shutdown(handle)
    paired = [b / a for a, b in zip(rates["by name"], rates["by address"])]
    print(f"net-mesh {lib.version} net_ingest_raw from a jitted loop, {args.rounds} interleaved "
          f"rounds of {args.events:,} calls (no adapter in the configuration)")
    for k, v in rates.items():
        print(f"{k:12s} median {statistics.median(v) / 1e6:6.2f} M calls/s  "
              f"(min {min(v) / 1e6:.2f}, max {max(v) / 1e6:.2f})")
    print(f"by address / by name, paired per round: median {statistics.median(paired):.3f} "
          f"(min {min(paired):.3f}, max {max(paired):.3f})")


if __name__ == "__main__":
    main()
