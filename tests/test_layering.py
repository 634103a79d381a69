"""The house rule (issue 18): busbench's packages follow the flow, and imports
only go down it.

Every module's imports are read with ``ast`` (function-level imports too, since
they are the usual way to hide a circle), each module is mapped to its room
(``busbench.<room>...``), and two things fail:

* an import cycle between modules, printed as the chain ``a.b -> c.d -> a.b``;
* an import from a lower room to a higher one, printed as ``a.b -> c.d``;
* an import of a package module that does not exist (left behind by a move;
  a function-level import would otherwise fail only when it runs).

``ROOMS`` is the one declaration of the order, lowest first. A room may import
from its own room and from any room before it in the list.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "busbench"

#: lowest first; "busbench" is the package's own __init__ (its version), "__main__" the entry point
ROOMS = ["busbench", "common", "native", "scenario", "bus", "load", "targets", "evidence", "verdicts",
         "run", "reports", "cli", "__main__"]


# --------------------------------------------------------------------------- reading imports
#: marks an edge to a package module that does not exist (an import left behind by a move)
MISSING = "missing:"

def module_name(path: Path, package: Path) -> tuple[str, bool]:
    """(dotted module name, is a package __init__) of a file under ``package``."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def read_imports(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its body. ``from X
    import name`` is an edge to ``X.name`` when that is a module, else to ``X``."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        files[path] = module_name(path, package)
    modules = {name for name, _ in files.values()}
    root = package.name
    graph: dict[str, set[str]] = {}
    for path, (name, is_pkg) in files.items():
        here = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target == root or target.startswith(root + "."):
                    if target not in modules:           # a module that is not there (renamed, moved)
                        edges.add(MISSING + target)
                        continue
                    if target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


# --------------------------------------------------------------------------- the rule
def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed chain of modules) per strongly connected group of
    modules (Tarjan), shortest found by a breadth-first walk inside the group."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        start = min(group)
        paths, seen = {start: [start]}, {start}
        queue = [start]
        found = None
        while queue and found is None:
            v = queue.pop(0)
            for w in sorted(graph.get(v, ())):
                if w == start:
                    found = paths[v] + [start]
                    break
                if w in group and w not in seen:
                    seen.add(w)
                    paths[w] = paths[v] + [w]
                    queue.append(w)
        cycles.append(found)
    return cycles


def upward_imports(graph: dict[str, set[str]], rooms: list[str]) -> list[tuple[str, str]]:
    rank = {room: i for i, room in enumerate(rooms)}
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if rank[room_of(a)] < rank[room_of(b)])


def problems(graph: dict[str, set[str]], rooms: list[str]) -> list[str]:
    out = [f"import of a missing module: {a} -> {b[len(MISSING):]}"
           for a, targets in sorted(graph.items()) for b in sorted(targets) if b.startswith(MISSING)]
    graph = {a: {b for b in targets if not b.startswith(MISSING)} for a, targets in graph.items()}
    out += [f"import cycle: {' -> '.join(cycle)}" for cycle in find_cycles(graph)]
    out += [f"upward import: {a} -> {b} ({room_of(a)} is below {room_of(b)} in ROOMS)"
            for a, b in upward_imports(graph, rooms)]
    return out


# --------------------------------------------------------------------------- the tests
def test_every_module_lives_in_a_declared_room():
    graph = read_imports(PACKAGE)
    unknown = sorted(m for m in graph if room_of(m) not in ROOMS)
    assert not unknown, f"modules outside every room of ROOMS: {unknown}"
    flat = sorted(m for m in graph if m.count(".") == 1 and room_of(m) not in ("__main__",)
                  and not (PACKAGE / room_of(m)).is_dir())
    assert not flat, f"flat modules beside the rooms: {flat}"


def test_imports_follow_the_flow():
    found = problems(read_imports(PACKAGE), ROOMS)
    assert not found, "\n".join(found)


def test_the_rule_catches_a_cycle_and_an_upward_import():
    """The check can fail: a tiny graph with a circle and one with an upward edge."""
    rooms = ["low", "high"]
    circle = {"p.low.a": {"p.low.b"}, "p.low.b": {"p.low.c"}, "p.low.c": {"p.low.a"}, "p.high.d": {"p.low.a"}}
    assert problems(circle, rooms) == ["import cycle: p.low.a -> p.low.b -> p.low.c -> p.low.a"]
    upward = {"p.low.a": {"p.high.b"}, "p.high.b": set()}
    assert problems(upward, rooms) == ["upward import: p.low.a -> p.high.b (low is below high in ROOMS)"]
    clean = {"p.high.b": {"p.low.a"}, "p.low.a": set()}
    assert problems(clean, rooms) == []


def test_function_level_and_relative_imports_are_read(tmp_path):
    """A circle hidden in a function body (``import when called``) is still a circle."""
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for init in (pkg / "__init__.py", pkg / "low" / "__init__.py", pkg / "high" / "__init__.py"):
        init.write_text("")
    (pkg / "low" / "a.py").write_text("from . import b\n")
    (pkg / "low" / "b.py").write_text("def late():\n    from .a import thing\n    return thing\n")
    (pkg / "high" / "c.py").write_text("from ..low.a import x\n")
    (pkg / "low" / "d.py").write_text("def up():\n    import pkg.high.c\n")
    (pkg / "high" / "e.py").write_text("def gone():\n    from .moved_away import x\n")
    graph = read_imports(pkg)
    assert graph["pkg.low.a"] == {"pkg.low.b"}
    assert graph["pkg.low.b"] == {"pkg.low.a"}
    assert graph["pkg.high.c"] == {"pkg.low.a"}
    assert problems(graph, ["pkg", "low", "high"]) == [
        "import of a missing module: pkg.high.e -> pkg.high.moved_away",
        "import cycle: pkg.low.a -> pkg.low.b -> pkg.low.a",
        "upward import: pkg.low.d -> pkg.high.c (low is below high in ROOMS)"]
