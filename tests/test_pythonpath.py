"""Children busbench starts import the same busbench, from wherever they run."""
from __future__ import annotations

import os
from pathlib import Path

from busbench.common.pythonpath import PACKAGE_PARENT, child_env


def test_the_path_put_first_holds_this_package():
    # run/supervisor.py once took parents[1] (the package itself, after it moved into
    # run/): a child started outside the checkout, with busbench not installed
    # (benchmarks/fuzz.py from a temporary folder), died importing it
    assert (Path(PACKAGE_PARENT) / "busbench" / "__init__.py").is_file()
    assert Path(PACKAGE_PARENT, "busbench").resolve() == Path(__file__).resolve().parents[1] / "busbench"


def test_child_env_prepends_and_keeps_the_rest():
    env = child_env({"PYTHONPATH": "/elsewhere", "OTHER": "1"})
    assert env["PYTHONPATH"] == PACKAGE_PARENT + os.pathsep + "/elsewhere"
    assert env["OTHER"] == "1"
    assert child_env({})["PYTHONPATH"] == PACKAGE_PARENT


def test_every_child_spawner_uses_it():
    """The places that start ``python -m busbench...`` take their environment here (the
    cold start's compiling helpers are forked: they need none)."""
    root = Path(PACKAGE_PARENT) / "busbench"
    for rel in ("run/supervisor.py", "run/repeat.py"):
        text = (root / rel).read_text()
        assert "child_env()" in text and "parents[" not in text, rel
