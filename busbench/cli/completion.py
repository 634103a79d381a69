"""Shell completion: scenario files for FILES arguments, scenario keys for ``--set``.

click does the shell side (bash, zsh, fish); these functions say what to
offer. ``--set`` keys are read from the scenario models, so a new field is
offered as soon as it exists.
"""
from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin

from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
SCENARIO_SUFFIXES = (".yaml", ".yml")
RECORD_SUFFIXES = (".json",)


def _paths(incomplete: str, suffixes: tuple) -> list[CompletionItem]:
    """Files ending in ``suffixes`` and directories (to descend into) that start with ``incomplete``."""
    folder, _, prefix = incomplete.rpartition("/")
    base = Path(folder or ".")
    if folder == "" and incomplete.startswith("/"):
        base = Path("/")
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
            continue
        shown = f"{folder}/{entry.name}" if folder else entry.name
        if entry.is_dir():
            out.append(CompletionItem(shown + "/", type="plain"))
        elif entry.name.endswith(suffixes):
            out.append(CompletionItem(shown, type="plain"))
    return out


def scenario_files(ctx, param, incomplete: str) -> list[CompletionItem]:
    return _paths(incomplete, SCENARIO_SUFFIXES)


def record_files(ctx, param, incomplete: str) -> list[CompletionItem]:
    return _paths(incomplete, RECORD_SUFFIXES)


def _unwrap(annotation):
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def setting_keys() -> list[str]:
    """Every dotted path ``--set`` can reach through the scenario's sections
    (``bus.shards``, ``bus.batch.max_events``, ``load.rate``...)."""
    from ..scenario.schema import Scenario, Section

    keys = []

    def walk(cls, prefix):
        for name, info in cls.model_fields.items():
            key = prefix + (info.alias or name)
            keys.append(key)
            inner = _unwrap(info.annotation)
            if isinstance(inner, type) and issubclass(inner, Section) and inner.model_fields \
                    and not hasattr(inner, "tag"):
                walk(inner, key + ".")
    walk(Scenario, "")
    return keys


def set_keys(ctx, param, incomplete: str) -> list[CompletionItem]:
    if "=" in incomplete:
        return []
    return [CompletionItem(f"{key}=", type="plain") for key in setting_keys()
            if key.startswith(incomplete)]


def script(shell: str, command, prog_name: str = "busbench") -> str:
    """The completion script of ``command`` (the ``busbench`` group) for ``shell``
    (what ``busbench completion SHELL`` prints)."""
    from click.shell_completion import get_completion_class

    main = command
    complete_var = "_" + prog_name.replace("-", "_").upper() + "_COMPLETE"
    cls = get_completion_class(shell)
    return cls(main, {}, prog_name, complete_var).source()
