"""The fixed-width JSON payload for foreign buses (busbench/native/payload.py)."""
import json

import numpy as np
from numba import njit

from busbench.native import text_payload as P


@njit(cache=True)
def _encode_rows(buf, producer, seq0, t0):
    for row in range(buf.shape[0]):
        P.encode(buf, row, producer, seq0 + row, t0 + row)


@njit(cache=True)
def _decode_row(buf, row):
    return P.decode(buf[row])


def test_jitted_encoding_is_valid_json_that_names_producer_seq_and_time():
    buf = P.template_array(3)
    _encode_rows(buf, 7, 1_000_000, 123_456_789)
    assert json.loads(bytes(P.template_array(1)[0])) == {"p": 0, "s": 0, "t": 0}
    for row in range(3):
        raw = bytes(buf[row])
        assert len(raw) == P.SIZE == 50
        assert json.loads(raw) == {"p": 7, "s": 1_000_000 + row, "t": 123_456_789 + row}
        assert P.decode_bytes(raw) == (7, 1_000_000 + row, 123_456_789 + row)
        assert raw == P.encode_bytes(7, 1_000_000 + row, 123_456_789 + row)


def test_jitted_and_python_decoders_agree_and_refuse_foreign_bytes():
    buf = P.template_array(1)
    _encode_rows(buf, P.MAX_PRODUCER, P.MAX_SEQ, 2**62)
    assert _decode_row(buf, 0) == (P.MAX_PRODUCER, P.MAX_SEQ, 2**62)
    assert P.decode_bytes(bytes(buf[0])) == (P.MAX_PRODUCER, P.MAX_SEQ, 2**62)
    assert P.decode_bytes(b'{"hello": "world"}') is None
    assert P.decode_bytes(P.encode_bytes(1, 2, 3).replace(b"2", b"x")) is None
    assert P.decode_bytes(P.encode_bytes(1, 2, 3).replace(b"  2", b"2  ")) is None
    foreign = np.frombuffer(P.encode_bytes(1, 2, 3).replace(b"2", b"?", 1), np.uint8).copy()
    assert _decode_row(foreign.reshape(1, -1), 0) == (-1, -1, -1)
