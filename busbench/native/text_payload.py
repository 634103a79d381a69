"""The payload busbench's producers hand to a bus it did not write.

The reference bus carries an int64 per event (producer << 40 | seq). A foreign
bus carries bytes, and its downstream (Redis, a C sink, a Python callback) is
where busbench reads them back, so the payload must name its producer and
sequence number, and in open loop the intended send time (coordinated
omission). It is fixed-width JSON text:

    {"p":  3,"s":        1234,"t":   12345678901234}

* JSON, because net-mesh's ``net_ingest_raw`` takes "raw JSON" and newer
  releases refuse invalid UTF-8; a JSON object survives any bus that inspects it.
* Fixed width (digits right-aligned, padded with the spaces JSON allows
  before a value; 50 bytes), so a jitted producer writes it
  with a few integer divisions into a preallocated buffer, no allocation, and
  a reader decodes it by position without a JSON parser.
"""
import numpy as np

from .jit import kernel_inline

PRODUCER_DIGITS, SEQ_DIGITS, TIME_DIGITS = 3, 12, 19
TEMPLATE = ('{"p":' + " " * (PRODUCER_DIGITS - 1) + '0,"s":' + " " * (SEQ_DIGITS - 1)
            + '0,"t":' + " " * (TIME_DIGITS - 1) + "0}").encode()
SIZE = len(TEMPLATE)                                   # 50
P_AT = TEMPLATE.index(b'"p":') + 4
S_AT = TEMPLATE.index(b'"s":') + 4
T_AT = TEMPLATE.index(b'"t":') + 4
MAX_PRODUCER = 10 ** PRODUCER_DIGITS - 1
MAX_SEQ = 10 ** SEQ_DIGITS - 1


def template_array(count: int) -> np.ndarray:
    """``count`` payload slots, each pre-filled with the template (uint8, C order)."""
    return np.tile(np.frombuffer(TEMPLATE, np.uint8), count).reshape(count, SIZE).copy()


@kernel_inline
def _digits(buf, row, at, width, value):
    for i in range(width - 1, -1, -1):
        if value == 0 and i < width - 1:
            buf[row, at + i] = 32          # a leading space, not a zero: JSON numbers have none
        else:
            buf[row, at + i] = 48 + value % 10
            value //= 10


@kernel_inline
def encode(buf, row, producer, seq, t_intended):
    """Write one payload into row ``row`` of a ``template_array`` buffer."""
    _digits(buf, row, P_AT, PRODUCER_DIGITS, producer)
    _digits(buf, row, S_AT, SEQ_DIGITS, seq)
    _digits(buf, row, T_AT, TIME_DIGITS, t_intended)


@kernel_inline
def _read(data, at, width):
    value = 0
    digits = 0
    for i in range(width):
        c = data[at + i]
        if c == 32 and digits == 0:
            continue
        if c < 48 or c > 57:
            return -1
        value = value * 10 + (c - 48)
        digits += 1
    return value if digits > 0 else -1


@kernel_inline
def decode(data):
    """(producer, seq, t_intended) of a payload held in a uint8 array; (-1, -1, -1)
    when it is not one of ours."""
    if data.shape[0] != SIZE:
        return -1, -1, -1
    producer = _read(data, P_AT, PRODUCER_DIGITS)
    seq = _read(data, S_AT, SEQ_DIGITS)
    t_intended = _read(data, T_AT, TIME_DIGITS)
    if producer < 0 or seq < 0 or t_intended < 0:
        return -1, -1, -1
    return producer, seq, t_intended


MASK64 = (1 << 64) - 1


def decode_bytes(raw: bytes) -> tuple[int, int, int] | None:
    """Python-side decoder (Redis entries, Python sinks): None when not a busbench payload."""
    if len(raw) != SIZE or raw[:P_AT] != TEMPLATE[:P_AT]:
        return None
    fields = (raw[P_AT:P_AT + PRODUCER_DIGITS], raw[S_AT:S_AT + SEQ_DIGITS],
              raw[T_AT:T_AT + TIME_DIGITS])
    if not all(f.lstrip(b" ").isdigit() for f in fields):
        return None
    return tuple(int(f) for f in fields)


def encode_bytes(producer: int, seq: int, t_intended: int = 0) -> bytes:
    return b'{"p":%3d,"s":%12d,"t":%19d}' % (producer, seq, t_intended)
