"""What a bus written in Python must offer to be a busbench target (``target: {python: ...}``).

The scenario names a factory, ``module:callable``; busbench imports the module
when the run starts (never at ``validate``), calls the factory with the
target's ``config`` as keyword arguments, and drives the object it returns
through the methods below. Producers are Python threads calling
``ingest_batch``, so the figures measure the bus's Python API *including the
GIL* (a C ABI target's producers are GIL-free Numba kernels).

Payloads are busbench's fixed-width JSON bytes (``load.text_payload``): a bus
treats them as opaque and delivers them unchanged; busbench reads producer and
sequence number back from them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

#: ``sink(shard, payloads)``: what busbench hands ``set_sink``; call it for every
#: delivered batch, with the shard that delivered it and the payloads as bytes
Sink = Callable[[int, Sequence[bytes]], None]


@runtime_checkable
class PythonBus(Protocol):
    """The protocol (``set_sink`` is optional and not part of the runtime check)."""

    def ingest_batch(self, payloads: Sequence[bytes]) -> int | Sequence[bool]:
        """Offer events. Return either

        * an int ``n >= 0``: the first ``n`` events were taken, the rest refused;
        * a sequence of bools, one per event: which were taken (a sharded bus
          whose rings fill unevenly refuses events in the middle of a batch);
        * a negative int: the bus is shut down; none was taken, and the producer stops.

        Raising stops the run (exit 3) with the exception in the message.
        """

    def flush(self, timeout: float) -> bool:
        """Deliver (or drop and count) everything taken before the call; True when done
        within ``timeout`` seconds, False when it gave up."""

    def stats(self) -> Mapping[str, int]:
        """The bus's counters. Keys named like busbench's (``events_ingested``,
        ``events_dropped``, ``batches_dispatched``, ``events_dispatched``) are read as
        those; ``shutdown_was_lossy`` as the lossy flag; others are shown as they are.
        Must stay readable after ``shutdown``."""

    def shutdown(self, grace: float) -> Mapping[str, Any] | None:
        """Stop taking events, wait up to ``grace`` seconds for pushes in flight,
        deliver what is queued. Return a report (``lossy``: bool, ``stranded_events``:
        int, ``abandoned_producers``: list; other keys are kept as details) or None
        when the bus says nothing of how it went."""


#: (method, how it is called) checked on the object the factory returns
REQUIRED_METHODS = (("ingest_batch", 1), ("flush", 1), ("stats", 0), ("shutdown", 1))
OPTIONAL_METHODS = (("set_sink", 1),)      # set_sink(sink: Sink) -> None


def protocol_problems(bus: object) -> list[str]:
    """What keeps ``bus`` from implementing PythonBus, one phrase each (empty: it does)."""
    import inspect

    problems = []
    for name, arity in REQUIRED_METHODS + OPTIONAL_METHODS:
        method = getattr(bus, name, None)
        if method is None:
            if (name, arity) in REQUIRED_METHODS:
                problems.append(f"it has no {name}()")
            continue
        if not callable(method):
            problems.append(f"its {name} is not a method")
            continue
        try:
            inspect.signature(method).bind(*([None] * arity))
        except TypeError:
            wanted = "one argument" if arity == 1 else "no argument"
            problems.append(f"its {name}{_signature(method)} cannot be called with {wanted}")
        except ValueError:          # a builtin without a signature: trust it
            pass
    return problems


def _signature(method) -> str:
    import inspect
    try:
        return str(inspect.signature(method))
    except (TypeError, ValueError):
        return "(...)"
