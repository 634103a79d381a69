"""The delivery sink: ground truth for a bus busbench did not write.

A bus that can call a function for every batch it delivers is handed busbench's
sink, a C callback compiled by Numba (``C_SINK``, a ``numba.cfunc`` compiled the
first time a c-abi target asks for it: no GIL, no Python on the
path), with the C signature

    void sink(void *ctx, int shard, const uint8_t *const *payloads,
              const size_t *lens, size_t n);

``ctx`` is the pointer busbench gave the bus alongside the callback (the sink's
state below); ``payloads[i]``/``lens[i]`` are the bytes of the i-th delivered
event, readable only during the call. Python buses get the same recording
through ``PythonSink`` (``sink(shard, payloads)``).

What it records, in one int64 array (``SinkState``), per shard and per
(producer, shard) cell, so that shard workers never write the same cache line:

* per cell: events received, a checksum (sum mod 2**64 of ``payload.mix``
  of each received seq: producers sum the same over what the bus accepted, so
  equal counts with unequal sums mean other events came out than went in), the
  highest seq received, duplicates (the same seq twice in a row on the shard)
  and reordered (a seq below the highest already received from that producer
  on that shard: an order violation, or a duplicate of an earlier event);
* per shard: batches and events delivered, foreign payloads (not a busbench
  payload, or a producer busbench did not run);
* events delivered with a shard number outside ``[0, shards)``;
* per shard, a latency histogram (``bus.histogram``) of delivery time minus the
  time the payload carries (its intended send time; in closed loop the send
  time itself): the clock is ``CLOCK_MONOTONIC``, read once per delivered batch.

Per-shard order is only defined when a shard's batches are delivered one at a
time, as a shard worker does; the cells assume it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import carray, types

from ..native import histogram as H
from ..native.atomics import fetch_add
from ..native.clock import monotonic_ns
from ..native.ffi import as_voidptr
from ..native.jit import LazyCFunc, kernel, kernel_inline
from ..native import text_payload as P
from ..native.payload import add_wrap, mix

# header words (one 128-byte block)
(H_LEN, H_PRODUCERS, H_SHARDS, H_SHARD_WORDS, H_BAD_SHARD_EVENTS, H_BAD_SHARD_CALLS,
 H_HIST_ADDR, H_HIST_ROWS, H_LATENCY) = range(9)
HEADER = 16
# per shard block: head, then one cell per producer
SH_BATCHES, SH_EVENTS, SH_FOREIGN = range(3)
SHARD_HEAD = 4
C_RECEIVED, C_CHECKSUM, C_LAST_SEQ, C_DUPLICATES, C_REORDERED = range(5)
CELL = 5
#: above this many shards the sink keeps no latency histograms (270 kB each)
MAX_LATENCY_SHARDS = 256

#: ``void sink(void *ctx, int shard, const uint8_t *const *payloads, const size_t *lens, size_t n)``
SINK_SIGNATURE = types.void(types.voidptr, types.int32, types.voidptr, types.voidptr, types.uintp)
SINK_C_DECLARATION = ("void sink(void *ctx, int shard, const uint8_t *const *payloads, "
                      "const size_t *lens, size_t n)")


@kernel_inline
def _record_event(st, base, producers, data, hist, now):
    producer, seq, t_sent = P.decode(data)
    if producer < 0 or producer >= producers:
        st[base + SH_FOREIGN] += 1
        return
    if st[H_LATENCY] != 0:
        H.record(hist, now - t_sent)
    c = base + SHARD_HEAD + producer * CELL
    st[c + C_RECEIVED] += 1
    st[c + C_CHECKSUM] = add_wrap(st[c + C_CHECKSUM], mix(seq))
    last = st[c + C_LAST_SEQ]
    if seq == last:
        st[c + C_DUPLICATES] += 1
    elif seq < last:
        st[c + C_REORDERED] += 1
    else:
        st[c + C_LAST_SEQ] = seq


@kernel_inline
def _shard_base(st, shard, n):
    """The shard's block, its batch counted; -1 (and counted) for a shard out of range."""
    if shard < 0 or shard >= st[H_SHARDS]:
        fetch_add(st, H_BAD_SHARD_EVENTS, n)
        fetch_add(st, H_BAD_SHARD_CALLS, 1)
        return -1
    base = HEADER + shard * st[H_SHARD_WORDS]
    st[base + SH_BATCHES] += 1
    st[base + SH_EVENTS] += n
    return base


def _c_sink(ctx, shard, payloads, lens, n):
    head = carray(ctx, (HEADER,), np.int64)
    st = carray(ctx, (head[H_LEN],), np.int64)
    count = np.int64(n)
    base = _shard_base(st, np.int64(shard), count)
    if base < 0 or count == 0:
        return
    producers = st[H_PRODUCERS]
    hists = carray(as_voidptr(st[H_HIST_ADDR]), (st[H_HIST_ROWS], H.HIST_LEN), np.int64)
    hist = hists[shard if st[H_LATENCY] != 0 else 0]
    now = monotonic_ns()
    addresses = carray(payloads, (count,), np.int64)
    sizes = carray(lens, (count,), np.int64)
    for i in range(count):
        if addresses[i] == 0:
            st[base + SH_FOREIGN] += 1
            continue
        _record_event(st, base, producers, carray(as_voidptr(addresses[i]), (sizes[i],), np.uint8),
                      hist, now)


