"""What each step of a run waits for, and how long it should take.

The progress display uses it to tell the truth on a step that runs long (a
shutdown draining a deep backlog through a slow adapter, a flush behind a
stalled shard): what the step waits for, how many events are still in the
rings, how fast they drain and when they should be out.
"""
from __future__ import annotations

from ..common.units import format_duration

PRODUCERS_TO_RETURN = "producer threads to return (a stalled one wakes when its stall ends)"


def plan(step) -> tuple[float, str]:
    """(seconds the step should take, what it waits for) for a scenario step."""
    kind = step.tag
    if kind == "run":
        if step.duration is not None:
            return step.duration / 1e9, "producers to stop at the step's deadline"
        return 0.0, "producers to offer the step's events"
    if kind == "flush":
        return 0.0, "every shard to settle past its flush target"
    if kind == "shutdown":
        return 0.0, shutdown_waits_for(step.grace)
    if kind == "sleep":
        return step.duration / 1e9, ""
    return 0.0, ""


def shutdown_waits_for(grace_ns: int) -> str:
    return f"in-flight producers (grace {format_duration(grace_ns)}), then the final drain"
