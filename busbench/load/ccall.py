"""How a producer calls a bus's C ingest function by address: ``CallSpec`` -> int64 array.

busbench's one producer loop (``load.kernels.produce``) drives a bus with a C
ABI through a description of its ingest call held in an int64 array
(``calls``), so one cached kernel calls any library: the function's address,
its arguments and the meaning of its return codes are runtime values. A
target builds that array with ``CallSpec(...).to_array()`` once it has the
library loaded and its handle made, and hands it to the loop; it writes no
loop of its own.

Example: librdkafka's ``int rd_kafka_produce(rd_kafka_topic_t *rkt, int32_t
partition, int msgflags, void *payload, size_t len, const void *key, size_t
keylen, void *msg_opaque)``, which returns -1 on failure with the reason in
``rd_kafka_last_error()`` (-184 ``QUEUE_FULL``: refused)::

    spec = CallSpec(
        address=addr_of_rd_kafka_produce,
        args=(Arg.const(rkt), Arg.SHARD, Arg.const(RD_KAFKA_MSG_F_COPY),
              Arg.PTR, Arg.LEN, Arg.const(0), Arg.const(0), Arg.VALUE),
        returns=32, ok=(0,), refused=(-184,), closed=(-172,),
        error_code=ErrorCode(address=addr_of_rd_kafka_last_error, when=-1),
        undeclared="stop")
    calls = spec.to_array()

What the loop does with each part:

* ``args``: up to ``MAX_ARGS`` (8) arguments, each one integer register on
  x86-64 System V and AArch64 (``native.ffi``: a pointer, a ``size_t``, an ``int``
  all travel as int64). A kind per argument:

  ========================  ================================================================
  ``Arg.const(v)``          the int64 ``v`` (a handle, flags, 0 for NULL)
  ``Arg.PTR``               ``const uint8_t*``: this event's payload (valid during the call)
  ``Arg.LEN``               ``size_t``: this event's payload length
  ``Arg.SHARD``             this event's shard (busbench's key distribution chose it):
                            a partition number
  ``Arg.VALUE``             this event's int64 ``producer << 40 | seq`` (an opaque per event)
  ``Arg.PTRS``              batch: ``const uint8_t *const *``, the n payload pointers
  ``Arg.LENS``              batch: ``const size_t*``, the n payload lengths
  ``Arg.N``                 batch: ``size_t``, how many events
  ``Arg.SHARDS``            batch: ``const int64_t*``, the n events' shards
  ``Arg.VALUES``            batch: ``const int64_t*``, the n events' values
  ========================  ================================================================

  Per-event kinds make a *single* call (one call per event); batch kinds a
  *batch* call (``batch=True``: one call per batch of events).
* ``returns``: the C return width, 32 (``int``) or 64 (``ssize_t``, ``int64_t``);
  read at that width and sign-extended.
* ``error_code``: when the return equals ``when``, the loop calls
  ``address`` (no arguments, returning an ``int``, or 64 bits with ``bits=64``)
  and classifies *its* answer instead (errno-style APIs).
* ``ok`` / ``refused`` / ``closed``: up to ``MAX_CODES`` (8) codes each.
  A single call: ``ok`` the event was taken, ``refused`` not taken now (the
  load's retry policy offers it again or gives it up; the loop backs off),
  ``closed`` the bus is shut down (this and the batch's remaining events are
  turned away; the producer stops). A batch call returns how many it took
  (0..n), or a negative code: ``closed`` (the batch turned away), ``refused``
  (the whole batch refused). ``batch_count`` says which were taken: the first
  ones (``"prefix"``: the rest are refused) or ``"unknown"`` (which ones is not
  known: the batch's events are then "ambiguous", tallied apart and never
  offered again).
* ``undeclared``: any other code: ``"stop"`` stops the producer (the target
  reports the code, see ``xstate``), ``"count"`` counts the event(s) as errors
  and goes on. Either way the code and events are tallied in the producer's
  ``xstate`` (``load.kernels.X_*``).
* ``payload``: the bytes busbench writes per event: ``"json"`` (50 bytes of
  fixed-width JSON, ``native.text_payload``) or ``"hex"`` (34 bytes, a JSON string
  of 32 hex digits, ``native.hex_payload``); both name producer, seq and intended
  send time so a witness reads them back.

``to_array()`` validates (``ValueError`` naming what is wrong) and returns the
array; the layout below is an implementation detail of ``load.kernels``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

MAX_ARGS = 8
MAX_CODES = 8

# --- argument kinds (runtime values in the array) -----------------------------------------
(A_CONST, A_PTR, A_LEN, A_SHARD, A_VALUE, A_PTRS, A_LENS, A_N, A_SHARDS, A_VALUES) = range(10)
PER_EVENT_KINDS = frozenset({A_PTR, A_LEN, A_SHARD, A_VALUE})
BATCH_KINDS = frozenset({A_PTRS, A_LENS, A_N, A_SHARDS, A_VALUES})
KIND_NAMES = {A_CONST: "const", A_PTR: "ptr", A_LEN: "len", A_SHARD: "shard", A_VALUE: "value",
              A_PTRS: "ptrs", A_LENS: "lens", A_N: "n", A_SHARDS: "shards", A_VALUES: "values"}

# --- payload writers ----------------------------------------------------------------------
PAYLOAD_JSON, PAYLOAD_HEX = 0, 1
PAYLOADS = {"json": PAYLOAD_JSON, "hex": PAYLOAD_HEX}

# --- what a batch call's count says ----------------------------------------------------------
COUNT_PREFIX, COUNT_UNKNOWN = 0, 1
# --- what an undeclared code does -----------------------------------------------------------
UNDECLARED_STOP, UNDECLARED_COUNT = 0, 1

# --- the int64 array ---------------------------------------------------------------------
(C_BATCH, C_ADDR, C_ARITY, C_BITS, C_ERR_ADDR, C_ERR_WHEN, C_ERR_BITS, C_BATCH_COUNT,
 C_UNDECLARED, C_PAYLOAD, C_N_OK, C_N_REFUSED, C_N_CLOSED) = range(13)
C_KINDS = 13                          # MAX_ARGS argument kinds
C_VALUES = C_KINDS + MAX_ARGS         # MAX_ARGS constants (for A_CONST)
C_CODES = C_VALUES + MAX_ARGS         # ok, refused, closed: MAX_CODES slots each
C_LEN = C_CODES + 3 * MAX_CODES
CODE_CLASSES = ("ok", "refused", "closed")


@dataclass(frozen=True)
class Arg:
    """One argument of the call: a kind, and a value for ``const``."""
    kind: int
    value: int = 0

    PTR: ClassVar[Arg]
    LEN: ClassVar[Arg]
    SHARD: ClassVar[Arg]
    VALUE: ClassVar[Arg]
    PTRS: ClassVar[Arg]
    LENS: ClassVar[Arg]
    N: ClassVar[Arg]
    SHARDS: ClassVar[Arg]
    VALUES: ClassVar[Arg]

    @staticmethod
    def const(value: int) -> Arg:
        """A constant int64 (a handle, flags, 0 for a NULL pointer)."""
        return Arg(A_CONST, int(value))

    def __str__(self) -> str:
        return f"const({self.value})" if self.kind == A_CONST else KIND_NAMES[self.kind]


Arg.PTR, Arg.LEN, Arg.SHARD, Arg.VALUE = Arg(A_PTR), Arg(A_LEN), Arg(A_SHARD), Arg(A_VALUE)
Arg.PTRS, Arg.LENS, Arg.N = Arg(A_PTRS), Arg(A_LENS), Arg(A_N)
Arg.SHARDS, Arg.VALUES = Arg(A_SHARDS), Arg(A_VALUES)


@dataclass(frozen=True)
class ErrorCode:
    """A function the loop calls for the real code when the call returned ``when``."""
    address: int
    when: int = -1
    bits: Literal[32, 64] = 32


@dataclass(frozen=True)
class CallSpec:
    """A C ingest function and what its answers mean (module docstring)."""
    address: int
    args: tuple[Arg, ...]
    batch: bool = False
    returns: Literal[32, 64] = 32
    ok: tuple[int, ...] = (0,)
    refused: tuple[int, ...] = ()
    closed: tuple[int, ...] = ()
    error_code: ErrorCode | None = None
    batch_count: Literal["prefix", "unknown"] = "prefix"
    undeclared: Literal["stop", "count"] = "stop"
    payload: Literal["json", "hex"] = "json"
    name: str = field(default="ingest", compare=False)

    def problems(self) -> list[str]:
        out = []
        if not self.address:
            out.append(f"{self.name}: address is 0")
        if len(self.args) > MAX_ARGS:
            out.append(f"{self.name}: {len(self.args)} arguments, at most {MAX_ARGS}")
        wrong = BATCH_KINDS if not self.batch else PER_EVENT_KINDS
        for a in self.args:
            if not isinstance(a, Arg):
                out.append(f"{self.name}: argument {a!r} is not an Arg")
            elif a.kind in wrong:
                out.append(f"{self.name}: argument {a} belongs to {'single' if self.batch else 'batch'} "
                           f"calls, and this one has batch={self.batch}")
        if self.returns not in (32, 64):
            out.append(f"{self.name}: returns {self.returns}, expected 32 or 64")
        seen: dict[int, str] = {}
        for cls in CODE_CLASSES:
            codes = getattr(self, cls)
            if len(codes) > MAX_CODES:
                out.append(f"{self.name}: {len(codes)} {cls} codes, at most {MAX_CODES}")
            for code in codes:
                if code in seen:
                    out.append(f"{self.name}: code {code} is both {seen[code]} and {cls}")
                seen[code] = cls
        if self.batch:
            out += [f"{self.name}: a batch call's {cls} code {c} must be negative (0 and above "
                    f"are counts taken)" for cls in ("refused", "closed") for c in getattr(self, cls)
                    if c >= 0]
        elif not self.ok:
            out.append(f"{self.name}: no ok code")
        if self.batch_count not in ("prefix", "unknown"):
            out.append(f"{self.name}: batch_count {self.batch_count!r}, expected prefix or unknown")
        if self.undeclared not in ("stop", "count"):
            out.append(f"{self.name}: undeclared {self.undeclared!r}, expected stop or count")
        if self.payload not in PAYLOADS:
            out.append(f"{self.name}: payload {self.payload!r}, expected one of {sorted(PAYLOADS)}")
        if self.error_code is not None and (not self.error_code.address
                                            or self.error_code.bits not in (32, 64)):
            out.append(f"{self.name}: error_code needs an address and bits 32 or 64")
        return out

    def to_array(self) -> np.ndarray:
        """The int64 array ``load.kernels.produce`` reads; ValueError when inconsistent."""
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        calls = np.zeros(C_LEN, np.int64)
        calls[C_BATCH] = 1 if self.batch else 0
        calls[C_ADDR] = self.address
        calls[C_ARITY] = len(self.args)
        calls[C_BITS] = self.returns
        for i, a in enumerate(self.args):
            calls[C_KINDS + i] = a.kind
            calls[C_VALUES + i] = a.value
        if self.error_code is not None:
            calls[C_ERR_ADDR] = self.error_code.address
            calls[C_ERR_WHEN] = self.error_code.when
            calls[C_ERR_BITS] = self.error_code.bits
        calls[C_BATCH_COUNT] = COUNT_PREFIX if self.batch_count == "prefix" else COUNT_UNKNOWN
        calls[C_UNDECLARED] = UNDECLARED_STOP if self.undeclared == "stop" else UNDECLARED_COUNT
        calls[C_PAYLOAD] = PAYLOADS[self.payload]
        for at, cls in enumerate(CODE_CLASSES):
            codes = getattr(self, cls)
            calls[C_N_OK + at] = len(codes)
            for i, code in enumerate(codes):
                calls[C_CODES + at * MAX_CODES + i] = code
        return calls

    def describe(self) -> str:
        """One line: ``name(args) -> codes``, for logs and errors."""
        codes = ", ".join(f"{cls} {list(getattr(self, cls))}" for cls in CODE_CLASSES
                          if getattr(self, cls))
        extra = f"; on {self.error_code.when} ask the error-code function" if self.error_code else ""
        return f"{self.name}({', '.join(map(str, self.args))}) -> {codes}{extra}"