#: the C callback a c-abi bus delivers to (``C_SINK.address``), compiled on first use
C_SINK = LazyCFunc(SINK_SIGNATURE, _c_sink, nrt=True)


@kernel
def record_rows(st, hists, shard, rows, foreign):
    """The Python sink's path: ``rows`` holds busbench-sized payloads, one per row;
    ``foreign`` more events of the batch were of another size."""
    n = rows.shape[0]
    base = _shard_base(st, shard, n + foreign)
    if base < 0:
        return
    st[base + SH_FOREIGN] += foreign
    producers = st[H_PRODUCERS]
    hist = hists[shard if st[H_LATENCY] != 0 else 0]
    now = monotonic_ns()
    for i in range(n):
        _record_event(st, base, producers, rows[i], hist, now)


class SinkState:
    """The sink's memory for ``producers`` x ``shards``; hand ``address`` to the bus as ctx.

    The array must outlive every call the bus makes: keep this object alive at
    least until the bus has shut down.
    """

    def __init__(self, producers: int, shards: int, latency: bool = True):
        if producers < 1 or shards < 1:
            raise ValueError("a sink needs at least one producer and one shard")
        self.latency = latency and shards <= MAX_LATENCY_SHARDS
        # without latency, one unused row: the sink's code is the same either way
        self.hists = H.new_histograms(shards if self.latency else 1)
        shard_words = -(-(SHARD_HEAD + producers * CELL) // 16) * 16    # whole 128-byte blocks
        self.producers, self.shards = producers, shards
        self.array = np.zeros(HEADER + shards * shard_words, np.int64)
        self.array[H_LEN] = self.array.size
        self.array[H_PRODUCERS] = producers
        self.array[H_SHARDS] = shards
        self.array[H_SHARD_WORDS] = shard_words
        self.array[H_HIST_ADDR] = self.hists.ctypes.data
        self.array[H_HIST_ROWS] = self.hists.shape[0]
        self.array[H_LATENCY] = int(self.latency)
        for s in range(shards):
            for p in range(producers):
                self.array[self._cell(s, p) + C_LAST_SEQ] = -1

    def _cell(self, shard: int, producer: int) -> int:
        return HEADER + shard * int(self.array[H_SHARD_WORDS]) + SHARD_HEAD + producer * CELL

    @property
    def address(self) -> int:
        return self.array.ctypes.data

    def latency_histogram(self):
        """Delivery latency over every shard (merged), or None when not kept."""
        return H.merge(self.hists) if self.latency else None

    def read(self) -> Delivery:
        a = self.array.copy()
        sw = int(a[H_SHARD_WORDS])
        shape = (self.shards, self.producers)
        cells = np.stack([a[HEADER + s * sw + SHARD_HEAD:HEADER + s * sw + SHARD_HEAD
                            + self.producers * CELL].reshape(self.producers, CELL)
                          for s in range(self.shards)])
        assert cells.shape[:2] == shape
        per_cell = cells[:, :, C_RECEIVED].T          # [producer, shard]
        checksum = [int(np.sum(cells[:, p, C_CHECKSUM].astype(np.uint64), dtype=np.uint64))
                    for p in range(self.producers)]
        heads = [a[HEADER + s * sw:HEADER + s * sw + SHARD_HEAD] for s in range(self.shards)]
        return Delivery(
            received=per_cell.sum(axis=1).tolist(),
            received_per_shard=[int(h[SH_EVENTS]) for h in heads],
            received_per_producer_shard=per_cell.tolist(),
            batches_per_shard=[int(h[SH_BATCHES]) for h in heads],
            checksum=checksum,
            duplicates=cells[:, :, C_DUPLICATES].sum(axis=0).tolist(),
            reordered=cells[:, :, C_REORDERED].sum(axis=0).tolist(),
            foreign=int(sum(int(h[SH_FOREIGN]) for h in heads)),
            bad_shard_events=int(a[H_BAD_SHARD_EVENTS]))


class PythonSink:
    """The sink a Python bus calls: ``sink(shard, payloads)`` with payloads a sequence of bytes.

    Records into a ``SinkState`` with the same jitted code as the C sink, so
    both kinds of bus are judged alike.
    """

    def __init__(self, state: SinkState):
        self.state = state

    def __call__(self, shard: int, payloads) -> None:
        ours = [bytes(p) for p in payloads if len(p) == P.SIZE]
        foreign = len(payloads) - len(ours)
        rows = (np.frombuffer(b"".join(ours), np.uint8).reshape(-1, P.SIZE) if ours
                else np.zeros((0, P.SIZE), np.uint8))
        record_rows(self.state.array, self.state.hists, int(shard), rows, foreign)


@dataclass(frozen=True)
class Delivery:
    """What the sink received: the witness a check compares producers' tallies and counters with."""
    received: list                       # per producer
    received_per_shard: list             # per shard (all events, foreign included)
    received_per_producer_shard: list    # [producer][shard]
    batches_per_shard: list
    checksum: list                       # per producer, sum of seq_mix mod 2**64
    duplicates: list                     # per producer
    reordered: list                      # per producer
    foreign: int
    bad_shard_events: int
    witness: str = "sink"
    details: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.received_per_shard)) + self.bad_shard_events

    def as_dict(self) -> dict:
        return {"witness": self.witness, "received": self.received,
                "received_per_shard": self.received_per_shard,
                "received_per_producer_shard": self.received_per_producer_shard,
                "batches_per_shard": self.batches_per_shard,
                "checksum": [f"{c:016x}" for c in self.checksum],
                "duplicates": self.duplicates, "reordered": self.reordered,
                "foreign": self.foreign, "bad_shard_events": self.bad_shard_events,
                "total": self.total, **self.details}

    def barrier_shortfall(self, landed_at_call: list) -> list[int]:
        """Per producer, how many of the events the bus had accepted when ``flush`` was
        called had not reached the sink when it returned (this Delivery read then).

        A count, not a set: a duplicate could stand in for a missing event, which the
        checksums of ``discrepancies`` show at the end. Events the bus dropped after
        accepting them are in the shortfall: the caller sets it against the bus's count.
        """
        return [max(0, int(want) - got) for got, want in zip(self.received, landed_at_call)]

    def discrepancies(self, landed: list, landed_checksum: list, *, settled: bool,
                      dropped_after_taken: int | None = None) -> list[str]:
        """Where the sink disagrees with what producers saw accepted, one line each.

        ``landed``/``landed_checksum``: per producer, events the bus accepted and
        the sum of their ``seq_mix`` (mod 2**64). ``settled``: the bus has flushed
        or shut down since the last accepted event, so every accepted event should
        have come out. ``dropped_after_taken``: events the bus says it dropped after
        accepting them (evictions, a downstream's rejections), when it says so: the
        accepted events that never came out must then number exactly that many.
        """
        out = []
        missing = [max(0, want - got) for got, want in zip(self.received, landed)]
        for p, (got, want) in enumerate(zip(self.received, landed)):
            if got > want:
                out.append(f"producer {p}: the sink received {got:,} events but the bus accepted "
                           f"only {want:,} ({got - want:,} duplicated or delivered although refused)")
            elif got < want and settled and dropped_after_taken is None:
                out.append(f"producer {p}: the bus accepted {want:,} events but the sink received "
                           f"{got:,} ({want - got:,} missing, and the bus counts no such drop)")
            elif got == want and self.checksum[p] != int(landed_checksum[p]) % (1 << 64):
                out.append(f"producer {p}: the sink received as many events as the bus accepted "
                           f"({got:,}) but not the same ones (checksum {self.checksum[p]:016x} != "
                           f"{int(landed_checksum[p]) % (1 << 64):016x}): a loss hidden by a "
                           f"duplicate, or a payload read after the bus should have copied it")
            if self.duplicates[p]:
                out.append(f"producer {p}: {self.duplicates[p]:,} event(s) delivered twice in a row")
            if self.reordered[p]:
                out.append(f"producer {p}: {self.reordered[p]:,} event(s) delivered out of order "
                           f"within a shard (or duplicates of earlier events)")
        if settled and dropped_after_taken is not None and sum(missing) != dropped_after_taken:
            out.append(f"{sum(missing):,} accepted event(s) never reached the sink, but the bus "
                       f"counts {dropped_after_taken:,} dropped after accepting them")
        if self.foreign:
            out.append(f"{self.foreign:,} delivered payload(s) were not sent by busbench's producers")
        if self.bad_shard_events:
            out.append(f"{self.bad_shard_events:,} event(s) delivered with a shard number outside "
                       f"0..{len(self.received_per_shard) - 1}")
        return out


class SinkEvidence:
    """The evidence a foreign bus with a busbench sink gives (c-abi and python targets):
    what the sink received, its delivery latency, and no ring fill (the bus's rings are
    its own). Expects ``sink_state`` (a SinkState or PythonSink, or None) and ``_open_loop``."""

    def shard_fill(self):
        return None

    def latency_histograms(self):
        """(corrected, uncorrected) delivery latency seen by the sink, or None without one.

        A payload carries one time: the intended send time in open loop (so latency
        from it is corrected for coordinated omission), the send time in closed loop
        (where the two are one). Uncorrected latency is therefore None in open loop.
        """
        if self.sink_state is None or not self.sink_state.latency:
            return None
        corrected = self.sink_state.latency_histogram()
        return corrected, (None if self._open_loop else corrected)

    def delivery(self):
        return self.sink_state.read() if self.sink_state is not None else None


def warm_record_rows() -> None:
    """``record_rows`` with the types a witness hands it (rows read from bytes:
    read-only), on a throwaway state."""
    state = SinkState(1, 1, latency=False)
    rows = np.frombuffer(bytes(P.SIZE), np.uint8).reshape(-1, P.SIZE)
    record_rows(state.array, state.hists, 0, rows, 0)
