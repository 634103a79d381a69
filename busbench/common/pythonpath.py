"""The environment of a Python child process that must import this very copy of busbench.

busbench starts ``python -m busbench...`` children (a supervised run, a
``--repeat`` run). They must import the
same package as their parent, also when it is not installed and the child
runs in another directory: the folder that holds the package goes first on
the child's ``PYTHONPATH``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the folder holding the ``busbench`` package
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def child_env(base: dict | None = None) -> dict:
    """A copy of ``base`` (default: this process's environment) whose ``PYTHONPATH``
    starts with the folder holding this busbench."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env
