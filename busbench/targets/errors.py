"""The errors a target raises: one small hierarchy, each carrying its exit code.

    TargetError (exit_code: 2 the user can fix, 3 the run could not complete)
    ├── TargetConfigError   the scenario asks what the target cannot do (2; ``key``)
    │   └── NetMeshConfigError   a mistake in target.net-mesh (2; ``key``, ``suggestion``)
    ├── NetMeshError        net-mesh cannot be used as asked: not installed, wrong version,
    │                       a missing symbol, Redis unreachable, net_init refusing (3)
    └── ReleaseError        a net-mesh release cannot be had or used (2, or 3 for a broken download)

Messages are complete sentences the CLI prints without a traceback.
"""
from __future__ import annotations

from ..common.names import EXIT_ERROR, EXIT_USAGE


class TargetError(Exception):
    exit_code_default = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = self.exit_code_default if exit_code is None else exit_code


class TargetConfigError(TargetError, ValueError):
    """The scenario asks the target for something it cannot do (exit 2)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}", EXIT_USAGE)
        self.key = key


class NetMeshError(TargetError, RuntimeError):
    """net-mesh cannot be used as asked (environment: exit 3). The message says what to do."""
    exit_code_default = EXIT_ERROR


class NetMeshConfigError(TargetConfigError, NetMeshError):
    """A mistake in the user's net-mesh target configuration (a usage error: exit 2)."""

    def __init__(self, key: str, message: str, suggestion: str | None = None):
        text = f"target net-mesh: {key}: {message}"
        if suggestion:
            text += f"; did you mean {suggestion!r}?"
        TargetError.__init__(self, text, EXIT_USAGE)
        self.key = key
        self.suggestion = suggestion


class ReleaseError(TargetError):
    """A release cannot be had or used; 2 for what the user can fix (offline, unknown
    version), 3 for a broken download."""
