"""The ``kafka`` target's scenario vocabulary: ``target: {kafka: {...}}`` and its faults.

Validated with the scenario, without loading librdkafka: a key of the target
section that is not listed here is an error naming the nearest valid key; a
``config:`` key that busbench itself sets from the ``bus:`` section is refused,
naming the bus key to use. Whether librdkafka knows a ``config:`` key is only
known once it is loaded (``run``: exit 2 naming the key).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from ..common.units import parse_duration
from .errors import InvalidValue, show
from .sections import Count, Duration, DurationOrZero, FaultSpec, OneKey, TimedFaultSpec

KAFKA_VERSION = "2.16.1"          # the confluent-kafka release the kafka extra pins

#: librdkafka settings busbench derives from the scenario: a config: entry would fight them
KAFKA_DERIVED = {
    "bootstrap.servers": "target.kafka.bootstrap",
    "queue.buffering.max.messages": "bus.capacity",
    "batch.num.messages": "bus.batch.max_events",
    "linger.ms": "bus.batch.max_delay",
    "queue.buffering.max.ms": "bus.batch.max_delay",
    "dr_msg_cb": "(busbench's delivery-report callback)",
    "dr_cb": "(busbench's delivery-report callback)",
    "opaque": "(busbench's delivery-report state)",
    "stats_cb": "(busbench's statistics callback)",
    "statistics.interval.ms": "(busbench reads statistics every 100 ms)",
}

#: bus keys the kafka target cannot honour, and why
KAFKA_REFUSES = {
    "block_timeout": "RD_KAFKA_MSG_F_BLOCK blocks until there is room, with no timeout of its own",
    "counters": "librdkafka's counters are its own",
    "workers": "librdkafka runs its own threads (one per broker)",
    "latency": "busbench cannot stamp dispatch times inside librdkafka",
    "adapter": "the downstream is the broker (target.kafka.bootstrap, or the mock cluster)",
    "mutations": "mutations are faults of the reference bus",
}


def _version(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise InvalidValue(f"expected a confluent-kafka release like {KAFKA_VERSION}, got {show(value)}")
    return value


def _bootstrap(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d+(,[A-Za-z0-9_.\-\[\]:]+:\d+)*", value):
        raise InvalidValue(f"expected host:port (a comma-separated list for several brokers), got {show(value)}")
    return value


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value):
        raise InvalidValue(f"expected a Kafka topic name (letters, digits, '.', '_', '-'), got {show(value)}")
    return value


def _config(value: Any) -> dict:
    if not isinstance(value, dict):
        raise InvalidValue(f"expected a mapping of librdkafka settings, like {{acks: all}}, got {show(value)}")
    out = {}
    for key, setting in value.items():
        if key in KAFKA_DERIVED:
            raise InvalidValue(f"{key} is set by busbench from {KAFKA_DERIVED[key]}; remove it here",
                               path=(key,))
        if isinstance(setting, bool):
            setting = "true" if setting else "false"
        if not isinstance(setting, (str, int, float)):
            raise InvalidValue(f"expected a text or number value, got {show(setting)}", path=(key,))
        out[str(key)] = str(setting)
    return out


class KafkaTargetSpec(OneKey):
    """librdkafka's producer (the confluent-kafka wheel's), driven by the Numba producer
    kernels through its C ABI, judged by what the broker's log holds."""
    tag: ClassVar[str] = "kafka"
    version: Annotated[str, AfterValidator(_version)] = KAFKA_VERSION
    bootstrap: Annotated[str, AfterValidator(_bootstrap)] | None = None
    topic: Annotated[str, AfterValidator(_topic)] | None = None
    config: Annotated[dict[str, Any], AfterValidator(_config)] = Field(default_factory=dict)
    shutdown: Literal["destroy", "flush", "purge"] = "flush"


# --- faults through the mock cluster's API ---------------------------------------------


class BrokerDownFault(TimedFaultSpec):
    """kafka: the mock broker goes down ``after`` into the next run; up again after ``for``
    (stays down when absent)."""
    tag: ClassVar[str] = "broker_down"
    after: DurationOrZero = 0
    duration: Duration | None = Field(default=None, alias="for")


class BrokerRttFault(TimedFaultSpec):
    """kafka: the mock broker answers ``rtt`` late from ``after`` into the next run, for ``for``."""
    tag: ClassVar[str] = "broker_rtt"
    rtt: Duration = parse_duration("100ms")
    after: DurationOrZero = 0
    duration: Duration | None = Field(default=None, alias="for")


class ProduceErrorsFault(FaultSpec):
    """kafka: the next ``requests`` produce requests fail with broker error ``error``
    (default 6, NOT_LEADER_OR_FOLLOWER, retriable)."""
    tag: ClassVar[str] = "produce_errors"
    requests: Annotated[Count, Field(ge=1, le=100_000)] = 10
    error: Annotated[Count, Field(ge=1, le=200)] = 6
    after: DurationOrZero = 0


class KillClusterFault(FaultSpec):
    """kafka: the whole mock cluster is destroyed ``after`` into the next run (its log with it)."""
    tag: ClassVar[str] = "kill_cluster"
    after: DurationOrZero = 0


KAFKA_FAULTS = (BrokerDownFault, BrokerRttFault, ProduceErrorsFault, KillClusterFault)
