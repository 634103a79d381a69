"""The reference bus's ring push as the load loop's step (``load.kernels.produce``).

``produce`` calls its target's step by address. For the reference bus that
step is ``_ring_step``, a ``numba.cfunc``: it rebuilds the bus's ``BusState``
from the addresses in the frame (``bus_frame``: address and shape of each of
its arrays, taken when the producer's run starts) and calls
``bus.kernels.ingest_batch``, the bus's own push; after the call is tallied it
tells the verify adapter's bitmaps which events were given up. It is compiled
apart, only by a process that drives the reference bus (``STEP.address``), so
a run against a C bus never compiles the ring.
"""
import numpy as np

from ..bus.config import DROPPED, FAILED, OK, SHUTTING_DOWN
from ..bus.kernels import BusState, ingest_batch, mark_dropped
from ..common.names import (
    INGEST_CLOSED,
    INGEST_FAILED,
    INGEST_OK,
    INGEST_REFUSED,
    INGEST_STRANDED,
)
from ..native.ffi import view
from ..native.jit import LazyCFunc, kernel_inline
from .kernels import (
    F_BATCH,
    F_BUS,
    F_GOT,
    F_LANDED,
    F_MADE,
    F_NOW,
    F_OFFERED,
    F_ORDER,
    F_ORDER_LEN,
    F_SHARD_COUNTS,
    F_SHARD_COUNTS_LEN,
    F_SHARDS,
    F_T_INT,
    F_VALUES,
    F_WRITER,
    FRAME_LEN,
    NOT_LANDED,
    PHASE_SETTLE,
    STEP_SIGNATURE,
    given_up,
    new_frame as loop_frame,
)

#: the two-dimensional arrays of a BusState; every other field is one-dimensional
_TWO_D = ("hist_int", "hist_sent")
#: per field: address, rows, columns (columns 1 for a vector)
BUS_FRAME_LEN = 3 * len(BusState._fields)


def bus_frame(state: BusState) -> np.ndarray:
    """Address and shape of each of ``state``'s arrays, in BusState's order."""
    out = np.zeros(BUS_FRAME_LEN, np.int64)
    for k, (name, a) in enumerate(zip(BusState._fields, state)):
        if a.dtype != np.int64 or not a.flags.c_contiguous or a.ndim != (2 if name in _TWO_D else 1):
            raise TypeError(f"BusState.{name}: a C-contiguous int64 array of "
                            f"{2 if name in _TWO_D else 1} dimensions expected, got {a.dtype} {a.shape}")
        out[3 * k] = a.ctypes.data
        out[3 * k + 1] = a.shape[0]
        out[3 * k + 2] = a.shape[1] if a.ndim == 2 else 1
    return out


@kernel_inline
def bus_state(at):
    """The BusState ``bus_frame`` described, its arrays views of the bus's own
    (tests/test_ring_step.py checks the fields' order)."""
    bf = view(at, (BUS_FRAME_LEN,), np.int64)
    return BusState(
        view(bf[0], (bf[1],), np.int64),   # cfg
        view(bf[3], (bf[4],), np.int64),   # ctrl
        view(bf[6], (bf[7],), np.int64),   # pos
        view(bf[9], (bf[10],), np.int64),   # ring_seq
        view(bf[12], (bf[13],), np.int64),   # ring_val
        view(bf[15], (bf[16],), np.int64),   # ring_t_int
        view(bf[18], (bf[19],), np.int64),   # ring_t_sent
        view(bf[21], (bf[22],), np.int64),   # counters
        view(bf[24], (bf[25],), np.int64),   # stripes
        view(bf[27], (bf[28],), np.int64),   # batch_val
        view(bf[30], (bf[31],), np.int64),   # batch_t_int
        view(bf[33], (bf[34],), np.int64),   # batch_t_sent
        view(bf[36], (bf[37],), np.int64),   # wshard
        view(bf[39], (bf[40],), np.int64),   # v_recv
        view(bf[42], (bf[43],), np.int64),   # v_drop
        view(bf[45], (bf[46],), np.int64),   # v_last
        view(bf[48], (bf[49],), np.int64),   # v_count
        view(bf[51], (bf[52],), np.int64),   # v_sum
        view(bf[54], (bf[55],), np.int64),   # ev_count
        view(bf[57], (bf[58],), np.int64),   # ev_sum
        view(bf[60], (bf[61],), np.int64),   # rj_count
        view(bf[63], (bf[64],), np.int64),   # rj_sum
        view(bf[66], (bf[67],), np.int64),   # v_anomaly
        view(bf[69], (bf[70], bf[71]), np.int64),   # hist_int
        view(bf[72], (bf[73], bf[74]), np.int64),   # hist_sent
        view(bf[75], (bf[76],), np.int64),   # wrk
    )


@kernel_inline
def ring_status(status):
    """The reference bus's status codes as busbench's (names.INGEST_*)."""
    if status == OK:
        return INGEST_OK
    if status == DROPPED:
        return INGEST_REFUSED
    if status == FAILED:
        return INGEST_FAILED
    if status == SHUTTING_DOWN:
        return INGEST_CLOSED
    return INGEST_STRANDED


def _ring_step(at, phase, m, status, again, offered):
    """PHASE_CALL: push events [0, m) into the rings as the frame's writer; the status,
    with the events offered (all, unless the bus was shut down) in the frame.
    PHASE_SETTLE: the events given up go into the verify adapter's dropped bitmaps."""
    frame = view(at, (FRAME_LEN,), np.int64)
    n = frame[F_BATCH]
    values = view(frame[F_VALUES], (n,), np.int64)
    landed = view(frame[F_LANDED], (n,), np.int64)
    if phase == PHASE_SETTLE:
        if given_up(status, again, landed, offered):
            st = bus_state(frame[F_BUS])
            for i in range(offered):
                if landed[i] == NOT_LANDED:
                    mark_dropped(st, values[i])
        return np.int64(0)
    st = bus_state(frame[F_BUS])
    raw, _ = ingest_batch(st, frame[F_WRITER], view(frame[F_SHARDS], (n,), np.int64),
                          values, view(frame[F_T_INT], (n,), np.int64), frame[F_NOW],
                          m, view(frame[F_ORDER], (frame[F_ORDER_LEN],), np.int64),
                          view(frame[F_SHARD_COUNTS], (frame[F_SHARD_COUNTS_LEN],),
                                 np.int64),
                          landed)
    got_status = ring_status(raw)
    frame[F_OFFERED] = 0 if got_status == INGEST_CLOSED else m
    frame[F_GOT] = 0
    frame[F_MADE] = 1
    return got_status


#: the ring push, compiled on first use
STEP = LazyCFunc(STEP_SIGNATURE, _ring_step)


def new_frame(state: BusState, writer: int, order: np.ndarray, shard_counts: np.ndarray) -> tuple:
    """(frame, bus frame) of one ``produce`` run pushing into ``state`` as ``writer``
    (``order``: int64[batch], ``shard_counts``: int64[shards + 1], its scratch); both must
    outlive the run."""
    bus = bus_frame(state)
    frame = loop_frame(STEP.address, foreign=False)
    frame[F_BUS] = bus.ctypes.data
    frame[F_WRITER] = writer
    frame[F_ORDER], frame[F_ORDER_LEN] = order.ctypes.data, order.shape[0]
    frame[F_SHARD_COUNTS], frame[F_SHARD_COUNTS_LEN] = shard_counts.ctypes.data, shard_counts.shape[0]
    return frame, bus
