"""The tree stays clean under the project's own ruff configuration (pyproject.toml)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_under_the_projects_configuration():
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (it comes with pip install -e '.[test]')")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "busbench", "tests", "benchmarks",
                           "examples"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
