"""The scenario schema: what a scenario file may say, as frozen, typed models.

Everything is validated before anything runs, so a typo costs a second, not a
ten-minute run. Values are stored in one unit each (durations as int
nanoseconds, rates as float events per second, counts as int), and shorthand
is expanded on the way in (``run: 2s``, ``keys: uniform``, ``counters: packed``)
so the runner sees one shape only. ``Scenario.to_dict()`` writes the canonical
short form back out, which loads to an equal ``Scenario``: a result file can
carry the scenario exactly as run.

Validators raise ``InvalidValue`` with a path below the object they check, so
that errors name the exact key (``steps.2.fault.stall_producer.producer``) and
``loader`` can find its line.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Callable, ClassVar, Iterator, Literal, get_args

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_serializer, model_validator)

from .foreign import FOREIGN_REFUSES, CAbiTargetSpec, PythonTargetSpec
from .kafka import KAFKA_FAULTS, KAFKA_REFUSES, KafkaTargetSpec
from .quiescence import unsettled_checks
from .sections import Choice, Count, Duration, DurationOrZero, Fraction, Memory, Number, OneKey, Rate, Section  # noqa: F401
from .sections import FaultSpec, TimedFaultSpec
from .sections import keys_expected_in, only_keys  # noqa: F401  (only_keys: re-exported)
from .sections import one_of as _one_of
from .sections import tag_of_kind as _tag_of_kind
from .sections import tag_of_one_key as _tag_of_one_key
from .thresholds import Threshold, ThresholdError, parse_threshold
from ..common.units import (NS_PER_UNIT, UnitError, canonical_rate, parse_count,
                     parse_duration)
from .errors import InvalidValue, closest, show

Backpressure = Literal["drop_newest", "fail_producer", "drop_oldest", "block"]
Mutation = Literal["dispatch_counters_frozen", "flush_single_window", "flush_global_sum",
                   "no_inflight_gate", "lossy_flag_never_set", "stranded_double_count",
                   "final_sweep_single_pass", "uncounted_eviction", "refusal_not_ingested",
                   "batch_announced_late"]
CheckKind = Literal["conservation", "ground_truth", "flush_barrier", "flush_completes",
                    "lossy_shutdown", "threshold"]
Expectation = Literal["pass", "fail"]

BACKPRESSURE_MODES: tuple[str, ...] = get_args(Backpressure)
MUTATIONS: tuple[str, ...] = get_args(Mutation)
CHECK_KINDS: tuple[str, ...] = get_args(CheckKind)
NET_MESH_VERSION = "0.45.1"          # the release the net-mesh extra pins
COUNTER_LAYOUTS = ("padded", "packed", "striped")

MAX_CAPACITY = 1 << 24


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise InvalidValue(f"expected letters, digits, '_', '.' or '-' only (the name is used in "
                           f"result file names), got {value!r}")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise InvalidValue("expected a sentence saying what the scenario shows, got an empty text")
    return value


def _at_least_one(what: str) -> Callable[[tuple], tuple]:
    """An emptiness check that runs after the items are valid (pydantic's ``min_length`` would
    also complain about a list whose only item is invalid)."""
    def check(items: tuple) -> tuple:
        if not items:
            raise InvalidValue(f"expected at least one {what}")
        return items
    return check


def _power_of_two(value: int) -> int:
    if not 2 <= value <= MAX_CAPACITY or value & (value - 1):
        raise InvalidValue(f"expected a power of two from 2 to {MAX_CAPACITY} (2**24), "
                           f"e.g. 4096, got {value}")
    return value


# --- bus ----------------------------------------------------------------------------


class BatchPolicy(Section):
    """When a worker dispatches: the batch is full, or its first event has waited max_delay."""
    max_events: Annotated[Count, Field(ge=1, le=1_000_000)] = 512
    max_delay: Duration = parse_duration("1ms")


class CounterSpec(Section):
    """Where the EventBusStats counters live: ``padded``, ``packed``, ``striped`` or ``{stride: N}``.

    ``layout`` and ``stride_bytes`` are the two fields of ``busbench.bus.layout.CounterLayout``.
    """
    layout: Literal["padded", "packed", "striped", "stride"] = "padded"
    stride: Count | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in COUNTER_LAYOUTS:
                raise InvalidValue(f"unknown counter layout {data!r}; expected one of: "
                                   f"{', '.join(COUNTER_LAYOUTS)}, or {{stride: 64}}",
                                   suggestion=closest(data, COUNTER_LAYOUTS))
            return {"layout": data}
        if isinstance(data, dict):
            return {"layout": "stride", **data} if "stride" in data and "layout" not in data else data
        raise InvalidValue(f"expected padded, packed, striped or {{stride: 64}}, got {show(data)}")

    @model_validator(mode="after")
    def _stride_in_words(self) -> "CounterSpec":
        if (self.layout == "stride") != (self.stride is not None):
            raise InvalidValue("expected a stride in bytes with layout stride, and only then, "
                               "like {stride: 64}", path=("stride",))
        if self.stride is not None and not (8 <= self.stride <= 4096 and self.stride % 8 == 0):
            raise InvalidValue(f"expected a stride in bytes that is a multiple of 8 from 8 to "
                               f"4096 (counters are 8-byte words), got {self.stride}",
                               path=("stride",))
        return self

    @property
    def stride_bytes(self) -> int:
        """Distance between two counters; 128 for padded and striped (a prefetcher's line pair)."""
        return {"padded": 128, "packed": 8, "striped": 128}.get(self.layout, self.stride)

    @property
    def label(self) -> str:
        return f"stride {self.stride}" if self.layout == "stride" else self.layout

    @model_serializer
    def _as_written(self) -> Any:
        return {"stride": self.stride} if self.layout == "stride" else self.layout


class AdapterSpec(Choice):
    """An adapter: ``{kind: slow, per_batch: 1ms}``, or just ``verify``."""

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {}
        return {key: value for key, value in data.items() if key != "kind"}

    @classmethod
    def user_keys(cls) -> list[str]:
        return ["kind", *super().user_keys()]

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Callable) -> dict:
        return {"kind": self.tag, **handler(self)}


