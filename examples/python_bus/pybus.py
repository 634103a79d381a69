"""pybus: a small sharded event bus in Python, the example of busbench's python target.

Each shard is a bounded deque guarded by a condition variable and drained by its
own worker thread, which hands batches to the sink busbench gives it. A full
shard refuses the newest event. ``flush`` is a per-shard barrier; ``shutdown``
refuses new events, drains the shards and joins the workers.

``lose_on_shutdown=True`` plants a bug busbench must catch: shutdown then
discards whatever is still queued, counts it nowhere and reports a clean
shutdown. Only a witness of what was delivered (the sink) shows the loss.
"""
from __future__ import annotations

import threading
import time
import zlib
from collections import deque


class _Shard:
    def __init__(self, index: int, capacity: int):
        self.index = index
        self.capacity = capacity
        self.queue: deque = deque()
        self.cond = threading.Condition()
        self.pushed = 0          # events taken, ever
        self.settled = 0         # events delivered (sink returned), ever
        self.thread: threading.Thread | None = None


class PyBus:
    def __init__(self, shards: int = 4, capacity: int = 4096, max_batch: int = 256,
                 per_batch_delay: float = 0.0, lose_on_shutdown: bool = False):
        self.max_batch = max_batch
        self.per_batch_delay = per_batch_delay
        self.lose_on_shutdown = lose_on_shutdown
        self.closed = False
        self.sink = None
        self.counts = {"events_ingested": 0, "events_dropped": 0, "batches_dispatched": 0,
                       "events_dispatched": 0}
        self.counts_lock = threading.Lock()
        self.shards = [_Shard(i, capacity) for i in range(shards)]
        for shard in self.shards:
            shard.thread = threading.Thread(target=self._work, args=(shard,), daemon=True,
                                            name=f"pybus-shard-{shard.index}")
            shard.thread.start()

    # --- busbench's PythonBus protocol -------------------------------------------------
    def set_sink(self, sink) -> None:
        self.sink = sink

    def ingest_batch(self, payloads) -> list[bool] | int:
        if self.closed:
            return -1
        taken = []
        for payload in payloads:
            shard = self.shards[zlib.crc32(payload) % len(self.shards)]
            with shard.cond:
                ok = len(shard.queue) < shard.capacity and not self.closed
                if ok:
                    shard.queue.append(payload)
                    shard.pushed += 1
                    shard.cond.notify()
            taken.append(ok)
        with self.counts_lock:
            self.counts["events_ingested"] += len(payloads)
            self.counts["events_dropped"] += taken.count(False)
        return taken

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for shard in self.shards:
            with shard.cond:
                target = shard.pushed
                shard.cond.notify_all()
                while shard.settled < target:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    shard.cond.wait(left)
        return True

    def stats(self) -> dict:
        with self.counts_lock:
            return {**self.counts, "shutdown_was_lossy": 0}

    def shutdown(self, grace: float) -> dict:
        started = time.monotonic()
        for shard in self.shards:
            with shard.cond:
                self.closed = True
                if self.lose_on_shutdown:
                    shard.queue.clear()          # the planted bug: silently gone
                shard.cond.notify_all()
        for shard in self.shards:
            shard.thread.join()
        return {"lossy": False, "stranded_events": 0,
                "duration_s": round(time.monotonic() - started, 6)}

    # --- the workers --------------------------------------------------------------------
    def _work(self, shard: _Shard) -> None:
        while True:
            with shard.cond:
                while not shard.queue and not self.closed:
                    shard.cond.wait()
                if not shard.queue:
                    return
                batch = [shard.queue.popleft()
                         for _ in range(min(self.max_batch, len(shard.queue)))]
            if self.per_batch_delay:
                time.sleep(self.per_batch_delay)
            if self.sink is not None:
                self.sink(shard.index, batch)
            with self.counts_lock:
                self.counts["batches_dispatched"] += 1
                self.counts["events_dispatched"] += len(batch)
            with shard.cond:
                shard.settled += len(batch)
                shard.cond.notify_all()


def make_bus(**config) -> PyBus:
    """The factory a scenario names: ``target: {python: {factory: "pybus:make_bus", ...}}``."""
    return PyBus(**config)
