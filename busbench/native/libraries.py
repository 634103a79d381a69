"""Finding a real bus's shared library on disk, without loading or importing anything.

Both real buses ship their native code inside a wheel (net-mesh's extension module,
the librdkafka confluent-kafka bundles). ``busbench validate`` must never load a
library a scenario names, and ``run`` must say what it is about to load before it
does, so finding the file is kept apart from loading it (``ffi``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


def package_folders(name: str) -> list[Path]:
    """The folders of the installed package ``name``, found without importing it
    (``[]`` when it is not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(folder) for folder in spec.submodule_search_locations]


def given_file(path, error: type[Exception], what: str) -> Path:
    """``path`` as a Path when it is a file, else ``error`` naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} {p} does not exist")
    return p
