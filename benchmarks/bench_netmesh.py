"""Ingest throughput into net-mesh: the official Python binding vs busbench's Numba kernels.

events/s that net-mesh accepted (its ``events_ingested`` over the seconds of
load), closed loop, no adapter (pure ingest), 2 shards of 65 536 slots,
DropNewest. Rows:

* ``binding ingest_raw``: a Python loop calling ``net.Net.ingest_raw`` per
  event (payloads built before the timing, so the loop measures the binding
  alone: a favour to the binding), 1 and 2 threads;
* ``binding ingest_raw_batch``: ``net.Net.ingest_raw_batch`` per 64 events,
  1 and 2 threads;
* ``kernel single``: busbench's jitted producer calling ``net_ingest_raw``
  per event through the C ABI, GIL released, 1 and 2 producers (it formats
  every payload inside the timing);
* ``kernel batch``: the same with ``net_ingest_raw_batch`` per 64 events.

Variants are interleaved across rounds (A, B, C, ..., A, B, C, ...) so the
machine's drift hits them alike; a fresh bus per variant and round. Each
figure is a median over rounds (min, max); ratios are against the binding's
best row: of medians, and paired (the median over rounds of the ratio to that
round's best binding figure).

Run: nice python benchmarks/bench_netmesh.py [--seconds 1.0] [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from busbench.load import kernels as K
from busbench.targets.netmesh import NetMeshTarget

SHARDS = 2
CAPACITY = 1 << 16
BATCH = 64
POOL = 1 << 14          # prebuilt payloads per binding thread, cycled

VARIANTS = [("binding ingest_raw", "binding", "single", 1), ("binding ingest_raw", "binding", "single", 2),
            ("binding ingest_raw_batch", "binding", "batch", 1),
            ("binding ingest_raw_batch", "binding", "batch", 2),
            ("kernel single", "kernel", "single", 1), ("kernel single", "kernel", "single", 2),
            ("kernel batch", "kernel", "batch", 1), ("kernel batch", "kernel", "batch", 2)]


def run_binding(call: str, producers: int, seconds: float) -> tuple[float, float]:
    import net

    bus = net.Net(num_shards=SHARDS, ring_buffer_capacity=CAPACITY, backpressure_mode="drop_newest")
    pools = [[f'"{p:04x}{i:012x}{0:016x}"' for i in range(POOL)] for p in range(producers)]
    chunks = [[pool[i:i + BATCH] for i in range(0, POOL, BATCH)] for pool in pools]
    start_gate = threading.Barrier(producers + 1)
    deadline = [0.0]

    def single(p):
        ingest = bus.ingest_raw
        mine = chunks[p]
        start_gate.wait()
        j = 0
        while time.perf_counter() < deadline[0]:
            for s in mine[j % len(mine)]:
                try:
                    ingest(s)
                except RuntimeError:
                    pass
            j += 1

    def batch(p):
        ingest = bus.ingest_raw_batch
        mine = chunks[p]
        start_gate.wait()
        j = 0
        while time.perf_counter() < deadline[0]:
            ingest(mine[j % len(mine)])
            j += 1

    threads = [threading.Thread(target=single if call == "single" else batch, args=(p,))
               for p in range(producers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    s = bus.stats()
    bus.shutdown()
    offered = s.events_ingested + s.events_dropped
    return s.events_ingested / elapsed, (s.events_dropped / offered if offered else 0.0)


def run_kernel(call: str, producers: int, seconds: float) -> tuple[float, float]:
    target = NetMeshTarget({"num_shards": SHARDS, "ring_buffer_capacity": CAPACITY,
                            "adapter": "noop", "call": call}, producers=producers)
    try:
        target.prepare()
        target.start()
        stop = np.zeros(16, np.int64)
        rigs = []
        now = time.monotonic_ns()
        for _ in range(producers):
            prm = np.zeros(K.P_LEN, np.int64)
            prm[K.P_BATCH] = BATCH
            prm[K.P_MAX_EVENTS] = -1
            prm[K.P_DEADLINE_NS] = now + int(seconds * 1e9)
            rigs.append((prm, np.zeros(K.S_LEN, np.int64)))
        threads = [threading.Thread(target=target.produce, args=(p, *rigs[p], None, stop))
                   for p in range(producers)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        c = target.counters()
        offered = c["events_ingested"] + c["events_dropped"]
        return c["events_ingested"] / elapsed, (c["events_dropped"] / offered if offered else 0.0)
    finally:
        target.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    # warm-up: compile or load the kernels, touch the binding
    run_kernel("single", 1, 0.05)
    run_kernel("batch", 1, 0.05)
    run_binding("single", 1, 0.05)
    samples = {i: [] for i in range(len(VARIANTS))}
    refused = {i: [] for i in range(len(VARIANTS))}
    for _ in range(args.repeat):
        for i, (_, driver, call, producers) in enumerate(VARIANTS):
            fn = run_binding if driver == "binding" else run_kernel
            rate, drop = fn(call, producers, args.seconds)
            samples[i].append(rate)
            refused[i].append(drop)
    binding = [i for i, v in enumerate(VARIANTS) if v[1] == "binding"]
    best_binding = max(binding, key=lambda i: statistics.median(samples[i]))
    per_round_best = [max(samples[i][r] for i in binding) for r in range(args.repeat)]
    rows = []
    for i, (name, driver, call, producers) in enumerate(VARIANTS):
        med = statistics.median(samples[i])
        rows.append({"variant": f"{name} {producers}P", "driver": driver, "call": call,
                     "producers": producers, "median": med, "min": min(samples[i]),
                     "max": max(samples[i]), "refused_share": statistics.median(refused[i]),
                     "ratio_of_medians": med / statistics.median(samples[best_binding]),
                     "paired_ratio": statistics.median(s / b for s, b in zip(samples[i], per_round_best)),
                     "samples": samples[i]})
    print(f"net-mesh ingest, {SHARDS} shards x {CAPACITY} slots, no adapter, closed loop, "
          f"{args.repeat} interleaved rounds of {args.seconds:g} s; ratios vs "
          f"{rows[best_binding]['variant']} (the binding's best)")
    print(f"{'variant':34} {'median M/s':>10} {'min':>7} {'max':>7} {'refused':>8} {'x best':>7} {'paired':>7}")
    for r in rows:
        print(f"{r['variant']:34} {r['median'] / 1e6:10.2f} {r['min'] / 1e6:7.2f} {r['max'] / 1e6:7.2f} "
              f"{r['refused_share']:8.1%} {r['ratio_of_medians']:7.2f} {r['paired_ratio']:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": 1, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                "platform": platform.platform()},
                       "seconds": args.seconds, "repeat": args.repeat, "best_binding": rows[best_binding]["variant"],
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