class NoopAdapter(AdapterSpec):
    """Accepts every batch and does nothing: the bus's own cost."""
    tag: ClassVar[str] = "noop"


class VerifyAdapter(AdapterSpec):
    """Counts and checksums every (producer, seq) per shard, in fixed memory: gaps,
    duplicates, per-shard order (ground truth). ``bitmaps: true`` also keeps one
    bit per event (up to 1 GiB each for received and dropped): it then names how
    many events were received twice or received although dropped."""
    tag: ClassVar[str] = "verify"
    bitmaps: StrictBool = False


class SlowAdapter(AdapterSpec):
    """A fixed cost per batch and per event, as a slow downstream has."""
    tag: ClassVar[str] = "slow"
    per_batch: DurationOrZero = 0
    per_event: DurationOrZero = 0


class FlakyAdapter(AdapterSpec):
    """A batch fails with probability failure_rate; retried with backoff, then rejected (dropped)."""
    tag: ClassVar[str] = "flaky"
    failure_rate: Annotated[Fraction, Field(ge=0, le=1)] = 0.1
    retries: Annotated[Count, Field(ge=0, le=100)] = 3
    backoff: DurationOrZero = parse_duration("100us")


class StallAdapter(AdapterSpec):
    """Blocks for ``for`` from ``at`` after the first run step starts, as a frozen downstream does."""
    tag: ClassVar[str] = "stall"
    at: DurationOrZero = 0
    duration: Duration = Field(alias="for")


Adapter = _one_of("adapter kind", (NoopAdapter, VerifyAdapter, SlowAdapter, FlakyAdapter, StallAdapter),
                  _tag_of_kind, "{kind: verify}")


