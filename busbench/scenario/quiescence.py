"""When may a mid-run check read the counters? Only at a quiescent point.

Conservation and ground truth compare totals that agree only when nothing is
in flight: no producer mid-push, nothing sitting in a ring or a batch. Right
after a run step the producers have stopped but the rings still hold events,
so reading the counters there would fail a correct bus. A quiescent point is
a flush (not under load) that reached its barrier with every producer idle at
the call, and no load since; or the end of the run, after shutdown.

The scenario is refused at validation when a mid-run conservation or
ground_truth check has no such flush before it (``schema``: it could only ever
be "not evaluable"); at run time, a check reached without quiescence (a flush
that timed out, a producer still stalled mid-push) is "not evaluable", never a
failure. ``NEEDS_QUIESCENCE`` is the one place saying which checks need it.
"""
from __future__ import annotations

# Checks whose verdict compares totals, valid only at quiescence.
NEEDS_QUIESCENCE = ("conservation", "ground_truth")


class Quiescence:
    """Tracks, step by step, whether the bus is at a quiescent point (runner side)."""

    def __init__(self):
        self.settled = True                 # nothing ingested yet
        self.reason = ""

    def load_started(self) -> None:
        self.settled = False
        self.reason = "load ran since the last flush"

    def flushed(self, reached: bool, timed_out: bool, under_load: bool, producers_idle: bool) -> None:
        if under_load:
            self.settled, self.reason = False, "the last flush ran under load"
        elif not producers_idle:
            self.settled, self.reason = False, "a producer was still mid-push at the last flush"
        elif timed_out or not reached:
            self.settled, self.reason = False, "the last flush timed out with events in flight"
        else:
            self.settled, self.reason = True, ""

    def at_check(self, producers_running: bool, shut_down: bool) -> bool:
        if producers_running:
            self.reason = "a producer was still running (stalled mid-push by a fault)"
            return False
        if shut_down:
            return True
        return self.settled


def unsettled_checks(steps):
    """Static rule for validation: yields (step index, position in the check,
    check kind) for each mid-run check needing quiescence with no flush (not
    under load) between the last load and it."""
    settled = True
    for index, step in enumerate(steps):
        kind = step.tag
        if kind == "run" or (kind == "flush" and step.under_load):
            settled = False
        elif kind == "flush":
            settled = True
        elif kind == "check" and not settled:
            for position, check in enumerate(step.checks):
                if check.kind in NEEDS_QUIESCENCE:
                    yield index, position, check.kind
