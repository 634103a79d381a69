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
)
from .errors import TargetConfigError, TargetError  # noqa: F401


def _builtin(scenario):
    from .builtin import BuiltinTarget
    return BuiltinTarget.from_scenario(scenario)


def _net_mesh(scenario):
    from .adapted import NetMeshRunTarget
    return NetMeshRunTarget.from_scenario(scenario)


def _c_abi(scenario):
    from .adapted import CAbiRunTarget
    return CAbiRunTarget.from_scenario(scenario)


def _python(scenario):
    from .adapted import PythonRunTarget
    return PythonRunTarget.from_scenario(scenario)


def _kafka(scenario):
    from .kafka.target import KafkaTarget
    return KafkaTarget.from_scenario(scenario)


#: target name (the scenario's ``target:`` tag) -> builder; importing a builder's
#: module loads no bus: libraries and modules are loaded by ``prepare``
BUILDERS = {"builtin": _builtin, "net-mesh": _net_mesh, "c-abi": _c_abi, "python": _python,
            "kafka": _kafka}


def open_target(scenario) -> Target:
    try:
        builder = BUILDERS[scenario.target_name]
    except KeyError:
        raise TargetConfigError("target", f"no target named {scenario.target_name!r}; "
                                f"available: {', '.join(BUILDERS)}") from None
    return builder(scenario)
