"""The ``python`` target: a bus with a Python API (protocol.PythonBus).

Producers are Python threads: the figures measure the bus's API *including the
GIL*, not the bus alone (say so wherever they are shown). They run
busbench's one producer loop (``load.pyloop``: the same pacing and tallies as
the Numba producers, ``pstate`` and ``xstate`` with the landed checksum), so
checks read both kinds of target alike. A bus with ``set_sink`` is handed a ``sink.PythonSink``
that records into the same memory as the C sink.

Nothing is imported before ``prepare``: ``describe_native`` says what will be.
"""
from __future__ import annotations

import importlib
import numbers
import sys
import time
from pathlib import Path

import numpy as np

from ..bus.layout import COUNTER_NAMES
from ..common import names as N
from ..load import kernels as LK
from ..load import pyloop
from ..native import text_payload as PL
from ..native.payload import SEQ_BITS, SEQ_MASK
from ..scenario.foreign import LOSSY_FLAG_FIELD, PythonTargetSpec
from .base import Capabilities, FlushClaim, ShutdownClaim
from .bounded import CALL_MARGIN_S, call_within
from .errors import TargetError
from .protocol import protocol_problems
from .sink import PythonSink, SinkEvidence, SinkState

class PythonTarget(SinkEvidence):
    """A user's Python bus behind busbench's target interface (targets/base.py)."""
    name = "python"

    def __init__(self, spec: PythonTargetSpec, *, producers: int, shards: int | None = None,
                 base_dir: Path | None = None):
        """``shards``: how many shards the bus delivers from (``bus.shards``): sizes the sink."""
        self.spec = spec
        self.producers = producers
        self.shards = shards
        self.base_dir = base_dir
        self.xstate = [LK.empty_xstate() for _ in range(producers)]
        self.bus = None
        self.sink_state: SinkState | None = None
        self._has_sink = False
        self._prepared = self._started = self._shut_down = False
        self._open_loop = False
        self._shutdown_claim: ShutdownClaim | None = None
        self._stats_keys: frozenset = frozenset()

    @property
    def where(self) -> str:
        return f"target python: {self.spec.factory}"

    # ------------------------------------------------------------------ lifecycle
    def describe_native(self) -> list[str]:
        config = ", ".join(f"{k}={v!r}" for k, v in self.spec.config.items())
        lines = [(f"target python: importing {self.spec.module} and calling "
                 f"{self.spec.attribute}({config})")]
        if self.spec.path:
            lines.append(f"  with {self._path()} first on sys.path")
        lines.append("  producers are Python threads: figures include the GIL")
        return lines

    def _path(self) -> Path:
        path = Path(self.spec.path).expanduser()
        return path if path.is_absolute() else (self.base_dir or Path.cwd()) / path

    def prepare(self, say=lambda message: None) -> None:
        if self._prepared:
            return
        if self.spec.path:
            folder = self._path()
            if not folder.is_dir():
                raise TargetError(f"{self.where}: path {folder} is not a folder")
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        say(f"importing {self.spec.module}")
        factory = self._factory()
        say(f"calling {self.spec.attribute}()")
        try:
            bus = factory(**self.spec.config)
        except Exception as error:  # noqa: BLE001 -- any failure of user code is reported
            raise TargetError(f"{self.where}: calling {self.spec.attribute}(**config) raised "
                              f"{type(error).__name__}: {error}") from None
        problems = protocol_problems(bus)
        if problems:
            raise TargetError(f"{self.where}: {self.spec.attribute}() returned a "
                              f"{type(bus).__name__}, which does not implement busbench's "
                              f"PythonBus protocol (busbench/targets/protocol.py): "
                              f"{'; '.join(problems)}")
        self.bus = bus
        self._has_sink = callable(getattr(bus, "set_sink", None))
        if self._has_sink:
            if not self.shards:
                raise TargetError(f"{self.where}: the bus takes a sink, which needs the bus's "
                                  f"shard count (bus.shards)")
            self.sink_state = SinkState(self.producers, self.shards)
        self._stats_keys = frozenset(self._read_stats())
        pyloop.warm_up()        # the loop's jitted pieces, compiled before any step is timed
        self._prepared = True

    def _factory(self):
        module_name, attribute = self.spec.module, self.spec.attribute
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = error.name or module_name
            hint = "" if self.spec.path else " (add path: to the target to name its folder)"
            raise TargetError(f"{self.where}: cannot import {module_name}: no module named "
                              f"{missing}{hint}") from None
        except Exception as error:  # noqa: BLE001 -- any failure of user code is reported
            raise TargetError(f"{self.where}: importing {module_name} raised "
                              f"{type(error).__name__}: {error}") from None
        target = module
        for part in attribute.split("."):
            if not hasattr(target, part):
                names = [n for n in dir(target) if not n.startswith("_")]
                from ..scenario.errors import closest
                near = closest(part, names)
                raise TargetError(f"{self.where}: {module_name} has no attribute {attribute}"
                                  + (f"; did you mean {near!r}?" if near else ""))
            target = getattr(target, part)
        if not callable(target):
            raise TargetError(f"{self.where}: {module_name}.{attribute} is a "
                              f"{type(target).__name__}, not a callable that makes a bus")
        return target

    def start(self) -> None:
        self.prepare()
        if self._started:
            return
        if self._has_sink:
            try:
                self.bus.set_sink(PythonSink(self.sink_state))
            except Exception as error:  # noqa: BLE001
                raise TargetError(f"{self.where}: set_sink raised {type(error).__name__}: "
                                  f"{error}", exit_code=3) from None
        self._started = True

    # ------------------------------------------------------------------ producers
    def produce(self, p: int, params: np.ndarray, pstate: np.ndarray, zipf_cdf=None, stop=None,
                by_shard=None, events=None) -> int:
        """Run producer ``p`` in the calling (Python) thread until its stop condition.

        busbench's one loop (``load.pyloop``) around this bus's ``ingest_batch``;
        the bus chooses shards (its API takes no key). Raises TargetError (exit 3)
        when the bus raises or answers outside the protocol.
        """
        if not self._started:
            raise RuntimeError("start() the target before producing")
        params[LK.P_PRODUCER] = p     # the payloads name their producer
        self._open_loop |= bool(params[LK.P_OPEN_LOOP])
        ingest = self.bus.ingest_batch
        encode = PL.encode_bytes

        def step(values, t_int, m, landed):
            payloads = [encode(v >> SEQ_BITS, v & SEQ_MASK, t)
                        for v, t in zip(values[:m].tolist(), t_int[:m].tolist())]
            try:
                answer = ingest(payloads)
            except Exception as error:  # noqa: BLE001
                raise TargetError(f"{self.where}: ingest_batch raised "
                                  f"{type(error).__name__}: {error}", exit_code=3) from None
            taken = self._taken(answer, m)
            if taken is None:                   # shut down: turned away
                return N.INGEST_CLOSED, 0, 0, 1
            landed[:m] = taken
            return (N.INGEST_OK if all(taken) else N.INGEST_FAILED), m, 0, 1

        fresh_events, fresh_by_shard, fresh_cdf = pyloop.buffers(int(params[LK.P_BATCH]),
                                                                 int(params[LK.P_SHARDS]))
        if events is None or events[0].shape[0] < int(params[LK.P_BATCH]):
            events = fresh_events
        return pyloop.run(step, params, pstate, self.xstate[p],
                          by_shard if by_shard is not None else fresh_by_shard,
                          zipf_cdf if zipf_cdf is not None else fresh_cdf,
                          stop if stop is not None else np.zeros(16, np.int64), events)

    def _taken(self, answer, n: int) -> list[bool] | None:
        """The protocol's answer as one bool per event; None when the bus is shut down."""
        if isinstance(answer, (bool, np.bool_)):
            pass
        elif isinstance(answer, numbers.Integral):
            count = int(answer)
            if count < 0:
                return None
            if count <= n:
                return [True] * count + [False] * (n - count)
        elif isinstance(answer, (list, tuple, np.ndarray)) and len(answer) == n and all(
                isinstance(a, (bool, np.bool_)) for a in answer):
            return [bool(a) for a in answer]
        raise TargetError(f"{self.where}: ingest_batch of {n} event(s) returned "
                          f"{_show(answer)}; expected a count from 0 to {n}, a list of {n} "
                          f"bools, or a negative number when shut down", exit_code=3)

    def producer_stalling(self, p: int) -> bool:
        return False

    def landed_checksums(self) -> list[int]:
        return [int(x[LK.X_LANDED_SUM]) & PL.MASK64 for x in self.xstate]

    # ------------------------------------------------------------------ cold calls
    def flush(self, timeout_s: float) -> FlushClaim:
        t0 = time.monotonic()
        answer = call_within(lambda: self.bus.flush(timeout_s), timeout_s + CALL_MARGIN_S,
                             f"{self.where}: flush")
        waited = time.monotonic() - t0
        if not isinstance(answer, (bool, np.bool_)):
            raise TargetError(f"{self.where}: flush returned {_show(answer)}; expected True "
                              f"(done) or False (gave up)", exit_code=3)
        return FlushClaim(reached=bool(answer), timed_out=not answer, waited_s=waited)

    def _read_stats(self) -> dict:
        try:
            values = self.bus.stats()
        except Exception as error:  # noqa: BLE001
            raise TargetError(f"{self.where}: stats raised {type(error).__name__}: {error}",
                              exit_code=3) from None
        if not hasattr(values, "items"):
            raise TargetError(f"{self.where}: stats returned {_show(values)}; expected a mapping "
                              f"of counter names to ints", exit_code=3)
        out = {}
        for key, value in values.items():
            if not isinstance(value, numbers.Integral):
                raise TargetError(f"{self.where}: stats()[{key!r}] is {_show(value)}; expected "
                                  f"an int", exit_code=3)
            out[str(key)] = int(value)
        return out

    def stats(self) -> dict:
        return self._read_stats()

    def counters(self) -> dict:
        return {k: v for k, v in self._read_stats().items() if k in COUNTER_NAMES}

    def shutdown(self, grace_s: float) -> ShutdownClaim | None:
        if self._shut_down or not self._started:
            return self._shutdown_claim
        self._shut_down = True
        t0 = time.monotonic()
        report = call_within(lambda: self.bus.shutdown(grace_s), grace_s + CALL_MARGIN_S,
                             f"{self.where}: shutdown")
        duration = time.monotonic() - t0
        flag = self._read_stats().get(LOSSY_FLAG_FIELD)
        if report is None:
            lossy = None if flag is None else bool(flag)
            details = {}
            stranded = abandoned = None
        elif hasattr(report, "items"):
            report = dict(report)
            lossy = report.pop("lossy", None)
            stranded = report.pop("stranded_events", None)
            abandoned = report.pop("abandoned_producers", None)
            if lossy is not None and not isinstance(lossy, (bool, np.bool_)):
                raise TargetError(f"{self.where}: shutdown report's lossy is {_show(lossy)}; "
                                  f"expected true or false", exit_code=3)
            if lossy is None and flag is not None:
                lossy = bool(flag)
            details = report
            abandoned = tuple(abandoned) if abandoned is not None else None
        else:
            raise TargetError(f"{self.where}: shutdown returned {_show(report)}; expected a "
                              f"report mapping or None", exit_code=3)
        if flag is not None:
            details[LOSSY_FLAG_FIELD] = bool(flag)
        if lossy is None and stranded is None:
            self._shutdown_claim = None
        else:
            self._shutdown_claim = ShutdownClaim(
                lossy=None if lossy is None else bool(lossy),
                stranded_events=None if stranded is None else int(stranded),
                abandoned_producers=abandoned, duration_s=duration, grace_s=grace_s,
                details=details)
        return self._shutdown_claim

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(counters=frozenset(self._stats_keys & set(COUNTER_NAMES)),
                            witness="sink" if self._has_sink else None,
                            shard_known_to_producer=False,
                            lossy_flag=LOSSY_FLAG_FIELD in self._stats_keys,
                            shutdown_report=True, shard_fill=False,
                            latency=self.sink_state is not None and self.sink_state.latency)

    def arm_fault(self, fault) -> dict:
        raise TargetError(f"{self.where}: fault {getattr(fault, 'tag', fault)} is not supported")

    def release_faults(self) -> None:
        pass

    def close(self) -> None:
        """Shut the bus down if the run did not (grace 0); idempotent."""
        if self._started and not self._shut_down:
            try:
                self.shutdown(0.0)
            except TargetError:
                pass


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
