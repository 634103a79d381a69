"""The release cache keyed by target (busbench/targets/release_cache.py): the kafka
kind's wheel layout (librdkafka with its bundled dependencies in one folder,
found through its $ORIGIN run path), two releases loaded side by side in one
process, resolution installed -> cache -> exit 2 naming the fetch command. The
wheels are built here around tiny C libraries, so no network is needed."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from busbench.targets import release_cache as RC


def _cc(*args):
    subprocess.run(["cc", "-shared", "-fPIC", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def compiler():
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler to build stand-ins for librdkafka")


def fake_kafka_wheel(folder: Path, version: str, answer: int, dep_hash: str) -> Path:
    """A confluent-kafka wheel whose librdkafka-<hash>.so.1 needs libdep-<dep_hash>.so
    from the same folder (as auditwheel bundles them), and answers ``version`` and
    ``answer`` (through the dependency) when asked."""
    build = folder / f"build-{version}"
    build.mkdir()
    dep = build / f"libdep-{dep_hash}.so"
    (build / "dep.c").write_text(f"int dep_answer(void) {{ return {answer}; }}\n")
    _cc("-o", dep, build / "dep.c", f"-Wl,-soname,{dep.name}")
    body = [f"int {s}(void) {{ return 0; }}" for s in RC.KAFKA.required
            if s != "rd_kafka_version_str"]
    body += ["int dep_answer(void);",
             "int busbench_probe(void) { return dep_answer(); }",
             f'const char *rd_kafka_version_str(void) {{ return "lib-{version}"; }}']
    (build / "rd.c").write_text("\n".join(body) + "\n")
    lib = build / f"librdkafka-{dep_hash}0.so.1"
    _cc("-o", lib, build / "rd.c", dep, "-Wl,-rpath,$ORIGIN")
    wheel = folder / f"confluent_kafka-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"confluent_kafka-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: confluent-kafka\nVersion: {version}\n")
        z.writestr("confluent_kafka/__init__.py", "")
        z.write(lib, f"confluent_kafka.libs/{lib.name}")
        z.write(dep, f"confluent_kafka.libs/{dep.name}")
    return wheel


def test_two_kafka_releases_with_their_bundled_dependencies_load_side_by_side(tmp_path, compiler):
    root = tmp_path / "cache" / "kafka"
    old = RC.install_wheel("kafka", fake_kafka_wheel(tmp_path, "2.0.2", 202, "aaaa"), "2.0.2", root)
    new = RC.install_wheel("kafka", fake_kafka_wheel(tmp_path, "2.16.1", 2161, "bbbb"), "2.16.1", root)
    assert old.library.parent == root / "2.0.2" and new.library.parent == root / "2.16.1"
    assert (root / "2.0.2" / "libdep-aaaa.so").is_file()       # the dependency came along
    assert old.library_version == "lib-2.0.2" and new.library_version == "lib-2.16.1"
    assert set(old.missing) == set(RC.KAFKA.optional)
    libs = [ctypes.CDLL(str(r.library), mode=os.RTLD_LOCAL) for r in (old, new)]
    assert [lib.busbench_probe() for lib in libs] == [202, 2161]  # each its own dependency
    assert [r.version for r in RC.cached_versions("kafka", root)] == ["2.0.2", "2.16.1"]
    assert RC.resolve_library("kafka", "2.0.2", root) == old.library


def test_a_kafka_miss_names_the_targets_fetch_command_and_exits_2(tmp_path):
    with pytest.raises(RC.ReleaseError) as e:
        RC.resolve("kafka", "2.3.0", tmp_path)
    assert e.value.exit_code == 2
    assert "fill it with `busbench releases fetch kafka 2.3.0`" in str(e.value)
    assert "confluent-kafka 2.3.0 is neither the installed package" in str(e.value)


def test_the_installed_confluent_kafka_resolves_to_its_own_librdkafka(tmp_path):
    installed = RC.installed_version("kafka")
    if installed is None or RC.installed_library("kafka") is None:
        pytest.skip("confluent-kafka is not installed (pip install -e '.[kafka]')")
    rel = RC.resolve("kafka", installed, tmp_path)      # an empty cache: the installed one
    assert rel.source == "installed" and rel.library.name.startswith("librdkafka")
    assert rel.library.parent.name == "confluent_kafka.libs"
    assert not [s for s in RC.KAFKA.required if s not in rel.symbols]
    import confluent_kafka                               # what the package itself says it bundles
    assert rel.library_version == confluent_kafka.libversion()[0]


def test_a_cache_entry_of_one_target_is_not_a_release_of_another(tmp_path, compiler):
    root = tmp_path / "kafka"
    rel = RC.install_wheel("kafka", fake_kafka_wheel(tmp_path, "2.5.0", 1, "cccc"), "2.5.0", root)
    assert RC.cached("kafka", "2.5.0", root) == rel
    assert RC.cached("net-mesh", "2.5.0", root) is None


def test_an_unknown_target_and_a_bad_version_are_usage_errors():
    with pytest.raises(RC.ReleaseError, match="did you mean 'kafka'") as e:
        RC.kind("kafak")
    assert e.value.exit_code == 2
    with pytest.raises(RC.ReleaseError, match="expected a confluent-kafka release like 2.16.1"):
        RC.check_version("kafka", "latest")


def test_cache_folders_are_keyed_by_target(monkeypatch, tmp_path):
    monkeypatch.setenv("BUSBENCH_CACHE_DIR", str(tmp_path))
    assert RC.cache_root("kafka") == tmp_path / "kafka"
    assert RC.cache_root("net-mesh") == tmp_path / "net-mesh"   # where 0.x caches already live
    assert RC.fetch_command("kafka", "2.0.2", "2.16.1") == "busbench releases fetch kafka 2.0.2 2.16.1"


def test_which_scenarios_ask_for_a_release():
    def sc(name, **cfg):
        return SimpleNamespace(target_name=name, target=SimpleNamespace(**cfg))
    assert RC.version_asked(sc("kafka", version="2.0.2")) == (RC.KAFKA, "2.0.2")
    assert RC.version_asked(sc("net-mesh", version="0.30.0", driver="c-abi", library=None)) == \
        (RC.NET_MESH, "0.30.0")
    assert RC.version_asked(sc("net-mesh", version="0.45.1", driver="binding", library=None)) is None
    assert RC.version_asked(sc("net-mesh", version="0.30.0", driver="c-abi", library="/x.so")) is None
    assert RC.version_asked(sc("builtin")) is None
