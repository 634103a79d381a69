"""The cold start's forked helpers (targets/coldstart.py): what they share is used, what
they fail to do is done here, and none outlives the compile."""
from __future__ import annotations

import os
import time

from busbench.targets import coldstart


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _compile(tmp_path, helpers, key, order):
    def here(wait):
        order.append("here")
        for name in ("first", "second"):
            wait(name)
            order.append(f"waited {name}")

    return coldstart.compile_kernels(None, True, key=key, here=here, helpers=helpers,
                                     everything=lambda: order.append("everything"), probe=None)


def test_shares_are_waited_for_by_name_and_the_helper_is_gone(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def share(name, delay):
        def run():
            time.sleep(delay)
            (marks / name).write_text(str(os.getpid()))
        return name, run

    order = []
    cold = _compile(tmp_path, ((share("first", 0.2), share("second", 0.2)),), "t-ok", order)
    assert cold.helper_process
    assert order == ["here", "waited first", "waited second", "everything"]
    pid = int((marks / "first").read_text())
    assert pid != os.getpid() and (marks / "second").read_text() == str(pid)
    assert not _alive(pid)


def test_a_helper_that_dies_leaves_its_share_to_this_process(tmp_path):
    order = []
    t0 = time.monotonic()
    cold = _compile(tmp_path, ((("first", lambda: os._exit(3)), ("second", lambda: None)),),
                    "t-dies", order)
    assert cold.helper_process
    assert order == ["here", "waited first", "waited second", "everything"]
    assert time.monotonic() - t0 < 30          # not the share timeout: the pipe closed


def test_a_helper_that_hangs_is_killed_after_the_share_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(coldstart, "SHARE_TIMEOUT_S", 0.5)
    pids = []

    def hang():
        while True:
            time.sleep(1)

    order = []
    real_fork = coldstart._fork

    def fork(share):
        helper = real_fork(share)
        pids.append(helper.pid)
        return helper

    monkeypatch.setattr(coldstart, "_fork", fork)
    _compile(tmp_path, ((("first", hang),),), "t-hangs", order)
    assert order == ["here", "waited first", "waited second", "everything"]
    assert pids and not _alive(pids[0])
