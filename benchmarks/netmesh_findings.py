"""What net-mesh 0.45.1 really does, by direct experiment with the net-mesh target.

    nice python benchmarks/netmesh_findings.py            # every experiment
    nice python benchmarks/netmesh_findings.py flush_quiescent drop_oldest

Each experiment runs in its own subprocess (a native fault cannot take the
others down), with a bounded wait, and prints one JSON line of evidence:
producers' own tallies, net-mesh's counters, and what the Redis streams hold.
No runner involved: the target is driven directly.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np

EXPERIMENTS = ("refusals", "fail_producer", "drop_oldest", "flush_quiescent", "flush_under_load",
               "shutdown_without_flush", "shutdown_redis_frozen", "flush_redis_frozen",
               "kill_adapter_restart", "redis_frozen_counters")


def _rig(cfg, producers=2):
    from busbench.targets.netmesh import NetMeshTarget

    t = NetMeshTarget(cfg, producers=producers)
    t.prepare()
    t.start()
    return t


def _load(t, producers, events, batch=64):
    from busbench.load import kernels as K

    stop = np.zeros(16, np.int64)
    rigs = []
    for _ in range(producers):
        prm = np.zeros(K.P_LEN, np.int64)
        prm[K.P_BATCH] = batch
        prm[K.P_MAX_EVENTS] = events
        rigs.append((prm, np.zeros(K.S_LEN, np.int64)))
    threads = [threading.Thread(target=t.produce, args=(p, rigs[p][0], rigs[p][1], None, stop))
               for p in range(producers)]
    return stop, rigs, threads


def _truth(rigs):
    from busbench.load import kernels as K

    return [{"landed": int(ps[K.S_LANDED]), "refused": int(ps[K.S_REFUSED]),
             "offered": int(ps[K.S_OFFERED]), "turned_away": int(ps[K.S_TURNED_AWAY])}
            for _, ps in rigs]


def _summary(t, ev, rigs):
    rows = []
    for p, d in enumerate(ev.producers):
        tal = t.producer_tallies(p)
        rows.append({"landed": int(rigs[p][1][2]), "received": d.received, "distinct": d.distinct,
                     "duplicates": d.duplicates, "order_violations": d.order_violations,
                     "refused_delivered": d.refused_delivered,
                     "checksum_match": d.checksum == tal["accepted_checksum"]})
    return rows


def run(name: str) -> dict:
    if name in ("refusals", "fail_producer"):
        mode = "DropNewest" if name == "refusals" else "FailProducer"
        t = _rig({"num_shards": 1, "ring_buffer_capacity": 1024, "backpressure_mode": mode})
        try:
            stop, rigs, threads = _load(t, 2, 200_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            c = t.counters()
            t.shutdown(5)
            ev = t.delivery()
            landed = sum(r["landed"] for r in truth)
            refused = sum(r["refused"] for r in truth)
            return {"mode": mode, "producers": truth, "counters_before_shutdown": c,
                    "landed": landed, "refused": refused,
                    "refusals_in_ingested": c["events_ingested"] != landed,
                    "ingested_equals_landed": c["events_ingested"] == landed,
                    "dropped_equals_refused": c["events_dropped"] == refused,
                    "delivery": _summary(t, ev, rigs)}
        finally:
            t.close()
    if name == "drop_oldest":
        t = _rig({"num_shards": 1, "ring_buffer_capacity": 1024, "backpressure_mode": "DropOldest"})
        try:
            stop, rigs, threads = _load(t, 2, 200_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            c = t.counters()
            js = t.stats_json()
            t.shutdown(5)
            ev = t.delivery()
            landed = sum(r["landed"] for r in truth)
            received = sum(d.distinct for d in ev.producers)
            return {"producers": truth, "counters_before_shutdown": c, "stats_json": js,
                    "landed": landed, "received_after_shutdown": received,
                    "evicted_or_lost": landed - received,
                    "evictions_in_dropped": c["events_dropped"],
                    "delivery": _summary(t, ev, rigs)}
        finally:
            t.close()
    if name == "flush_quiescent":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            stop, rigs, threads = _load(t, 2, 100_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            claim = t.flush(30)
            ev1 = t.delivery()
            time.sleep(1.0)
            claim2 = t.flush(30)
            ev2 = t.delivery()
            t.shutdown(5)
            ev3 = t.delivery()
            return {"producers": truth, "flush_rc": claim.details["rc"], "flush_waited_s": claim.waited_s,
                    "flush1": ev1.flushes[0].as_dict(),
                    "flush2_after_1s": ev2.flushes[1].as_dict(), "flush2_waited_s": claim2.waited_s,
                    "after_shutdown": _summary(t, ev3, rigs)}
        finally:
            t.close()
    if name == "flush_under_load":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            stop, rigs, threads = _load(t, 2, -1)
            [x.start() for x in threads]
            time.sleep(0.5)
            claims = []
            for _ in range(3):
                claims.append(t.flush(30))
                time.sleep(0.2)
            stop[0] = 1
            [x.join() for x in threads]
            t.shutdown(5)
            ev = t.delivery()
            return {"flushes": [dict(f.as_dict(), waited_s=c.waited_s, rc=c.details["rc"])
                                for f, c in zip(ev.flushes, claims)],
                    "after_shutdown": _summary(t, ev, rigs)}
        finally:
            t.close()
    if name == "shutdown_without_flush":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            stop, rigs, threads = _load(t, 2, 100_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            c = t.counters()
            claim = t.shutdown(5)
            ev = t.delivery()
            return {"producers": truth, "counters_before_shutdown": c, "shutdown_rc": claim.details["rc"],
                    "shutdown_s": claim.duration_s, "delivery": _summary(t, ev, rigs),
                    "lost": sum(r["landed"] for r in truth) - sum(d.distinct for d in ev.producers)}
        finally:
            t.close()
    if name == "shutdown_redis_frozen":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            stop, rigs, threads = _load(t, 2, 100_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            c = t.counters()
            t.arm_fault({"kind": "stall_adapter", "for_s": 0})
            claim = t.shutdown(5)      # bounded: grace + 10 s
            t.release_faults()         # SIGCONT: does the pending shutdown finish, and deliver?
            late = t.join_native_calls(60)
            ev = t.delivery()
            return {"producers": truth, "counters_before_shutdown": c,
                    "shutdown_returned": claim.details["returned"], "shutdown_rc": claim.details["rc"],
                    "shutdown_waited_s": round(claim.duration_s, 2), "after_sigcont": late,
                    "delivery": _summary(t, ev, rigs),
                    "lost": sum(r["landed"] for r in truth) - sum(d.distinct for d in ev.producers)}
        finally:
            t.close()
    if name == "flush_redis_frozen":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            stop, rigs, threads = _load(t, 2, 100_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            t.arm_fault({"kind": "stall_adapter", "for_s": 0})
            claim = t.flush(20)
            t.release_faults()
            late = t.join_native_calls(60)
            t.shutdown(5)
            ev = t.delivery()
            return {"producers": truth, "flush_returned_while_frozen": not claim.timed_out,
                    "flush_rc": claim.details["rc"], "flush_waited_s": round(claim.waited_s, 2),
                    "after_sigcont": late, "flush": ev.flushes[0].as_dict(),
                    "after_shutdown": _summary(t, ev, rigs)}
        finally:
            t.close()
    if name == "kill_adapter_restart":
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16, "redis": {"durable": True}})
        try:
            stop, rigs, threads = _load(t, 2, 300_000)
            [x.start() for x in threads]
            time.sleep(0.05)
            armed = t.arm_fault({"kind": "kill_adapter", "restart_after_s": 1.0})
            [x.join() for x in threads]
            time.sleep(1.5)
            truth = _truth(rigs)
            c = t.counters()
            claim = t.shutdown(5)
            late = t.join_native_calls(30)
            ev = t.delivery()
            return {"armed": armed, "producers": truth, "counters_before_shutdown": c,
                    "shutdown_returned": claim.details["returned"], "shutdown_rc": claim.details["rc"],
                    "shutdown_waited_s": round(claim.duration_s, 2), "after": late,
                    "delivery": _summary(t, ev, rigs),
                    "lost": sum(r["landed"] for r in truth) - sum(d.distinct for d in ev.producers)}
        finally:
            t.close()
    if name == "redis_frozen_counters":
        # Are events that net-mesh fails to write (Redis frozen past its 1 s
        # command timeout) counted anywhere, while the counters are readable?
        t = _rig({"num_shards": 4, "ring_buffer_capacity": 1 << 16})
        try:
            t.arm_fault({"kind": "stall_adapter", "for_s": 0})
            stop, rigs, threads = _load(t, 2, 100_000)
            [x.start() for x in threads]
            [x.join() for x in threads]
            truth = _truth(rigs)
            c0 = t.counters()
            time.sleep(4.0)
            c1 = t.counters()
            t.release_faults()
            claim = t.flush(30)
            time.sleep(3.0)
            c2 = t.counters()
            ev = t.delivery()            # before shutdown: counters still readable
            received = sum(d.distinct for d in ev.producers)
            t.shutdown(5)
            ev2 = t.delivery()
            return {"producers": truth, "counters_frozen_at_0s": c0, "counters_frozen_at_4s": c1,
                    "counters_3s_after_sigcont": c2, "flush_rc": claim.details["rc"],
                    "received_before_shutdown": received,
                    "lost_uncounted_before_shutdown": sum(r["landed"] for r in truth) - received
                    - c2["events_dropped"],
                    "received_after_shutdown": sum(d.distinct for d in ev2.producers)}
        finally:
            t.close()
    raise SystemExit(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")


def main(argv):
    if argv[:1] == ["--one"]:
        print(json.dumps(run(argv[1]), default=int))
        return 0
    names = argv or list(EXPERIMENTS)
    for name in names:
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, check=False,
                                  text=True, timeout=180)
            out = proc.stdout.strip().splitlines()
            line = out[-1] if out else f"(no output; rc {proc.returncode}: {proc.stderr.strip()[-400:]})"
        except subprocess.TimeoutExpired:
            line = "(timed out after 180 s)"
        print(f"{name}: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
