"""Finding a real bus's shared library on disk, without loading or importing anything.

Both real buses ship their native code inside a wheel (net-mesh's extension module,
the librdkafka confluent-kafka bundles). ``busbench validate`` must never load a
library a scenario names, and ``run`` must say what it is about to load before it
does, so finding the file is kept apart from loading it (``ffi``).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
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


def open_by_path(so: Path, symbols: dict, error: type[Exception], what: str, lacking_hint: str = "",
                 optional=()) -> tuple:
    """Load ``so`` with ``RTLD_LOCAL`` (several releases of one library can live in
    one process), type each of ``symbols`` (name -> (restype, argtypes)) and take
    its address for the kernels. Returns (the CDLL, {name: address}, the optional
    symbols it lacks); ``error`` names ``what`` when it cannot load or lacks a
    required symbol."""
    try:
        cdll = ctypes.CDLL(str(so), mode=os.RTLD_LOCAL)
    except OSError as e:
        raise error(f"cannot load {what} {so}: {e}") from e
    absent = [name for name in symbols if not hasattr(cdll, name)]
    lacking = [name for name in absent if name not in optional]
    if lacking:
        raise error(f"{what} {so} lacks the C ABI symbol(s) {', '.join(lacking)}: busbench cannot "
                    f"drive it{lacking_hint}")
    addresses = {}
    for name, (restype, argtypes) in symbols.items():
        if name in absent:
            continue
        fn = getattr(cdll, name)
        fn.restype, fn.argtypes = restype, argtypes
        addresses[name] = ctypes.cast(fn, ctypes.c_void_p).value
    return cdll, addresses, tuple(absent)
