"""Messages per second into librdkafka: busbench's Numba producer kernels against
confluent-kafka's ``Producer.produce`` in a Python loop (what its users run), and the
kernels' own overhead per message against a bare kernel making the same call.

Both sides produce into librdkafka's mock cluster (one broker, 4 partitions, a fresh
cluster per measurement, ``queue.buffering.max.messages`` above the message count so
nothing is refused), partition = message index mod 4, 50-byte payloads:

* kernels: ``KafkaTarget.produce`` (busbench's one load loop, ``load.foreign.produce_ccall``:
  pacing, shard choice, payload encoding, tallies, the gate) calling ``rd_kafka_produce``
  by address as ``kernels.call_spec`` describes it, with busbench's
  delivery-report ``@cfunc`` set and served by the target's poll thread;
* Python: ``confluent_kafka.Producer.produce(topic, value, partition=...)`` in a
  ``for`` loop per thread, one prebuilt ``bytes`` value (no encoding: this favours the
  Python side), with an ``on_delivery`` callback counting reports and ``poll(0)`` every
  1,000 messages, as confluent-kafka's documentation has its users do (the kernels'
  reports go to busbench's ``@cfunc`` on the target's poll thread);
* bare: ``kernels.bare_produce``: the same ``rd_kafka_produce`` call in a jitted loop
  and nothing else (same flags, size and partition sequence; one prebuilt payload),
  alternating with busbench's kernel in one target whose mock broker is down (each
  call then only enqueues, and no broker thread competes for the cores).

Timed: from the start of the producers until the last returns (messages handed to
librdkafka, not delivered: a flush follows, untimed). Rounds interleave the sides
(A B B A ...); each figure is the median over rounds, the ratio is paired per round and
reported with its spread (min..max over rounds) as its resolution.

Run: nice python benchmarks/bench_kafka.py [--messages 200000] [--rounds 7] [--overhead-rounds 31]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from busbench.load import kernels as LK  # noqa: E402
from busbench.native import text_payload as PL  # noqa: E402
from busbench.targets.kafka import kernels as KK  # noqa: E402
from busbench.targets.kafka.target import KafkaConfig, KafkaTarget  # noqa: E402

PARTITIONS = 4


def _target(producers: int, messages: int) -> KafkaTarget:
    t = KafkaTarget(KafkaConfig(partitions=PARTITIONS, capacity=1 << (messages * 2).bit_length(),
                                producers=producers, shutdown="destroy"))
    t.prepare()
    t.start()
    return t


def _params(p: int, n: int) -> np.ndarray:
    params = np.zeros(LK.P_LEN, np.int64)
    params[LK.P_BATCH] = 64
    params[LK.P_MAX_EVENTS] = n
    params[LK.P_SHARDS] = PARTITIONS
    params[LK.P_KEYS] = LK.ROUND_ROBIN
    params[LK.P_PRODUCER] = p
    return params


def run_kernels(producers: int, messages: int) -> float:
    t = _target(producers, messages)
    try:
        share = messages // producers
        jobs = []
        for p in range(producers):
            pstate = np.zeros(LK.S_LEN, np.int64)
            by_shard = np.zeros(2 * PARTITIONS, np.int64)
            buffers = [np.zeros(64, np.int64) for _ in range(4)]
            jobs.append((p, _params(p, share), pstate, by_shard, buffers))
        threads = [threading.Thread(target=t.produce, args=(p, params, pstate, by_shard, np.ones(PARTITIONS),
                                                            np.zeros(16, np.int64), buffers))
                   for p, params, pstate, by_shard, buffers in jobs]
        elapsed = _run_all(threads)
        landed = sum(int(j[2][LK.S_LANDED]) for j in jobs)
        assert landed == share * producers, f"kernels: {landed} landed of {share * producers}"
        t.flush(30.0)
        return landed / elapsed
    finally:
        t.close()


def _run_all(threads) -> float:
    """Start every thread, join them all: the seconds it took."""
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - start


def run_python(producers: int, messages: int) -> float:
    from confluent_kafka import Producer

    t = _target(1, messages)
    try:
        reports = [0]

        def on_delivery(err, msg):
            reports[0] += 1

        producer = Producer({"bootstrap.servers": t.bootstrap, "log_level": 0,
                             "queue.buffering.max.messages": t.capacity, "on_delivery": on_delivery})
        share = messages // producers
        value = bytes(PL.TEMPLATE)
        topic = t.topic

        def loop(produce=producer.produce, poll=producer.poll):
            for i in range(share):
                produce(topic, value, partition=i % PARTITIONS)
                if i % 1000 == 999:
                    poll(0)

        threads = [threading.Thread(target=loop) for _ in range(producers)]
        elapsed = _run_all(threads)
        left = producer.flush(30.0)
        assert left == 0 and reports[0] == share * producers, f"python: {left} messages not delivered"
        del producer, threads               # its handle is destroyed before the cluster
        return share * producers / elapsed
    finally:
        t.close()


def overhead_rounds(messages: int, rounds: int) -> tuple[list, list]:
    """(bare, busbench's kernel) ns per message in one target whose broker is down, so
    that each call only enqueues and no broker thread competes for the 2 cores; the two
    alternate in chunks of ``messages`` (A B B A ...), one producer."""
    t = _target(1, 2 * messages * rounds)
    try:
        t.lib.cdll.rd_kafka_mock_broker_set_down(t.mock, 1)
        payloads = PL.template_array(1)
        call = (t.rkt, t.lib.addresses["rd_kafka_produce"], t.call.args[2].value)
        KK.bare_produce(*call, PARTITIONS, 1, payloads)           # compiled before timing
        pstate = np.zeros(LK.S_LEN, np.int64)
        buffers = [np.zeros(64, np.int64) for _ in range(4)]
        by_shard = np.zeros(2 * PARTITIONS, np.int64)

        def bare() -> float:
            start = time.perf_counter_ns()
            ok = KK.bare_produce(*call, PARTITIONS, messages, payloads)
            assert ok == messages
            return (time.perf_counter_ns() - start) / messages

        def full() -> float:
            before = int(pstate[LK.S_LANDED])
            start = time.perf_counter_ns()
            t.produce(0, _params(0, messages), pstate, by_shard, np.ones(PARTITIONS),
                      np.zeros(16, np.int64), buffers)
            elapsed = (time.perf_counter_ns() - start) / messages
            assert int(pstate[LK.S_LANDED]) - before == messages
            return elapsed

        bares, fulls = [], []
        for r in range(rounds):
            if r % 2 == 0:
                bares.append(bare())
                fulls.append(full())
            else:
                fulls.append(full())
                bares.append(bare())
        return bares, fulls
    finally:
        t.close()


def _spread(values) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--overhead-rounds", type=int, default=31,
                    help="chunks of --messages/10 each side for the overhead (more, shorter: less drift)")
    args = ap.parse_args()
    _target(1, 10).close()                               # compile or load the kernels first
    print(f"{args.messages:,} messages per measurement, {args.rounds} rounds, {os.cpu_count()} CPUs")
    for producers in (1, 2):
        kern, py, ratio = [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                k, p = run_kernels(producers, args.messages), run_python(producers, args.messages)
            else:
                p, k = run_python(producers, args.messages), run_kernels(producers, args.messages)
            kern.append(k)
            py.append(p)
            ratio.append(k / p)
        print(f"{producers} producer(s): kernels {statistics.median(kern) / 1e6:.3f} M msg/s, "
              f"Python loop {statistics.median(py) / 1e6:.3f} M msg/s; kernels / Python "
              f"{_spread(ratio)} (goal >= 2)")
    bare, full = overhead_rounds(args.messages // 10, args.overhead_rounds)
    over = [100.0 * (f - b) / b for b, f in zip(bare, full)]
    print(f"per message (broker down: calls only enqueue): bare call {statistics.median(bare):.0f} ns, "
          f"busbench's kernel {statistics.median(full):.0f} ns; overhead {_spread(over)} % of the call "
          f"(goal <= 10 %)")

if __name__ == "__main__":
    main()
