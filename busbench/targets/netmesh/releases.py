"""Releases of net-mesh side by side: the ``net-mesh`` kind of busbench's release
cache (busbench/targets/release_cache.py keeps the cache, keyed by target).

Each release's extension library (``net/_net*.so`` of its wheel) is loaded from
its own path with ``RTLD_LOCAL``, never imported as the ``net`` Python module:
several live in one process, each with its own handles and counters. Cached in
``~/.cache/busbench/net-mesh/<version>/`` (``$BUSBENCH_CACHE_DIR`` overrides the
root); filled by ``busbench releases fetch net-mesh VERSION...``.

Which release a library is comes from the wheel's own metadata, never from
``net_version()``: releases up to 0.45.1 hard-code it (0.34.0 answers "0.8.0").
Every release on the package index since 0.19.0 exports the C ABI busbench drives.
"""
from __future__ import annotations

from pathlib import Path

from .. import release_cache as _rc
from ..errors import ReleaseError  # noqa: F401  (one home: targets/errors.py)
from ..release_cache import MANIFEST, Release  # noqa: F401

KIND = _rc.NET_MESH
PACKAGE = KIND.package
#: the C ABI busbench drives; every release since 0.19.0 exports these
REQUIRED_SYMBOLS = KIND.required
#: used when present, reported "not comparable on this point" when absent
OPTIONAL_SYMBOLS = KIND.optional


def cache_root() -> Path:
    return _rc.cache_root(KIND)


def fetch_command(version: str) -> str:
    return _rc.fetch_command(KIND, version)


def check_version(version: str) -> str:
    return _rc.check_version(KIND, version)


def exported_symbols(library: Path) -> tuple[tuple, tuple]:
    present, missing, _ = _rc.exported_symbols(KIND, library)
    return present, missing


def install_wheel(wheel_path: Path, version: str, root: Path | None = None) -> Release:
    return _rc.install_wheel(KIND, wheel_path, version, root)


def cached(version: str, root: Path | None = None) -> Release | None:
    return _rc.cached(KIND, version, root)


def fetch(version: str, root: Path | None = None, timeout_s: float = 300.0) -> Release:
    return _rc.fetch(KIND, version, root, timeout_s)


def release(version: str, root: Path | None = None, download: bool = True) -> Release:
    return _rc.release(KIND, version, root, download)


def cached_versions(root: Path | None = None) -> list[Release]:
    return _rc.cached_versions(KIND, root)


def installed_version() -> str | None:
    return _rc.installed_version(KIND)


def unavailable(version: str, root: Path | None = None) -> str | None:
    return _rc.unavailable(KIND, version, root)
