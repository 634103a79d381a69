"""Releases of net-mesh side by side: a wheel cache busbench owns.

To compare releases in one process (interleaved, as ``compare`` does for any
variant), each release's extension library is loaded from its own path with
``RTLD_LOCAL``, never imported as the ``net`` Python module: several can then
live in one process, each with its own handles and counters. The wheels come
from the package index through pip (``pip download --no-deps``) into
``~/.cache/busbench/net-mesh/<version>/`` (``$BUSBENCH_CACHE_DIR`` overrides the
root), one folder per release, reused afterwards.

Which release a library is comes from the wheel's own metadata, never from
``net_version()``: older releases hard-coded it (0.34.0 answers "0.8.0").
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "net-mesh"
#: the C ABI busbench drives; every release since at least 0.34.0 exports these
REQUIRED_SYMBOLS = ("net_init", "net_ingest_raw", "net_ingest_raw_batch", "net_flush",
                    "net_stats_ex", "net_shutdown", "net_version")
#: used when present, reported "not comparable on this point" when absent
OPTIONAL_SYMBOLS = ("net_stats", "net_num_shards", "net_poll")
MANIFEST = "manifest.json"
_VERSION = re.compile(r"\d+\.\d+\.\d+")


from ..errors import ReleaseError  # noqa: E402,F401  (one home: targets/errors.py)


@dataclass(frozen=True)
class Release:
    version: str                 # from the wheel's METADATA
    library: Path                # the extension .so, loaded by path
    wheel: str                   # the wheel's file name
    wheel_sha256: str
    symbols: tuple               # required and optional symbols the library exports
    missing: tuple               # optional symbols it does not export

    def as_dict(self) -> dict:
        return {"version": self.version, "library": str(self.library), "wheel": self.wheel,
                "wheel_sha256": self.wheel_sha256, "symbols": list(self.symbols),
                "missing": list(self.missing)}


def cache_root() -> Path:
    env = os.environ.get("BUSBENCH_CACHE_DIR")
    if env:
        return Path(env) / PACKAGE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "busbench" / PACKAGE


def fetch_command(version: str) -> str:
    return f"busbench releases fetch {version}"


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ReleaseError(f"expected a net-mesh release like 0.45.1, got {version!r}")
    return version


def exported_symbols(library: Path) -> tuple[tuple, tuple]:
    """(present, missing) among the symbols busbench uses; loads the library
    locally (its symbols never leak into the process's global namespace)."""
    try:
        lib = ctypes.CDLL(str(library), mode=os.RTLD_LOCAL)
    except OSError as e:
        raise ReleaseError(f"{library}: cannot be loaded as a shared library: {e}", 3) from None
    present, missing = [], []
    for name in REQUIRED_SYMBOLS + OPTIONAL_SYMBOLS:
        (present if hasattr(lib, name) else missing).append(name)
    return tuple(present), tuple(missing)


def _metadata_version(wheel: zipfile.ZipFile) -> str | None:
    for name in wheel.namelist():
        if name.endswith(".dist-info/METADATA"):
            for line in wheel.read(name).decode("utf-8", "replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return None


def install_wheel(wheel_path: Path, version: str, root: Path | None = None) -> Release:
    """Unpack the extension of a downloaded wheel into the cache and check it:
    the wheel's own version must be ``version`` and the required symbols exported."""
    check_version(version)
    root = root or cache_root()
    wheel_path = Path(wheel_path)
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            bad = wheel.testzip()
            if bad is not None:
                raise ReleaseError(f"{wheel_path.name}: corrupt wheel (bad member {bad}); "
                                   f"remove it and run `{fetch_command(version)}`", 3)
            actual = _metadata_version(wheel)
            if actual != version:
                raise ReleaseError(f"{wheel_path.name}: the wheel's metadata says version "
                                   f"{actual or 'nothing'}, expected {version}", 3)
            members = [n for n in wheel.namelist()
                       if re.fullmatch(r"net/_net[^/]*\.(so|pyd|dylib)", n)]
            if not members:
                raise ReleaseError(f"{wheel_path.name}: no net/_net*.so extension inside", 3)
            folder = root / version
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_mkdir(root)))
            try:
                library = staging / Path(members[0]).name
                with wheel.open(members[0]) as src, open(library, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile as e:
        raise ReleaseError(f"{wheel_path.name}: corrupt wheel ({e}); run "
                           f"`{fetch_command(version)}` again", 3) from None
    try:
        present, missing = exported_symbols(library)
        lacking = [s for s in REQUIRED_SYMBOLS if s not in present]
        if lacking:
            raise ReleaseError(f"net-mesh {version} does not export {', '.join(lacking)}: "
                               f"busbench cannot drive it", 3)
        digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
        release = Release(version, folder / library.name, wheel_path.name, digest,
                          present, missing)
        (staging / MANIFEST).write_text(json.dumps(release.as_dict(), indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)          # a cache entry appears whole or not at all
        return release
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(version: str, root: Path | None = None) -> Release | None:
    """The cached release, or None when it is not (wholly) in the cache."""
    folder = (root or cache_root()) / check_version(version)
    try:
        data = json.loads((folder / MANIFEST).read_text())
        release = Release(data["version"], Path(data["library"]), data["wheel"],
                          data["wheel_sha256"], tuple(data["symbols"]), tuple(data["missing"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if release.version != version or not release.library.is_file():
        return None
    return release


def fetch(version: str, root: Path | None = None, timeout_s: float = 300.0) -> Release:
    """Download the wheel of ``version`` for this interpreter and platform with pip,
    and cache its extension. Raises ReleaseError (exit 2) when pip cannot get it."""
    check_version(version)
    with tempfile.TemporaryDirectory(prefix="busbench-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{PACKAGE}=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ReleaseError(f"pip did not download net-mesh {version} within "
                               f"{timeout_s:g}s; is the package index reachable?") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReleaseError(f"cannot download net-mesh {version} ({last}); offline, run "
                               f"`{fetch_command(version)}` where the package index is reachable")
        return install_wheel(wheels[0], version, root)


def release(version: str, root: Path | None = None, download: bool = True) -> Release:
    """The release from the cache, fetched first when missing and ``download``."""
    hit = cached(version, root)
    if hit is not None:
        return hit
    if not download:
        raise ReleaseError(f"net-mesh {version} is not in the cache ({cache_root() if root is None else root}); "
                           f"fill it with `{fetch_command(version)}`")
    return fetch(version, root)


def cached_versions(root: Path | None = None) -> list[Release]:
    folder = root or cache_root()
    if not folder.is_dir():
        return []
    found = [cached(p.name, folder) for p in folder.iterdir() if _VERSION.fullmatch(p.name)]
    return sorted((r for r in found if r is not None),
                  key=lambda r: tuple(int(x) for x in r.version.split(".")))


def installed_version() -> str | None:
    """The installed net-mesh distribution's version (its metadata), or None."""
    import importlib.metadata as md
    try:
        return md.version(PACKAGE)
    except md.PackageNotFoundError:
        return None


def unavailable(version: str, root: Path | None = None) -> str | None:
    """Why ``target.net-mesh.version: version`` cannot run here without a download
    (a sentence naming the command that fills the cache), or None when the
    installed package is that version or the cache holds it."""
    if installed_version() == version or cached(version, root) is not None:
        return None
    return (f"net-mesh {version} is neither the installed package ({installed_version() or 'none'}) "
            f"nor in busbench's release cache ({root or cache_root()}); fill it with "
            f"`{fetch_command(version)}`")
