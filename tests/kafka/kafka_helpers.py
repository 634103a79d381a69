"""Driving a KafkaTarget directly: one producer kernel call with busbench's own tallies."""
from __future__ import annotations

import numpy as np

from busbench.load import kernels as LK
from busbench.targets.kafka.target import KafkaConfig, KafkaTarget


def target(**changes) -> KafkaTarget:
    config = dict(partitions=4, capacity=65536, producers=1)
    config.update(changes)
    t = KafkaTarget(KafkaConfig(**config))
    t.prepare()
    t.start()
    return t


def produce(t: KafkaTarget, events: int, p: int = 0, batch: int = 64, retry: bool = False):
    """Producer ``p`` offers ``events`` round robin over the partitions (closed loop);
    returns (pstate, by_shard)."""
    params = np.zeros(LK.P_LEN, np.int64)
    params[LK.P_BATCH] = batch
    params[LK.P_MAX_EVENTS] = events
    params[LK.P_SHARDS] = t.shards
    params[LK.P_KEYS] = LK.ROUND_ROBIN
    params[LK.P_PRODUCER] = p
    params[LK.P_RETRY_FAILED] = int(retry)
    pstate = np.zeros(LK.S_LEN, np.int64)
    by_shard = np.zeros(2 * t.shards, np.int64)
    by_shard[t.shards:] = -1
    buffers = [np.zeros(batch, np.int64) for _ in range(4)]
    t.produce(p, params, pstate, by_shard, np.ones(t.shards), np.zeros(16, np.int64), buffers)
    return pstate, by_shard
