"""kafka target tests: skipped, with the reason, when the extra is not installed.

Every test runs against librdkafka's mock cluster (no broker installed) and
destroys what it created; ``threads_back`` checks that no Python thread and no
native thread (librdkafka's own) outlives a test.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time

import pytest

if importlib.util.find_spec("confluent_kafka") is None:
    pytest.skip("the kafka extra is not installed: pip install -e '.[kafka]'", allow_module_level=True)


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def threads_back():
    """No Python or native thread left once the test's targets are closed."""
    python_before = set(threading.enumerate())
    native_before = native_threads()
    yield
    end = time.monotonic() + 5.0
    while time.monotonic() < end and (native_threads() > native_before
                                      or set(threading.enumerate()) - python_before):
        time.sleep(0.05)
    assert set(threading.enumerate()) - python_before == set()
    assert native_threads() <= native_before, "a native (librdkafka) thread outlived the test"
