"""The jitted sources (native/jit.py) are found, not hand-kept: every module that
compiles code for Numba, and every package module those import at module level
(their constants are frozen into the kernels), so an edit to any of them drops
the Numba cache stamped with their digest."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

from busbench.native import jit

PACKAGE = Path(jit.__file__).resolve().parents[1]
#: decorators that hand a function to Numba (``@njit(...)``, ``@numba.njit`` count too)
NUMBA_DECORATORS = {"kernel", "kernel_inline", "njit", "jit", "intrinsic", "cfunc", "vectorize", "guvectorize"}


def _decorator_name(node) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["busbench", *path.relative_to(PACKAGE).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _compiles_for_numba(tree) -> bool:
    return any(_decorator_name(d) in NUMBA_DECORATORS for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for d in node.decorator_list)


def _module_level_imports(path: Path, tree, modules: dict) -> set[str]:
    """Package modules ``path`` imports at module level (ast: an implementation apart from jit.py's)."""
    name = next(n for n, p in modules.items() if p == path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = here.split(".")[: len(here.split(".")) - (node.level - 1)] if node.level else []
            source = ".".join(base + [node.module] if node.module else base)
            for target in [source] + [f"{source}.{a.name}" for a in node.names]:
                if target in modules:
                    found.add(_relative(modules[target]))
        elif isinstance(node, ast.Import):
            found |= {_relative(modules[a.name]) for a in node.names if a.name in modules}
    return found


def test_every_module_compiling_for_numba_and_what_it_imports_is_a_jitted_source():
    modules = _modules()
    trees = {path: ast.parse(path.read_text()) for path in modules.values()}
    compiling = {_relative(p) for p, tree in trees.items() if _compiles_for_numba(tree)}
    assert {"bus/kernels.py", "load/kernels.py", "targets/kafka/kernels.py", "native/atomics.py"} <= compiling
    missing = sorted(compiling - set(jit.JITTED_SOURCES))
    assert not missing, f"compile for Numba but are not among JITTED_SOURCES: {missing}"
    for path, tree in trees.items():
        if _relative(path) in jit.JITTED_SOURCES:
            lacking = sorted(_module_level_imports(path, tree, modules) - set(jit.JITTED_SOURCES))
            assert not lacking, f"{_relative(path)} imports {lacking}, whose constants its kernels may read"


def test_no_kernel_module_imports_the_scenario_models():
    """Kernels read constants from low rooms (native/, common/, bus/, load/), never
    from pydantic models: an edit to a scenario model must not drop the kernel cache."""
    assert not [s for s in jit.JITTED_SOURCES if s.startswith("scenario/")], jit.JITTED_SOURCES


def test_a_new_kernel_module_is_found_and_an_edit_to_a_constant_changes_the_digest(tmp_path, monkeypatch):
    copy = tmp_path / "busbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(jit, "PACKAGE", copy)
    before = jit.jitted_sources()
    assert before == jit.JITTED_SOURCES
    digest = jit._sources_digest(before)

    (copy / "reports" / "html.py").write_text((copy / "reports" / "html.py").read_text() + "\n# edited\n")
    assert jit._sources_digest(jit.jitted_sources()) == digest, "reports/ holds no kernel"

    names = copy / "common" / "names.py"
    names.write_text(names.read_text() + "\nINGEST_SOMETHING_NEW = 9\n")
    assert jit._sources_digest(jit.jitted_sources()) != digest, "a kernel reads names.INGEST_*"

    (copy / "targets" / "next_bus_kernels.py").write_text(
        "from ..native.jit import kernel\nfrom ..reports import svg\n\n\n@kernel\ndef ingest(x):\n    return x\n")
    after = jit.jitted_sources()
    assert set(after) - set(before) == {"targets/next_bus_kernels.py", "reports/svg.py", "reports/__init__.py"}