class Bus(Section):
    """The bus under test: shards, rings, backpressure, batching, counters, adapter, mutations."""
    shards: Annotated[Count, Field(ge=1, le=1024)] = 4
    capacity: Annotated[Count, AfterValidator(_power_of_two)] = 4096
    backpressure: Backpressure = "drop_newest"
    block_timeout: Duration = parse_duration("10ms")
    batch: BatchPolicy = BatchPolicy()
    counters: CounterSpec = CounterSpec()
    workers: Annotated[Count, Field(ge=1, le=64)] = 1
    latency: StrictBool = True
    adapter: Adapter = VerifyAdapter()
    mutations: tuple[Mutation, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> "Bus":
        if self.workers > self.shards:
            raise InvalidValue(f"expected at most one worker per shard: workers is {self.workers} "
                               f"but shards is {self.shards}", path=("workers",))
        for index, mutation in enumerate(self.mutations):
            if mutation in self.mutations[:index]:
                raise InvalidValue(f"mutation {mutation} is listed twice", path=("mutations", index))
        return self

    @property
    def counter_stride_bytes(self) -> int:
        return self.counters.stride_bytes

    @property
    def layout_label(self) -> str:
        """``padded``, ``packed``, ``striped`` or ``stride 64``, for headers and reports."""
        return self.counters.label


# --- load ---------------------------------------------------------------------------


class ArrivalRate(Section):
    """``max`` (closed loop: send as fast as the bus takes), ``2M/s`` in total, or ``{per_producer: 1M/s}``."""
    total: Rate | None = None
    per_producer: Rate | None = None

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if data == "max":
            return {}
        if data is None or isinstance(data, dict):
            data = super()._expand(data)
            if len(data) > 1:
                raise InvalidValue("expected one of total or per_producer, not both")
            return data
        return {"total": data}

    @model_serializer
    def _as_written(self) -> Any:
        if self.per_producer is not None:
            return {"per_producer": canonical_rate(self.per_producer)}
        return "max" if self.total is None else canonical_rate(self.total)


class UniformKeys(OneKey):
    """Keys spread evenly over the shards at random."""
    tag: ClassVar[str] = "uniform"


class RoundRobinKeys(OneKey):
    """Each producer cycles through the shards in turn."""
    tag: ClassVar[str] = "round_robin"


class HotKeys(OneKey):
    """``share`` of the events go to one hot shard; the rest spread evenly."""
    tag: ClassVar[str] = "hot"
    shard: Annotated[Count, Field(ge=0)] = 0
    share: Annotated[Fraction, Field(gt=0, le=1)]


class ZipfKeys(OneKey):
    """Shard popularity follows a Zipf law with this exponent (skewed, like real keys)."""
    tag: ClassVar[str] = "zipf"
    exponent: Annotated[Number, Field(gt=0)]

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        return super()._settings(settings) if isinstance(settings, dict) else {"exponent": settings}

    def _compact(self, settings: dict) -> Any:
        return settings["exponent"]


KeyDistribution = _one_of("key distribution", (UniformKeys, RoundRobinKeys, HotKeys, ZipfKeys),
                          _tag_of_one_key, "uniform or {zipf: 1.1}")


class Load(Section):
    """The producers: how many, how fast, how many events per ingest call, which shards."""
    producers: Annotated[Count, Field(ge=1, le=64)] = 2
    rate: ArrivalRate = ArrivalRate()
    batch: Annotated[Count, Field(ge=1, le=65536)] = 64
    keys: KeyDistribution = UniformKeys()
    late_after: Duration = parse_duration("1ms")
    on_fail: Literal["drop", "retry"] = "drop"

    @property
    def is_open_loop(self) -> bool:
        """Open loop: sends are scheduled at a constant arrival rate, whatever the bus does."""
        return self.rate.total is not None or self.rate.per_producer is not None

    @property
    def total_rate(self) -> float | None:
        """Events per second over all producers; None in closed loop."""
        if self.rate.per_producer is not None:
            return self.rate.per_producer * self.producers
        return self.rate.total

    @property
    def per_producer_rate(self) -> float | None:
        total = self.total_rate
        return None if total is None else total / self.producers


# --- checks -------------------------------------------------------------------------


def _expectation(settings: dict, at: tuple) -> str:
    expect = settings.get("expect", "pass")
    if expect not in ("pass", "fail"):
        raise InvalidValue(f"expected pass or fail, got {show(expect)}", path=at + ("expect",),
                           suggestion=closest(expect, ("pass", "fail")))
    return expect


def _threshold(expression: Any, at: tuple) -> Threshold:
    try:
        return parse_threshold(expression)
    except ThresholdError as error:
        raise InvalidValue(str(error), path=at, suggestion=error.suggestion) from None


class CheckSpec(BaseModel):
    """A check: ``conservation``, ``lossy_shutdown: false``, ``threshold: "throughput >= 5M/s"``.

    ``expect: fail`` declares that the check must fail: a mutation scenario
    passes only when its check catches the mutation.
    """
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CheckKind
    expect: Expectation = "pass"
    value: StrictBool | None = None            # lossy_shutdown: what shutdown_was_lossy must be (None: agree with the evidence)
    threshold: Threshold | None = None

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        if isinstance(data, BaseModel) or (isinstance(data, dict) and "kind" in data):
            return data                         # already in field form (built in Python)
        kind, at = _tag_of_one_key(data, "check", "conservation or {threshold: 'throughput >= 5M/s'}")
        if kind not in CHECK_KINDS:
            raise InvalidValue(f"unknown check {show(kind)}; expected one of: {', '.join(CHECK_KINDS)}",
                               path=at, suggestion=closest(kind, CHECK_KINDS))
        settings = data[kind] if isinstance(data, dict) else None
        if kind == "threshold":
            return cls._threshold_fields(settings, at)
        if kind == "lossy_shutdown":
            return cls._lossy_fields(settings, at)
        if settings is None:
            return {"kind": kind}
        if not isinstance(settings, dict):
            raise InvalidValue(f"{kind} takes no value; write `- {kind}` or "
                               f"`- {kind}: {{expect: fail}}`, got {show(settings)}", path=at)
        only_keys(settings, ["expect"], owner=kind, at=at)
        return {"kind": kind, "expect": _expectation(settings, at)}

    @staticmethod
    def _threshold_fields(settings: Any, at: tuple) -> dict:
        if isinstance(settings, dict):
            only_keys(settings, ["expr", "expect"], owner="threshold", at=at)
            if "expr" not in settings:
                raise InvalidValue("required key is missing: the threshold, like "
                                   "expr: 'throughput >= 5M/s'", path=at + ("expr",), missing=True)
            return {"kind": "threshold", "expect": _expectation(settings, at),
                    "threshold": _threshold(settings["expr"], at + ("expr",))}
        return {"kind": "threshold", "threshold": _threshold(settings, at)}

    @staticmethod
    def _lossy_fields(settings: Any, at: tuple) -> dict:
        if isinstance(settings, dict):
            only_keys(settings, ["value", "expect"], owner="lossy_shutdown", at=at)
            value, value_at = settings.get("value"), at + ("value",)
        else:
            value, value_at = settings, at
        if value is not None and not isinstance(value, bool):
            raise InvalidValue(f"expected true or false (what shutdown_was_lossy must be), or "
                               f"no value (the flag must agree with what producers saw), "
                               f"got {show(value)}", path=value_at)
        expect = _expectation(settings, at) if isinstance(settings, dict) else "pass"
        return {"kind": "lossy_shutdown", "value": value, "expect": expect}

    @property
    def label(self) -> str:
        """``conservation``, ``lossy_shutdown == true``, ``threshold: throughput >= 5M/s``."""
        if self.kind == "lossy_shutdown" and self.value is not None:
            return f"lossy_shutdown == {str(self.value).lower()}"
        if self.kind == "threshold":
            return f"threshold: {self.threshold.text}"
        return self.kind

    @property
    def expects_failure(self) -> bool:
        return self.expect == "fail"

    @model_serializer
    def _as_written(self) -> Any:
        if self.kind == "threshold":
            short, long = self.threshold.text, {"expr": self.threshold.text}
        elif self.kind == "lossy_shutdown" and self.value is not None:
            short, long = self.value, {"value": self.value}
        else:
            short, long = None, {}
        if self.expect == "fail":
            return {self.kind: {**long, "expect": "fail"}}
        return self.kind if short is None else {self.kind: short}


# --- steps --------------------------------------------------------------------------


def _is_duration_text(text: str) -> bool:
    """``"2s"``, ``"-5ms"`` end in a time unit; ``"10M"``, ``"5k"``, ``"500_000"`` do not."""
    unit = re.search(r"[a-zµ]+\s*$", text)
    return unit is not None and unit.group().strip() in NS_PER_UNIT


class RunStep(OneKey):
    """Load the bus for a time (``run: 2s``) or for a number of events (``run: 10M``)."""
    tag: ClassVar[str] = "run"
    duration: Duration | None = None
    events: Annotated[Count, Field(gt=0)] | None = None

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if isinstance(settings, dict):
            return super()._settings(settings)
        if isinstance(settings, int) and not isinstance(settings, bool):
            return {"events": settings}
        if isinstance(settings, str) and _is_duration_text(settings):
            return {"duration": settings}
        if isinstance(settings, str):
            try:
                parse_count(settings)
                return {"events": settings}
            except UnitError:
                pass
        raise InvalidValue(f"expected a duration like 2s or an event count like 10M, got {show(settings)}")

    @model_validator(mode="after")
    def _exactly_one(self) -> "RunStep":
        if (self.duration is None) == (self.events is None):
            raise InvalidValue("expected exactly one of duration or events, "
                               "like `- run: 2s` or `- run: {events: 10M}`")
        return self

    def _compact(self, settings: dict) -> Any:
        return settings["duration"] if self.duration is not None else settings["events"]


class FlushStep(OneKey):
    """flush(): a delivery barrier; ``under_load`` keeps the producers sending meanwhile."""
    tag: ClassVar[str] = "flush"
    timeout: Duration = parse_duration("5s")
    under_load: StrictBool = False


class CheckStep(OneKey):
    """Evaluate checks at this point of the run (the same specs as the end ``checks:``)."""
    tag: ClassVar[str] = "check"
    checks: Annotated[tuple[CheckSpec, ...], AfterValidator(_at_least_one("check, like [conservation]"))]

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if settings is None:
            raise InvalidValue("expected at least one check, like `- check: [conservation]`")
        return {"checks": settings if isinstance(settings, list) else [settings]}

    def _compact(self, settings: dict) -> Any:
        return settings["checks"]


class SleepStep(OneKey):
    """Wait without load (producers idle), e.g. to let a stall play out."""
    tag: ClassVar[str] = "sleep"
    duration: Duration

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if settings is None:
            raise InvalidValue("expected a duration, like `- sleep: 100ms`")
        return super()._settings(settings) if isinstance(settings, dict) else {"duration": settings}

    def _compact(self, settings: dict) -> Any:
        return settings["duration"]


class StallProducerFault(TimedFaultSpec):
    """Producer ``producer`` stops mid-push for ``for``, starting ``after`` into the next run."""
    tag: ClassVar[str] = "stall_producer"
    producer: Annotated[Count, Field(ge=0)]
    after: DurationOrZero = 0
    duration: Duration = Field(alias="for")


class StallAdapterFault(TimedFaultSpec):
    """The adapter blocks for ``for``, starting ``after`` into the next run."""
    tag: ClassVar[str] = "stall_adapter"
    after: DurationOrZero = 0
    duration: Duration = Field(alias="for")


class KillAdapterFault(FaultSpec):
    """net-mesh target: kill the redis-server ``after`` into the next run; restart it
    ``restart_after`` later (never, when absent)."""
    tag: ClassVar[str] = "kill_adapter"
    after: DurationOrZero = 0
    restart_after: Duration | None = None


Fault = _one_of("fault", (StallProducerFault, StallAdapterFault, KillAdapterFault, *KAFKA_FAULTS),
                _tag_of_one_key, "{stall_adapter: {for: 200ms}}")


class FaultStep(OneKey):
    """Arm a fault; it fires during the run steps that follow."""
    tag: ClassVar[str] = "fault"
    fault: Fault

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if settings is None:
            raise InvalidValue("expected a fault: stall_producer or stall_adapter")
        return {"fault": settings}

    def _compact(self, settings: dict) -> Any:
        return settings["fault"]


class ShutdownStep(OneKey):
    """shutdown(grace): close the gate, wait for in-flight pushes, drain; must be the last step."""
    tag: ClassVar[str] = "shutdown"
    grace: DurationOrZero = parse_duration("5s")


Step = _one_of("step", (RunStep, FlushStep, CheckStep, SleepStep, FaultStep, ShutdownStep),
               _tag_of_one_key, "- run: 2s")


# --- targets ------------------------------------------------------------------------


class BuiltinTargetSpec(OneKey):
    """The reference bus of BUS.md (busbench/bus/): every counter layout, mutation and fault."""
    tag: ClassVar[str] = "builtin"


def _version(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise InvalidValue(f"expected a release like {NET_MESH_VERSION}, got {show(value)}")
    return value


def _redis_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"rediss?://\S+", value):
        raise InvalidValue(f"expected a Redis URL like redis://127.0.0.1:6379/0, got {show(value)}")
    return value


class NetMeshTargetSpec(OneKey):
    """The real net-mesh EventBus (PyPI net-mesh), driven through its C ABI by the Numba
    producer kernels (``driver: c-abi``) or through its Python binding (``driver: binding``)."""
    tag: ClassVar[str] = "net-mesh"
    version: Annotated[str, AfterValidator(_version)] = NET_MESH_VERSION
    driver: Literal["c-abi", "binding"] = "c-abi"
    adapter: Literal["redis", "noop"] = "redis"
    redis_url: Annotated[str, AfterValidator(_redis_url)] | None = None
    # the redis-server busbench starts keeps what it acknowledged across kill_adapter's
    # restart (AOF, fsync always), so a loss after the restart is net-mesh's, not Redis's
    redis_durable: StrictBool = False


#: every kind of target a scenario may name (a spec's ``path_keys``: its settings that
#: name files, resolved against the scenario file by the loader)
TARGET_SPECS = (BuiltinTargetSpec, NetMeshTargetSpec, CAbiTargetSpec, PythonTargetSpec,
                KafkaTargetSpec)

Target = _one_of("target", TARGET_SPECS,
                 _tag_of_one_key, "builtin, {net-mesh: {driver: c-abi}}, {c-abi: target.yaml}, "
                 "{python: module:factory} or {kafka: {}}")

_KAFKA_FAULT_TAGS = frozenset(fault.tag for fault in KAFKA_FAULTS)

#: net-mesh's smallest ring: net_init refuses a smaller ring_buffer_capacity without saying why
NET_MESH_MIN_CAPACITY = 1024

#: bus keys net-mesh cannot honour, and why; each is refused at validation, never ignored
NET_MESH_REFUSES = {
    "block_timeout": "net-mesh has no block mode",
    "batch": "net-mesh 0.45.1 ignores batch settings given in its configuration",
    "counters": "net-mesh's counter layout is compiled into the library",
    "workers": "net-mesh runs one batch worker per shard",
    "latency": "net-mesh exports no per-event dispatch time",
    "adapter": "net-mesh's adapter is chosen under target.net-mesh.adapter (redis or noop)",
    "mutations": "mutations are faults of the reference bus",
}

# --- limits -----------------------------------------------------------------------------


class Limits(Section):
    """What the supervised child process may use (busbench/run/supervisor.py)."""
    # address space and data size of the child; past it the run ends crashed, out of memory
    memory: Memory | None = None


# --- the scenario ---------------------------------------------------------------------


class Scenario(Section):
    """A whole scenario file, validated: the one value every later stage reads."""
    name: Annotated[str, AfterValidator(_name)]
    description: Annotated[str, AfterValidator(_non_empty)]
    seed: Annotated[Count, Field(ge=0)] = 1
    target: Target = BuiltinTargetSpec()
    bus: Bus = Bus()
    load: Load = Load()
    steps: Annotated[tuple[Step, ...], AfterValidator(_at_least_one("step, like - run: 2s"))]
    checks: tuple[CheckSpec, ...] = ()
    # The watchdog's deadline for the whole run (busbench.run.watchdog); None: planned time + slack.
    timeout: Duration | None = None
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        problem = next(self._inconsistencies(), None)
        if problem is not None:
            raise problem
        return self

    def _inconsistencies(self) -> Iterator[InvalidValue]:
        """Rules that span sections; paths are the file's own, so errors find their line."""
        keys, shards = self.load.keys, self.bus.shards
        yield from self._refused_by_target()
        if isinstance(keys, HotKeys) and keys.shard >= shards:
            yield InvalidValue(f"shard {keys.shard} does not exist: bus.shards is {shards}, so "
                               f"shards are numbered 0 to {shards - 1}", path=("load", "keys", "hot", "shard"))
        flushed = False
        for index, step in enumerate(self.steps):
            if isinstance(step, ShutdownStep) and index != len(self.steps) - 1:
                yield InvalidValue("shutdown must be the last step, and there can be only one",
                                   path=("steps", index))
            if isinstance(step, FlushStep):
                flushed = True
            if isinstance(step, FaultStep) and isinstance(step.fault, StallProducerFault) \
                    and step.fault.producer >= self.load.producers:
                yield InvalidValue(f"producer {step.fault.producer} does not exist: load.producers is "
                                   f"{self.load.producers}, so producers are numbered 0 to "
                                   f"{self.load.producers - 1}",
                                   path=("steps", index, "fault", "stall_producer", "producer"))
            for position, check in enumerate(step.checks if isinstance(step, CheckStep) else ()):
                if check.kind in ("flush_barrier", "flush_completes") and not flushed:
                    yield InvalidValue(f"{check.kind} needs a flush step before this check",
                                       path=("steps", index, "check", position))
        for position, check in enumerate(self.checks):
            if check.kind in ("flush_barrier", "flush_completes") and not flushed:
                yield InvalidValue(f"{check.kind} needs a flush step in steps (e.g. `- flush`)",
                                   path=("checks", position))
        for index, position, kind in unsettled_checks(self.steps):
            yield InvalidValue(f"{kind} here would read the counters while events may still sit "
                               f"in the rings (it holds only at a quiescent point); add `- flush` "
                               f"(not under load) between the last run step and this check",
                               path=("steps", index, "check", position))
        if not self.all_checks and "checks" not in self.model_fields_set:
            yield InvalidValue("the scenario checks nothing, so a run could only look green: add "
                               "end checks, e.g. `checks: [conservation, ground_truth]`, or a "
                               "`- check: [...]` step; to run it for its measurements only, write "
                               "`checks: []` (each run then warns that nothing was checked)",
                               path=("checks",), missing=True)

    @property
    def checks_nothing(self) -> bool:
        """Declared with an explicit ``checks: []`` and no check step: runs, with a warning."""
        return not self.all_checks

    def _refused_by_target(self) -> Iterator[InvalidValue]:
        """Keys the target cannot honour are errors naming the key and the target, never ignored."""
        target = self.target
        if not isinstance(target, NetMeshTargetSpec):
            for index, step in enumerate(self.steps):
                if isinstance(step, FaultStep) and isinstance(step.fault, KillAdapterFault):
                    yield InvalidValue(f"kill_adapter kills the net-mesh target's redis-server; the "
                                       f"{target.tag} target has none"
                                       + (" (use stall_adapter)" if target.tag == "builtin" else ""),
                                       path=("steps", index, "fault", "kill_adapter"))
        if isinstance(target, (CAbiTargetSpec, PythonTargetSpec)):
            yield from self._refused_by_foreign(target.tag)
            return
        if isinstance(target, KafkaTargetSpec):
            yield from self._refused_by_kafka()
            return
        for index, step in enumerate(self.steps):
            if isinstance(step, FaultStep) and step.fault.tag in _KAFKA_FAULT_TAGS:
                yield InvalidValue(f"{step.fault.tag} acts on the kafka target's mock cluster; the "
                                   f"{target.tag} target has none",
                                   path=("steps", index, "fault", step.fault.tag))
        if not isinstance(target, NetMeshTargetSpec):
            return
        for key, why in NET_MESH_REFUSES.items():
            if key in self.bus.model_fields_set:
                yield InvalidValue(f"not supported by target net-mesh: {why}; remove bus.{key}",
                                   path=("bus", key))
        if self.bus.backpressure == "block":
            yield InvalidValue("not supported by target net-mesh: it has no block mode; expected "
                               "drop_newest, drop_oldest or fail_producer",
                               path=("bus", "backpressure"))
        if self.bus.capacity < NET_MESH_MIN_CAPACITY:
            yield InvalidValue(f"not supported by target net-mesh: its ring_buffer_capacity must be a "
                               f"power of two >= {NET_MESH_MIN_CAPACITY} (net_init refuses smaller "
                               f"rings without saying why), got {self.bus.capacity}",
                               path=("bus", "capacity"))
        if target.redis_url is not None and target.redis_durable:
            yield InvalidValue("redis_durable configures the redis-server busbench starts, not one "
                               "given by redis_url", path=("target", "net-mesh", "redis_durable"))
        if not isinstance(self.load.keys, UniformKeys):
            yield InvalidValue(f"not supported by target net-mesh: it picks each event's shard from "
                               f"a hash of the payload, so a {self.load.keys.tag} key distribution "
                               f"cannot steer it; remove load.keys (uniform)",
                               path=("load", "keys"))
        for index, step in enumerate(self.steps):
            if not isinstance(step, FaultStep):
                continue
            fault = step.fault
            if isinstance(fault, (StallAdapterFault, KillAdapterFault)):
                if target.adapter != "redis":
                    yield InvalidValue(f"{fault.tag} acts on the redis-server of adapter: redis, but "
                                       f"target.net-mesh.adapter is {target.adapter}",
                                       path=("steps", index, "fault", fault.tag))
                elif target.redis_url is not None:
                    yield InvalidValue(f"{fault.tag} acts on the redis-server busbench starts; with "
                                       f"target.net-mesh.redis_url the Redis is not busbench's to "
                                       f"freeze or kill", path=("steps", index, "fault", fault.tag))
            if isinstance(fault, StallProducerFault) and target.driver == "binding":
                yield InvalidValue("not supported by target net-mesh with driver: binding: "
                                   "stall_producer pauses a Numba producer kernel; use driver: c-abi",
                                   path=("steps", index, "fault", fault.tag))

    def _refused_by_kafka(self) -> Iterator[InvalidValue]:
        target = self.target
        for key, why in KAFKA_REFUSES.items():
            if key in self.bus.model_fields_set:
                yield InvalidValue(f"not supported by target kafka: {why}; remove bus.{key}",
                                   path=("bus", key))
        if self.bus.backpressure == "drop_oldest":
            yield InvalidValue("not supported by target kafka: librdkafka never evicts a queued "
                               "message for a new one; expected drop_newest (QUEUE_FULL), "
                               "fail_producer (QUEUE_FULL, retried by load.on_fail) or block",
                               path=("bus", "backpressure"))
        for index, step in enumerate(self.steps):
            if not isinstance(step, FaultStep):
                continue
            if step.fault.tag not in _KAFKA_FAULT_TAGS:
                yield InvalidValue(f"not supported by target kafka: {step.fault.tag}; expected one of "
                                   f"{', '.join(sorted(_KAFKA_FAULT_TAGS))}",
                                   path=("steps", index, "fault", step.fault.tag))
            elif target.bootstrap is not None:
                yield InvalidValue(f"{step.fault.tag} acts on the mock cluster busbench starts; with "
                                   "target.kafka.bootstrap the broker is not busbench's to break",
                                   path=("steps", index, "fault", step.fault.tag))

    def _refused_by_foreign(self, tag: str) -> Iterator[InvalidValue]:
        for (section, key), why in FOREIGN_REFUSES.items():
            if key in getattr(self, section).model_fields_set:
                yield InvalidValue(f"not supported by target {tag}: {why}; remove {section}.{key}",
                                   path=(section, key))
        for index, step in enumerate(self.steps):
            if isinstance(step, FaultStep):
                yield InvalidValue(f"not supported by target {tag}: busbench cannot inject "
                                   f"{step.fault.tag} inside a bus it did not write; remove the "
                                   f"fault step", path=("steps", index, "fault", step.fault.tag))

    @property
    def target_name(self) -> str:
        """``builtin``, ``net-mesh``, ``c-abi`` or ``python``: for headers, records and the dashboard."""
        return self.target.tag

    @property
    def all_checks(self) -> tuple[CheckSpec, ...]:
        """Every check the scenario declares: those in check steps, in order, then the end checks."""
        in_steps = tuple(check for step in self.steps if isinstance(step, CheckStep)
                         for check in step.checks)
        return in_steps + self.checks

    def to_dict(self) -> dict:
        """The scenario as run, in canonical short form (durations as text such as ``"2s"``);
        JSON-friendly, and loading it back gives an equal Scenario."""
        data = self.model_dump(mode="json")
        if isinstance(self.target, NetMeshTargetSpec):
            # keys the target refuses are written only when given, so the record reloads
            for key in NET_MESH_REFUSES:
                if key not in self.bus.model_fields_set:
                    data["bus"].pop(key, None)
        if isinstance(self.target, KafkaTargetSpec):
            for key in KAFKA_REFUSES:
                if key not in self.bus.model_fields_set:
                    data["bus"].pop(key, None)
        if isinstance(self.target, (CAbiTargetSpec, PythonTargetSpec)):
            for section, key in FOREIGN_REFUSES:
                if key not in getattr(self, section).model_fields_set:
                    data[section].pop(key, None)
        return data


def keys_expected_at(loc: tuple, model: Any = None) -> list[str] | None:
    """The keys a user may write in the mapping at pydantic's ``loc``, for "unknown key" errors,
    from ``Scenario`` down (``sections.keys_expected_in`` for another model)."""
    return keys_expected_in(loc, Scenario if model is None else model)
