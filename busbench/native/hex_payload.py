"""The 34-byte payload busbench hands net-mesh: a JSON string of 32 hex digits.

``"PPPPSSSSSSSSSSSSTTTTTTTTTTTTTTTT"``: producer id (16 bits), sequence number
(48 bits) and a time (64 bits): the intended send time in open loop, the send
time in closed loop. net-mesh stores it verbatim, so the Redis stream entry is
``{"r":"<32 hex>","t":...,"s":<shard>}`` and the witness finds the hex at a
fixed offset (``targets.netmesh.kernels.account_entries``).
"""
from .jit import kernel_inline

SIZE = 34
PRODUCER_DIGITS, SEQ_DIGITS, TIME_DIGITS = 4, 12, 16
HEX_DIGITS = PRODUCER_DIGITS + SEQ_DIGITS + TIME_DIGITS
MAX_PRODUCERS = 1 << (4 * PRODUCER_DIGITS)


@kernel_inline
def put_hex(buf, row, at, value, digits):
    for j in range(digits):
        d = (value >> (4 * (digits - 1 - j))) & 15
        buf[row, at + j] = d + 48 if d < 10 else d + 87


@kernel_inline
def encode(buf, row, producer, seq, t):
    """Write one payload into row ``row`` of a ``(batch, SIZE)`` uint8 buffer."""
    buf[row, 0] = 34        # '"'
    put_hex(buf, row, 1, producer, PRODUCER_DIGITS)
    put_hex(buf, row, 1 + PRODUCER_DIGITS, seq, SEQ_DIGITS)
    put_hex(buf, row, 1 + PRODUCER_DIGITS + SEQ_DIGITS, t, TIME_DIGITS)
    buf[row, SIZE - 1] = 34


def encode_str(producer: int, seq: int, t: int) -> str:
    """The same payload as a Python str (net-mesh's binding takes text)."""
    return f'"{producer:04x}{seq:012x}{t & 0xFFFFFFFFFFFFFFFF:016x}"'
