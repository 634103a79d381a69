"""The ``c-abi`` target: any bus with a C ABI, described in the scenario (scenario.foreign).

Producers are busbench's one producer kernel (``load.kernels.produce``,
GIL-free), calling the bus's ingest function through its address as the
target file describes it (``load.ccall.CallSpec``). Cold calls (init, flush, stats,
shutdown, set_sink) go through ctypes, which releases the GIL while C runs.
The library is loaded by path with ``RTLD_LOCAL``, so its symbols never clash
with another library's (two buses, or two releases of one, in one process).

Evidence: the producers' tallies (``pstate``/``xstate``), the bus's stats
struct, and, when the bus takes a sink, what the sink received
(``targets.sink``). Without a sink there is no delivery witness, and
``capabilities.witness`` is None: checks that need one are not observable.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from ..bus.layout import COUNTER_NAMES
from ..load import foreign as LF
from ..load import kernels as LK
from ..native import text_payload as PL
from ..load.ccall import Arg, CallSpec
from ..scenario.foreign import LOSSY_FLAG_FIELD, CAbiSettings, PythonModuleLibrary
from . import coldstart
from .base import Capabilities, FlushClaim, ShutdownClaim
from .bounded import CALL_MARGIN_S, call_within
from .errors import TargetError
from .sink import C_SINK, SinkEvidence, SinkState

MODE_SINGLE, MODE_BATCH = 0, 1     # one ingest call per event, or ingest_batch
#: the target file's argument kinds as the producer loop's
_ARGS = {"ptr": Arg.PTR, "len": Arg.LEN, "ptrs": Arg.PTRS, "lens": Arg.LENS, "n": Arg.N}
_CTYPES_INT = {32: ctypes.c_int32, 64: ctypes.c_int64, 0: None}
_FIELD_CTYPES = {"u64": ctypes.c_uint64, "i64": ctypes.c_int64, "u32": ctypes.c_uint32,
                 "i32": ctypes.c_int32}


def library_path(spec: CAbiSettings, base_dir: Path | None = None) -> tuple[Path | None, str]:
    """(path, how it was found) without loading anything; path None for a python_module
    library (found only by importing its package)."""
    if isinstance(spec.library, PythonModuleLibrary):
        return None, f"the shared library of Python extension module {spec.library.python_module}"
    path = Path(spec.library).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path, str(path)


class CAbiTarget(SinkEvidence):
    """A user's bus behind busbench's target interface (targets/base.py)."""
    name = "c-abi"

    def __init__(self, spec: CAbiSettings, *, producers: int, shards: int | None = None,
                 base_dir: Path | None = None, calls: str | None = None):
        """``shards``: the bus's shard count when the spec does not say (``bus.shards``);
        ``calls``: ``single`` or ``batch`` to force one ingest entry (default: batch when
        declared)."""
        self.spec = spec
        self.producers = producers
        self.shards = spec.shards or shards
        self.base_dir = base_dir
        self.mode = {"single": MODE_SINGLE, "batch": MODE_BATCH, None: None}[calls]
        if self.mode is None:
            self.mode = MODE_BATCH if spec.ingest_batch is not None else MODE_SINGLE
        entry = spec.ingest_batch if self.mode == MODE_BATCH else spec.ingest
        if entry is None:
            raise TargetError(f"target c-abi: calls: {calls} needs "
                              f"{'ingest_batch' if calls == 'batch' else 'ingest'} in the target")
        if spec.sink is not None and not self.shards:
            raise TargetError("target c-abi: the sink needs the bus's shard count: set shards "
                              "in the target")
        self.sink_state = SinkState(producers, self.shards) if spec.sink is not None else None
        self.xstate = [LK.empty_xstate() for _ in range(producers)]
        self._scratch: dict[int, tuple] = {}
        self._lib = None
        self._fns: dict[str, ctypes._CFuncPtr] = {}
        self._addresses: dict[str, int] = {}
        self._calls: np.ndarray | None = None
        self._config = None
        self._handle: int | None = None
        self._prepared = self._started = self._shut_down = False
        self._open_loop = False
        self._shutdown_claim: ShutdownClaim | None = None
        self._last_stats: dict | None = None
        self._stats_after_shutdown_failed = False
        self.library: Path | None = None

    # ------------------------------------------------------------------ lifecycle
    def describe_native(self) -> list[str]:
        path, how = library_path(self.spec, self.base_dir)
        lines = [f"target c-abi: loading {how}"]
        if path is None:
            lines.append(f"  (importing the package of {self.spec.library.python_module} to find it)")
        lines.append("  calls: " + ", ".join(f"{k} {v}" for k, v in self.spec.symbols.items()))
        return lines

    def prepare(self, say=lambda message: None) -> None:
        if self._prepared:
            return
        self.library = self._find_library()
        say(f"loading {self.library}")
        try:
            self._lib = ctypes.CDLL(str(self.library), mode=os.RTLD_LOCAL)
        except OSError as error:
            raise TargetError(f"target c-abi: library: {self.library} cannot be loaded: {error}") from None
        missing = []
        for call, symbol in self.spec.symbols.items():
            try:
                fn = getattr(self._lib, symbol)
            except AttributeError:
                missing.append(f"{call}.symbol {symbol}")
                continue
            self._fns[call] = fn
            self._addresses[call] = ctypes.cast(fn, ctypes.c_void_p).value
        if missing:
            raise TargetError(f"target c-abi: {self.library.name} does not export "
                              f"{', '.join(missing)}")
        self._declare_cold_calls()
        self._check_version()
        self._warm_kernel(say)
        self._prepared = True

    def _find_library(self) -> Path:
        path, _ = library_path(self.spec, self.base_dir)
        if path is None:
            name = self.spec.library.python_module
            try:
                found = importlib.util.find_spec(name)
            except (ImportError, ValueError) as error:
                raise TargetError(f"target c-abi: library: cannot import the package of {name}: "
                                  f"{error}") from None
            if found is None or not found.origin:
                raise TargetError(f"target c-abi: library: no module named {name}")
            path = Path(found.origin)
            if path.suffix not in (".so", ".dylib", ".pyd"):
                raise TargetError(f"target c-abi: library: {name} is {path}, not an extension "
                                  f"module (a shared library)")
        if not path.is_file():
            raise TargetError(f"target c-abi: library: {path} does not exist (build it first; "
                              f"relative paths are from the current directory, or from the "
                              f"target file's folder)")
        return path

    def _declare_cold_calls(self) -> None:
        spec = self.spec
        for name in ("flush", "stats", "shutdown", "sink"):
            call = getattr(spec, name)
            if call is not None:
                fn = self._fns[name]
                fn.restype = _CTYPES_INT[call.return_bits]
                fn.argtypes = [ctypes.c_int64] * len(call.args)
        init = self._fns["init"]
        init.restype = ctypes.c_void_p
        init.argtypes = [ctypes.c_char_p if k == "config" else ctypes.c_size_t
                         for k in spec.init.args]
        if spec.version is not None:
            fn = self._fns["version"]
            fn.restype = ctypes.c_char_p
            fn.argtypes = []
        if spec.stats is not None:
            fields = [(f.name if not f.name.startswith("_") else f"_pad{i}", _FIELD_CTYPES[f.type])
                      for i, f in enumerate(spec.stats.struct)]
            self._stats_struct = type("Stats", (ctypes.Structure,), {"_fields_": fields})

    def _check_version(self) -> None:
        if self.spec.version is None:
            return
        raw = self._fns["version"]()
        got = raw.decode("utf-8", "replace") if raw else "nothing (NULL)"
        if got != self.spec.version.expect:
            raise TargetError(f"target c-abi: version: {self.library.name} says {got}, the target "
                              f"expects {self.spec.version.expect}")

    def _warm_kernel(self, say=None) -> None:
        coldstart.compile_foreign_loop(say, sink=True)
        params = np.zeros(LK.P_LEN, np.int64)
        params[LK.P_BATCH] = 1
        params[LK.P_MAX_EVENTS] = 0          # returns before calling the bus
        LF.produce_ccall(np.zeros(LF.C_LEN, np.int64), params, np.zeros(LK.S_LEN, np.int64),
                         LK.empty_xstate(), np.zeros(16, np.int64), PL.template_array(1),
                         np.zeros(1, np.int64), np.zeros(1, np.int64))

    def start(self) -> None:
        self.prepare()
        if self._started:
            return
        spec = self.spec
        self._config = ctypes.create_string_buffer(spec.init.config.encode())
        args = [self._config if k == "config" else len(spec.init.config.encode())
                for k in spec.init.args]
        handle = self._fns["init"](*args)
        if not handle:
            raise TargetError(f"target c-abi: init: {spec.init.symbol} returned NULL for config "
                              f"{spec.init.config!r}: the bus refused to start")
        self._handle = handle
        self._started = True
        if self.sink_state is not None:
            rc = self._call("sink", callback=C_SINK.address, context=self.sink_state.address)
            if rc not in spec.sink.ok:
                raise TargetError(f"target c-abi: sink: {spec.sink.symbol} returned {rc}, expected "
                                  f"{_codes(spec.sink.ok)}")
        self._calls = self._build_calls()

    def _build_calls(self) -> np.ndarray:
        batch = self.mode == MODE_BATCH
        entry = self.spec.ingest_batch if batch else self.spec.ingest
        args = tuple(Arg.const(self._handle) if kind == "handle" else _ARGS[kind]
                     for kind in entry.args)
        spec = CallSpec(address=self._addresses["ingest_batch" if batch else "ingest"], args=args,
                        batch=batch, returns=entry.return_bits, ok=getattr(entry, "ok", ()),
                        refused=getattr(entry, "refused", ()), closed=entry.closed,
                        batch_count="prefix", undeclared="stop", payload="json",
                        name=entry.symbol)
        try:
            return spec.to_array()
        except ValueError as error:
            raise TargetError(f"target c-abi: {error}") from None

    # ------------------------------------------------------------------ producers
    def produce(self, p: int, params: np.ndarray, pstate: np.ndarray, zipf_cdf=None, stop=None,
                by_shard=None, events=None) -> int:
        """Run producer ``p`` in the calling thread until its stop condition (GIL released).

        The bus chooses each event's shard (the C ABI takes no key), so the key
        distribution of ``params`` does not steer it; ``by_shard``/``events``: the load
        generator's arrays (made here when left out). Raises TargetError (exit 3) when the bus returned
        a code the target does not declare.
        """
        if self._calls is None:
            raise RuntimeError("start() the target before producing")
        params[LK.P_PRODUCER] = p     # the payloads name their producer
        batch = int(params[LK.P_BATCH])
        self._open_loop |= bool(params[LK.P_OPEN_LOOP])
        buffers = self._scratch.get(p)
        if buffers is None or buffers[0].shape[0] < batch:
            buffers = (PL.template_array(batch), np.zeros(batch, np.int64), np.zeros(batch, np.int64))
            self._scratch[p] = buffers
        stop = stop if stop is not None else np.zeros(16, np.int64)
        if self._shut_down and self.spec.shutdown.frees_handle:
            pstate[LK.S_TURNED_AWAY] += batch     # the handle is gone: no call may use it
            pstate[LK.S_DONE] = 1
            return 0
        offered = LF.produce_ccall(self._calls, params, pstate, self.xstate[p], stop, *buffers,
                                   zipf_cdf=zipf_cdf, by_shard=by_shard, events=events)
        x = self.xstate[p]
        if x[LK.X_UNDECLARED]:
            entry = self.spec.ingest_batch if self.mode == MODE_BATCH else self.spec.ingest
            raise TargetError(f"target c-abi: {entry.symbol} returned {int(x[LK.X_LAST_CODE])}, "
                              f"which the target does not declare ({_declaration(entry)}); "
                              f"producer {p} stopped with {int(x[LK.X_ERRORS])} event(s) "
                              f"of unknown fate", exit_code=3)
        return offered

    def producer_stalling(self, p: int) -> bool:
        return False

    def landed_checksums(self) -> list[int]:
        """Per producer: sum of ``seq_mix`` over the events the bus accepted, mod 2**64."""
        return [int(x[LK.X_LANDED_SUM]) & PL.MASK64 for x in self.xstate]

    # ------------------------------------------------------------------ cold calls
    def _call(self, name: str, **values) -> int | None:
        call = getattr(self.spec, name)
        args = []
        for kind in call.args:
            if kind == "handle":
                args.append(self._handle)
            else:
                args.append(values[kind])
        return self._fns[name](*args)

    def _bounded(self, name: str, limit_s: float, **values):
        symbol = getattr(self.spec, name).symbol
        return call_within(lambda: self._call(name, **values), limit_s, f"target c-abi: {symbol}")

    def flush(self, timeout_s: float) -> FlushClaim:
        call = self.spec.flush
        t0 = time.monotonic()
        rc = self._bounded("flush", timeout_s + CALL_MARGIN_S, timeout_ms=int(timeout_s * 1000))
        waited = time.monotonic() - t0
        if call.returns == "void":
            return FlushClaim(reached=True, timed_out=False, waited_s=waited,
                              details={"returns": "void: returning is the bus's only claim"})
        reached = rc in call.ok
        return FlushClaim(reached=reached, timed_out=not reached, waited_s=waited,
                          details={"return_code": rc})

    def stats(self) -> dict:
        """Every field of the bus's stats struct (padding left out); {} without a stats call."""
        if self.spec.stats is None or not self._started:
            return dict(self._last_stats or {})
        if self._shut_down and self.spec.shutdown.frees_handle:
            return dict(self._last_stats or {})
        if self._stats_after_shutdown_failed:
            return dict(self._last_stats)
        out = self._stats_struct()
        rc = self._call("stats", out=ctypes.addressof(out), out_size=ctypes.sizeof(out))
        if self.spec.stats.returns != "void" and rc not in self.spec.stats.ok:
            if self._shut_down and self._last_stats is not None:
                # some buses answer every call with "shut down" afterwards (net-mesh: -8)
                self._stats_after_shutdown_failed = True
                return dict(self._last_stats)
            raise TargetError(f"target c-abi: stats: {self.spec.stats.symbol} returned {rc}, "
                              f"expected {_codes(self.spec.stats.ok)}", exit_code=3)
        values = {f.name: int(getattr(out, f.name)) for f in self.spec.stats.struct
                  if not f.name.startswith("_")}
        self._last_stats = values
        return dict(values)

    def counters(self) -> dict:
        """The busbench counters the bus exports (absent, never 0, when it does not)."""
        return {k: v for k, v in self.stats().items() if k in COUNTER_NAMES}

    def shutdown(self, grace_s: float) -> ShutdownClaim | None:
        if self._shut_down or not self._started:
            return self._shutdown_claim
        call = self.spec.shutdown
        if self.spec.stats is not None:
            self.stats()                      # the last snapshot, in case stats stop answering
        t0 = time.monotonic()
        self._shut_down = True
        rc = self._bounded("shutdown", grace_s + CALL_MARGIN_S, grace_ms=int(grace_s * 1000))
        duration = time.monotonic() - t0
        after = self.stats() if self.spec.stats is not None else {}
        flag = after.get(LOSSY_FLAG_FIELD)
        if call.returns != "void" and rc in call.lossy:
            lossy = True
        elif call.returns != "void" and rc in call.ok:
            lossy = False
        elif flag is not None:
            lossy = bool(flag)
        else:
            lossy = None
        details = {"return_code": rc} if call.returns != "void" else {}
        if flag is not None:
            details[LOSSY_FLAG_FIELD] = bool(flag)
        if call.returns != "void" and (call.ok or call.lossy) and rc not in call.ok + call.lossy:
            details["undeclared_return_code"] = True
        if lossy is None:
            self._shutdown_claim = None
        else:
            self._shutdown_claim = ShutdownClaim(lossy=lossy, stranded_events=None,
                                                 abandoned_producers=None, duration_s=duration,
                                                 grace_s=grace_s, details=details)
        return self._shutdown_claim

    @property
    def capabilities(self) -> Capabilities:
        struct = {f.name for f in self.spec.stats.struct} if self.spec.stats else set()
        shutdown = self.spec.shutdown
        reports = shutdown.returns != "void" and bool(shutdown.ok or shutdown.lossy)
        return Capabilities(counters=frozenset(struct & set(COUNTER_NAMES)),
                            witness="sink" if self.sink_state is not None else None,
                            shard_known_to_producer=False,
                            lossy_flag=reports or LOSSY_FLAG_FIELD in struct,
                            shutdown_report=False, shard_fill=False,
                            latency=self.sink_state is not None and self.sink_state.latency)

    def arm_fault(self, fault) -> dict:
        raise TargetError(f"target c-abi: fault {getattr(fault, 'tag', fault)} is not supported "
                          f"(busbench cannot reach inside a foreign bus)")

    def release_faults(self) -> None:
        pass

    def close(self) -> None:
        """Shut the bus down if the run did not (grace 0); idempotent. The library stays
        loaded and the sink's memory alive: the bus may still hold pointers into both."""
        if self._started and not self._shut_down:
            try:
                self.shutdown(0.0)
            except TargetError:
                pass
        if self.sink_state is not None:
            _KEEP_ALIVE.append(self.sink_state)


#: sink memory of closed targets: a bus that calls its sink after shutdown must not write
#: into freed memory (its stray calls are then recorded, not a crash)
_KEEP_ALIVE: list = []


def _codes(codes) -> str:
    return ", ".join(map(str, codes)) or "none"


def _declaration(entry) -> str:
    if hasattr(entry, "refused"):
        return f"ok: {_codes(entry.ok)}, refused: {_codes(entry.refused)}, closed: {_codes(entry.closed)}"
    return f"an accepted count from 0 to n, or closed: {_codes(entry.closed)}"
