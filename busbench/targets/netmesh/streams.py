"""Delivery evidence from net-mesh's Redis streams (the witness).

net-mesh's Redis adapter appends each shard's events to ``<prefix>:shard:<n>``
as ``{"d": '{"r":<payload>,"t":<ts>,"s":<shard>}', "dedup_id": ...}``. busbench's
payload is a JSON string of 32 hex digits at a fixed offset of ``d``
(kernels.py), so reading the streams back gives, per producer, what really
reached Redis, independent of net-mesh's counters:

* received entries, distinct events, duplicates (a seen-bitmap per producer,
  sized by the seqs it sent), order violations (a seq not above the
  producer's previous one in the same shard), events received although the
  producer was told they were refused (exact for single calls), events of
  partly refused batch calls received (which ones landed is unknown there);
* a checksum: sum mod 2**64 of ``seq_mix(seq)`` over distinct received events
  outside partly refused batches, to compare with the producer's sum over the
  events it knows were accepted (equal sums: the same set);
* per flush: of the events whose ingest call had returned before flush was
  called, how many were in Redis when flush returned (the stream's last id
  was read right after the return; entries are read up to that id).

Reading is bounded: ``XRANGE ... COUNT`` in batches, up to each stream's last
id when reading starts, within a time budget (what is left of the run's
deadline, see adapted.py); memory per producer is its seen-bitmap (1 bit per
seq it sent, capped) plus fixed tallies and one batch. A read cut short by the
budget says so (``incomplete``: "witness read-back incomplete: N of M entries
read"), and the checks that need the witness are then not evaluable.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import kernels as NK

READ_BATCH = 10_000
READ_BUDGET_S = 300.0
MAX_SEEN_BYTES = 1 << 30
PAYLOAD_PREFIX = b'{"r":"'
HEX_AT = len(PAYLOAD_PREFIX)


def stream_key(prefix: str, shard: int) -> str:
    return f"{prefix}:shard:{shard}"


def parse_id(entry_id) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class FlushMark:
    """What busbench noted around one flush call (target.flush fills it)."""
    watermarks: np.ndarray          # per producer: seqs below had their ingest call return before the call
    landed: np.ndarray              # per producer: events that landed among them
    tips: dict | None = None        # shard -> last stream id at flush return (None: unknown)
    tip_read_s: float = 0.0         # how long reading the tips took after the return


@dataclass(frozen=True)
class ProducerDelivery:
    producer: int
    received: int
    distinct: int
    duplicates: int
    order_violations: int
    refused_delivered: int
    ambiguous_received: int
    checksum: int
    min_seq: int | None
    max_seq: int | None
    beyond_seen_bitmap: int        # receipts whose duplicate check the bitmap could not cover
    never_sent: int                # seqs the producer never sent

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FlushDelivery:
    index: int
    observable: bool               # False: the stream tips could not be read at flush return
    landed_before: tuple           # per producer
    in_redis_at_return: tuple      # per producer
    tip_read_s: float

    @property
    def missing_at_return(self) -> tuple:
        return tuple(a - b for a, b in zip(self.landed_before, self.in_redis_at_return))

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["missing_at_return"] = self.missing_at_return
        return d


@dataclass(frozen=True)
class StreamEvidence:
    producers: tuple               # ProducerDelivery per producer
    flushes: tuple                 # FlushDelivery per flush
    entries: int                   # stream entries read
    malformed: int                 # entries that are not busbench payloads
    per_shard: tuple               # entries read per shard
    complete: bool                 # every stream read to its end within the budget
    duplicates_exact: bool         # the seen-bitmaps covered every producer's seqs
    read_s: float
    notes: tuple = field(default_factory=tuple)
    received_by_shard: tuple = ()  # per shard, per producer: entries received (duplicates included)
    last_seq_by_shard: tuple = ()  # per shard, per producer: highest seq received (-1: none)
    expected: int | None = None    # entries the streams held when reading began (XLEN)

    @property
    def incomplete(self) -> str | None:
        """Why the witness's tallies are partial (and the checks reading them not
        evaluable), or None when every stream was read to its end."""
        if self.complete:
            return None
        of = f" of {self.expected:,}" if self.expected is not None else ""
        return f"witness read-back incomplete: {self.entries:,}{of} entries read"

    def as_dict(self) -> dict:
        return {"producers": [p.as_dict() for p in self.producers],
                "flushes": [f.as_dict() for f in self.flushes],
                "entries": self.entries, "malformed": self.malformed,
                "per_shard": list(self.per_shard), "complete": self.complete,
                "duplicates_exact": self.duplicates_exact, "read_s": self.read_s,
                "notes": list(self.notes), "expected": self.expected,
                "incomplete": self.incomplete}


def _seen_words(next_seq: np.ndarray, max_bytes: int) -> tuple[int, bool]:
    want = int((int(next_seq.max(initial=0)) + 63) // 64) if next_seq.size else 0
    cap = max(1, max_bytes // 8 // max(1, next_seq.size))
    return max(1, min(want, cap)), want <= cap


def read_streams(client, prefix: str, shards: int, next_seq, refused=None, ambiguous=None,
                 sender_words: int = 0, flush_marks=(), batch: int = READ_BATCH,
                 budget_s: float = READ_BUDGET_S, max_seen_bytes: int = MAX_SEEN_BYTES,
                 until: dict | None = None) -> StreamEvidence:
    """Read every shard's stream and account it per producer (see the module doc).

    ``next_seq``: per producer, the first seq it never sent. ``refused`` /
    ``ambiguous``: flat per-producer bitmaps of ``sender_words`` int64 words each,
    as the producer kernels wrote them (None: not known).
    """
    start = time.monotonic()
    next_seq = np.ascontiguousarray(next_seq, dtype=np.int64)
    producers = int(next_seq.size)
    seen_words, exact = _seen_words(next_seq, max_seen_bytes)
    seen = np.zeros(producers * seen_words, np.int64)
    if refused is None or ambiguous is None or sender_words <= 0:
        refused = ambiguous = np.zeros(1, np.int64)
        sender_words = 0
    out = np.zeros((producers, NK.E_LEN), np.int64)
    out[:, NK.E_MIN_SEQ] = NK.NO_SEQ
    out[:, NK.E_MAX_SEQ] = NK.NO_SEQ
    last_seq = np.full(shards * producers, NK.NO_SEQ, np.int64)
    marks = np.zeros((len(flush_marks), producers), np.int64)
    got = np.zeros((len(flush_marks), producers), np.int64)
    for f, mark in enumerate(flush_marks):
        marks[f, :] = mark.watermarks
    entries = malformed = 0
    per_shard = []
    complete = True
    expected = 0
    for shard in range(shards):           # M of "N of M entries read": what is there now
        expected += int(client.xlen(stream_key(prefix, shard)))
    notes = []
    by_shard = []
    for shard in range(shards):
        key = stream_key(prefix, shard)
        received_before = out[:, NK.E_RECEIVED].copy()
        by_shard.append(received_before)     # replaced by this shard's counts below
        tail = client.xrevrange(key, "+", "-", count=1)
        per_shard.append(0)
        if not tail:
            by_shard[shard] = np.zeros(producers, np.int64)
            continue
        end_id = tail[0][0]
        if until is not None and until.get(shard) is not None \
                and parse_id(until[shard]) < parse_id(end_id):
            end_id = until[shard]        # read only what was there at that moment
        end = parse_id(end_id)
        tips = [None if m.tips is None else m.tips.get(shard) for m in flush_marks]
        tip_ids = [parse_id(t) if t is not None else None for t in tips]
        lower = "-"
        max_rounds = int(client.xlen(key)) // batch + 2
        for _ in range(max_rounds):
            if time.monotonic() - start > budget_s:
                complete = False
                notes.append(f"stream {key}: read budget of {budget_s:.3g} s (the run's deadline) "
                             f"spent before its end")
                break
            chunk = client.xrange(key, lower, end_id, count=batch)
            if not chunk:
                break
            hexes, ids = [], []
            for entry_id, fields in chunk:
                d = fields.get(b"d", b"")
                if d[:HEX_AT] == PAYLOAD_PREFIX and d[HEX_AT + NK.HEX_DIGITS:HEX_AT + NK.HEX_DIGITS + 1] == b'"':
                    hexes.append(d[HEX_AT:HEX_AT + NK.HEX_DIGITS])
                    ids.append(entry_id)
                else:
                    malformed += 1
            entries += len(chunk)
            per_shard[shard] += len(chunk)
            if hexes:
                rows = np.frombuffer(b"".join(hexes), np.uint8).reshape(-1, NK.HEX_DIGITS)
                cuts = np.zeros(len(flush_marks), np.int64)
                parsed = None
                for f, tip in enumerate(tip_ids):
                    if tip is None:
                        continue
                    if parse_id(ids[-1]) <= tip:
                        cuts[f] = len(ids)
                    elif parse_id(ids[0]) > tip:
                        cuts[f] = 0
                    else:
                        parsed = parsed or [parse_id(i) for i in ids]
                        cuts[f] = sum(1 for i in parsed if i <= tip)
                malformed += NK.account_entries(rows, len(hexes), shard, producers, next_seq, last_seq,
                                                seen, seen_words, refused, ambiguous, sender_words,
                                                out, cuts, marks, got)
            last = parse_id(chunk[-1][0])
            if last >= end:
                break
            lower = f"({chunk[-1][0].decode()}"
        else:
            complete = False
            notes.append(f"stream {key}: more entries than XLEN said at the start")
        by_shard[shard] = out[:, NK.E_RECEIVED] - received_before
    rows_out = []
    for p in range(producers):
        o = out[p]
        rows_out.append(ProducerDelivery(
            producer=p, received=int(o[NK.E_RECEIVED]), distinct=int(o[NK.E_DISTINCT]),
            duplicates=int(o[NK.E_DUPLICATES]), order_violations=int(o[NK.E_ORDER]),
            refused_delivered=int(o[NK.E_REFUSED_DELIVERED]),
            ambiguous_received=int(o[NK.E_AMBIG_RECEIVED]), checksum=int(o[NK.E_CHECKSUM]),
            min_seq=None if o[NK.E_MIN_SEQ] == NK.NO_SEQ else int(o[NK.E_MIN_SEQ]),
            max_seq=None if o[NK.E_MAX_SEQ] == NK.NO_SEQ else int(o[NK.E_MAX_SEQ]),
            beyond_seen_bitmap=int(o[NK.E_BEYOND_SEEN]), never_sent=int(o[NK.E_NEVER_SENT])))
    flushes = []
    for f, mark in enumerate(flush_marks):
        observable = mark.tips is not None
        flushes.append(FlushDelivery(
            index=f, observable=observable,
            landed_before=tuple(int(x) for x in mark.landed),
            in_redis_at_return=tuple(int(x) for x in got[f]) if observable else (),
            tip_read_s=mark.tip_read_s))
    if not exact:
        notes.append("seen-bitmaps capped: duplicates beyond them are not counted")
    return StreamEvidence(producers=tuple(rows_out), flushes=tuple(flushes), entries=entries,
                          malformed=malformed, per_shard=tuple(per_shard), complete=complete,
                          duplicates_exact=exact and not out[:, NK.E_BEYOND_SEEN].any(),
                          read_s=time.monotonic() - start, notes=tuple(notes),
                          expected=None if until is not None else expected,
                          received_by_shard=tuple(tuple(int(x) for x in row) for row in by_shard),
                          last_seq_by_shard=tuple(tuple(int(x) for x in last_seq[s * producers:
                                                                                (s + 1) * producers])
                                                  for s in range(shards)))


def stream_tips(client, prefix: str, shards: int) -> dict:
    """Each shard stream's last id, in one round trip (None for an empty stream)."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xrevrange(stream_key(prefix, shard), "+", "-", count=1)
    tips = {}
    for shard, tail in enumerate(pipe.execute()):
        tips[shard] = tail[0][0] if tail else b"0-0"
    return tips


def warm_account_entries() -> None:
    """``account_entries`` with the types ``read_streams`` hands it (rows read from
    bytes: read-only), accounting nothing, so a first run does not compile it while it
    reads the witness back."""
    rows = np.frombuffer(bytes(NK.HEX_DIGITS), np.uint8).reshape(-1, NK.HEX_DIGITS)
    one = np.zeros(1, np.int64)
    out = np.zeros((1, NK.E_LEN), np.int64)
    NK.account_entries(rows, 0, 0, 1, np.ones(1, np.int64), np.full(1, NK.NO_SEQ, np.int64),
                       np.zeros(1, np.int64), 1, one, one, 0, out, np.zeros(0, np.int64),
                       np.zeros((0, 1), np.int64), np.zeros((0, 1), np.int64))
