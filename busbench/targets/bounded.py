"""A cold call into a foreign bus (flush, shutdown) that cannot hang the run.

The call runs on a daemon helper thread and is waited for at most a bound;
a bus whose flush or shutdown never returns is reported (TargetError, exit 3),
not waited for forever. The abandoned call cannot be interrupted (neither C nor
a Python thread can be), so its thread is left behind as a daemon: the one
thread busbench starts and does not join, and only when the bus hangs.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .errors import TargetError

#: extra time a cold call may take beyond the timeout it was given
CALL_MARGIN_S = 10.0


def call_within(fn: Callable[[], Any], limit_s: float, what: str) -> Any:
    """``fn()``, or TargetError (exit 3) when it has not returned after ``limit_s``;
    an exception ``fn`` raises is re-raised here."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001 -- handed over to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=run, name=f"busbench-call-{what}", daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        raise TargetError(f"{what} did not return within {limit_s:g} s", exit_code=3)
    if "error" in box:
        raise box["error"]
    return box.get("value")
