"""No jitted code hands a constant to a ``@kernel``: Numba compiles a kernel once per
literal it is called with.

Inside jitted code an integer or boolean constant, or a module-level constant
(Numba freezes globals), is typed ``Literal[int](k)``, and a call to another
dispatcher compiles a new specialization for each literal: ``arg_value(calls,
0, ...)`` ... ``arg_value(calls, 7, ...)`` were 16 compiles of arg_value on a
cold cache, ~4 of the first run's 16 s of compiling. ``@kernel_inline``
functions are inlined, not dispatched, and Python calling a kernel passes
plain int64: neither matters. This test reads the package's sources (``ast``)
and fails on such a call, naming the file, line and callee.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "busbench"
JIT_DECORATORS = {"kernel", "kernel_inline", "njit", "jit", "cfunc"}
#: ``native.jit.LazyCFunc(signature, body)``: the body is compiled when first asked for
LAZY = {"LazyCFunc"}


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _is_literal(node: ast.expr) -> bool:
    """A constant number or boolean, possibly negated, or an UPPER_CASE global
    (a frozen module constant). ``np.int64(0)`` and ``K + 1`` are values, not literals."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal(node.operand)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (bool, int, float))
    if isinstance(node, ast.Name):
        return node.id.isupper() and len(node.id) > 1
    return False


def literal_calls(texts: dict[str, str]) -> list[str]:
    """``path:line: callee(arg)`` for every call from jitted code to a ``@kernel`` with a
    literal argument, over ``texts`` (path -> source)."""
    trees = {path: ast.parse(text, path) for path, text in texts.items()}
    kernels, jitted = set(), []
    for path, tree in trees.items():
        compiled_later = set()        # ``cfunc(sig)(fn)``, ``LazyCFunc(sig, fn)``: compiled by a call
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Call) and _decorator_name(node.func) in JIT_DECORATORS)
                    or _callee(node) in LAZY):
                compiled_later.update(a.id for a in node.args if isinstance(a, ast.Name))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = {_decorator_name(d) for d in node.decorator_list}
            if "kernel" in names:
                kernels.add(node.name)
            if names & JIT_DECORATORS or node.name in compiled_later:
                jitted.append((path, node))
    found = []
    for path, fn in jitted:
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _callee(node) in kernels:
                args = list(node.args) + [k.value for k in node.keywords]
                for arg in args:
                    if _is_literal(arg):
                        found.append(f"{path}:{node.lineno}: {_callee(node)}(... "
                                     f"{ast.unparse(arg)} ...) in {fn.name}")
    return found


def _package_texts() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE.parent)): p.read_text(encoding="utf-8")
            for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_jitted_code_hands_a_kernel_a_literal():
    found = literal_calls(_package_texts())
    assert not found, ("a constant handed to a @kernel compiles it once per constant; pass "
                       "a value (np.int64(k), a variable):\n" + "\n".join(found))


def test_the_reader_sees_the_package_kernels():
    """It reads what it must: the package's kernels and their jitted callers."""
    texts = _package_texts()
    assert any("def produce(" in t for t in texts.values())
    # the calls this test was written for would be found in today's code shape
    broken = texts["busbench/load/foreign.py"].replace(
        "arg_value(calls, k + 1, i,", "arg_value(calls, 1, i,")
    assert broken != texts["busbench/load/foreign.py"]
    found = literal_calls({**texts, "busbench/load/foreign.py": broken})
    assert len(found) == 1 and "arg_value(... 1 ...) in call_c" in found[0]
    # ... and in a step's body, compiled through LazyCFunc
    broken = texts["busbench/load/foreign.py"].replace(
        "    write_payloads(calls, payload, values, t_int, m)\n",
        "    write_payloads(calls, payload, values, t_int, 3)\n")
    assert broken != texts["busbench/load/foreign.py"]
    found = literal_calls({**texts, "busbench/load/foreign.py": broken})
    assert len(found) == 1 and "write_payloads(... 3 ...) in _foreign_step" in found[0]


def test_it_fails_on_each_kind_of_literal():
    src = '''
from busbench.native.jit import kernel, kernel_inline
from numba import cfunc
import numpy as np
LIMIT = 29

@kernel
def callee(a, b):
    return a + b

@kernel_inline
def inlined(a, b):
    return a

@kernel
def caller(x):
    callee(x, 0)            # an int constant
    callee(x, -1)           # negated
    callee(x, True)         # a bool
    callee(x, LIMIT)        # a frozen global
    callee(x, b=2)          # by keyword
    callee(x, np.int64(0))  # fine: a value
    callee(x, LIMIT + 1)    # fine: an expression is typed int64
    inlined(x, 0)           # fine: inlined
    return x

def body(x):
    return callee(x, 3)     # compiled below

step = cfunc("int64(int64)")(body)

def lazy_body(x):
    return callee(x, 4)     # compiled below, when first asked for

LAZY_STEP = LazyCFunc("int64(int64)", lazy_body)

def from_python(x):
    return callee(x, 0)     # fine: Python passes int64
'''
    found = literal_calls({"synthetic.py": src})
    assert [f.split(": ", 1)[1] for f in found] == [
        "callee(... 0 ...) in caller", "callee(... -1 ...) in caller",
        "callee(... True ...) in caller", "callee(... LIMIT ...) in caller",
        "callee(... 2 ...) in caller", "callee(... 3 ...) in body",
        "callee(... 4 ...) in lazy_body"]
