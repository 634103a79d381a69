"""Targets: the buses busbench can drive, behind one interface (base.py).

``open_target(scenario)`` builds the target a scenario names; each target
translates the scenario's ``bus:`` section itself (builtin.py for the reference
bus). A new target registers its builder in ``BUILDERS``.
"""
from __future__ import annotations

from .base import (  # noqa: F401
    Capabilities,
    Delivery,
    FlushClaim,
    ShutdownClaim,
    Target,
    TargetConfigError,
)


def _builtin(scenario):
    from .builtin import BuiltinTarget
    return BuiltinTarget.from_scenario(scenario)


BUILDERS = {"builtin": _builtin}


def open_target(scenario) -> Target:
    try:
        builder = BUILDERS[scenario.target_name]
    except KeyError:
        raise TargetConfigError("target", f"no target named {scenario.target_name!r}; "
                                f"available: {', '.join(BUILDERS)}") from None
    return builder(scenario)
