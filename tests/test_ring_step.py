"""The reference bus's ring push as a step the load loop calls by address (load/ring.py):
the BusState it rebuilds from addresses is the bus's own, field by field."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from busbench.bus.config import BusConfig
from busbench.bus.core import ReferenceBus
from busbench.bus.kernels import BusState
from busbench.load import ring


def _state_with_marks() -> BusState:
    """A real bus's state, each array's first element set to its field's index + 1000."""
    state = ReferenceBus(BusConfig(shards=2, capacity=64, producers=1, adapter="verify")).state
    for k, a in enumerate(state):
        a.reshape(-1)[0] = 1000 + k
    return state


def _reader():
    """A jitted function returning (first element, size) of every field of the BusState
    ``ring.bus_state`` rebuilds (BusState's 2-D fields included)."""
    fields = ", ".join(f"st.{name}.reshape(-1)[0], st.{name}.size" for name in BusState._fields)
    namespace = {"bus_state": ring.bus_state}
    exec(f"def read(at):\n    st = bus_state(at)\n    return ({fields},)\n", namespace)   # noqa: S102
    return njit(namespace["read"])


@njit
def _write_counter(at, value):
    st = ring.bus_state(at)
    st.counters[0] = value


def test_the_rebuilt_state_is_the_bus_s_own_field_by_field():
    state = _state_with_marks()
    frame = ring.bus_frame(state)
    got = _reader()(frame.ctypes.data)
    want = []
    for k, a in enumerate(state):
        want += [1000 + k, a.size]
    assert list(got) == want
    # the same memory, not a copy: a write through the rebuilt view shows in the bus
    _write_counter(frame.ctypes.data, 77)
    assert state.counters[0] == 77


def test_a_field_of_the_wrong_kind_is_refused():
    state = _state_with_marks()
    bad = state._replace(ring_val=state.ring_val.astype(np.int32))
    with pytest.raises(TypeError, match="ring_val"):
        ring.bus_frame(bad)
    bad = state._replace(hist_int=state.hist_int.reshape(-1))
    with pytest.raises(TypeError, match="hist_int"):
        ring.bus_frame(bad)
    bad = state._replace(cfg=state.ctrl[::2])
    with pytest.raises(TypeError, match="cfg"):
        ring.bus_frame(bad)
