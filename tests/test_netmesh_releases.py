"""The release cache of net-mesh wheels (busbench/targets/netmesh/releases.py):
hit, miss offline, corrupt wheel, wrong metadata, missing symbols. The wheels
are built here around a tiny C library, so no network is needed."""
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from busbench.targets.netmesh import releases as R

C_SOURCE = "\n".join(f"int {name}(void) {{ return 0; }}" for name in R.REQUIRED_SYMBOLS)


@pytest.fixture(scope="module")
def fake_library(tmp_path_factory):
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler to build a stand-in for the net-mesh extension")
    folder = tmp_path_factory.mktemp("lib")
    src = folder / "net.c"
    src.write_text(C_SOURCE)
    lib = folder / "_net.cpython-311-x86_64-linux-gnu.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def make_wheel(folder: Path, version: str, library: Path | None, metadata_version=None) -> Path:
    wheel = folder / f"net_mesh-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"net_mesh-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: net-mesh\nVersion: {metadata_version or version}\n")
        z.writestr("net/__init__.py", "")
        if library is not None:
            z.write(library, f"net/{library.name}")
    return wheel


def test_a_wheel_is_unpacked_checked_and_then_found_in_the_cache(tmp_path, fake_library):
    root = tmp_path / "cache"
    wheel = make_wheel(tmp_path, "0.44.1", fake_library)
    rel = R.install_wheel(wheel, "0.44.1", root)
    assert rel.version == "0.44.1" and rel.library.is_file()
    assert rel.library.parent == root / "0.44.1"
    assert set(R.REQUIRED_SYMBOLS) <= set(rel.symbols)
    assert set(rel.missing) == set(R.OPTIONAL_SYMBOLS)          # the stand-in exports none of them
    hit = R.cached("0.44.1", root)
    assert hit == rel
    assert R.release("0.44.1", root, download=False) == rel      # no pip call on a hit
    assert [r.version for r in R.cached_versions(root)] == ["0.44.1"]


def test_a_miss_offline_names_the_command_that_fills_the_cache(tmp_path):
    with pytest.raises(R.ReleaseError) as e:
        R.release("0.40.0", tmp_path, download=False)
    assert e.value.exit_code == 2
    assert "busbench releases fetch net-mesh 0.40.0" in str(e.value)


def test_a_corrupt_wheel_is_refused_and_leaves_nothing_in_the_cache(tmp_path):
    bad = tmp_path / "net_mesh-0.40.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(R.ReleaseError) as e:
        R.install_wheel(bad, "0.40.0", tmp_path / "cache")
    assert "corrupt wheel" in str(e.value) and e.value.exit_code == 3
    assert R.cached("0.40.0", tmp_path / "cache") is None


def test_the_wheels_own_metadata_decides_which_release_it_is(tmp_path, fake_library):
    wheel = make_wheel(tmp_path, "0.34.0", fake_library, metadata_version="0.8.0")
    with pytest.raises(R.ReleaseError, match="metadata says version 0.8.0, expected 0.34.0"):
        R.install_wheel(wheel, "0.34.0", tmp_path / "cache")


def test_a_library_lacking_a_required_symbol_is_not_drivable(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler")
    src = tmp_path / "partial.c"
    src.write_text("int net_init(void) { return 0; }\n")
    lib = tmp_path / "_net.cpython-311-x86_64-linux-gnu.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    with pytest.raises(R.ReleaseError, match="does not export net_ingest_raw"):
        R.install_wheel(make_wheel(tmp_path, "0.30.0", lib), "0.30.0", tmp_path / "cache")
    assert R.cached("0.30.0", tmp_path / "cache") is None


def test_a_manifest_whose_library_vanished_is_a_miss(tmp_path, fake_library):
    root = tmp_path / "cache"
    rel = R.install_wheel(make_wheel(tmp_path, "0.44.1", fake_library), "0.44.1", root)
    rel.library.unlink()
    assert R.cached("0.44.1", root) is None


def test_a_version_that_is_not_a_release_is_a_usage_error():
    with pytest.raises(R.ReleaseError, match="expected a net-mesh release like 0.45.1"):
        R.release("latest", download=False)


def test_releases_list_and_fetch_through_the_command_line(tmp_path, fake_library):
    from cli_helpers import cli, flat
    env = {"BUSBENCH_CACHE_DIR": str(tmp_path)}
    empty = cli("releases", "list", env=env)
    assert empty.exit_code == 0 and "busbench releases fetch net-mesh 0.45.1" in flat(empty.output)
    R.install_wheel(make_wheel(tmp_path, "0.44.1", fake_library), "0.44.1", tmp_path / "net-mesh")
    listed = cli("releases", "list", env=env)
    assert "0.44.1" in listed.output and "lacks net_stats" in flat(listed.output)
    bad = cli("releases", "fetch", "newest", env=env)
    assert bad.exit_code == 2 and "expected a net-mesh release like 0.45.1" in flat(bad.output)
