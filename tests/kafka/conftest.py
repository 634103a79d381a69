"""kafka target tests: skipped, with the reason, when the extra is not installed.

Every test runs against librdkafka's mock cluster (no broker installed) and
destroys what it created; ``threads_back`` checks that no Python thread and no
librdkafka thread (named rdk:*) outlives a test.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time

import pytest

if importlib.util.find_spec("confluent_kafka") is None:
    pytest.skip("the kafka extra is not installed: pip install -e '.[kafka]'", allow_module_level=True)


def librdkafka_threads() -> list[str]:
    """Native threads librdkafka started (it names them rdk:main, rdk:broker..., rdk:mock);
    other native threads (Numba's, the runner's pools) live as long as the process."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("rdk:"):
            names.append(name)
    return names


@pytest.fixture
def threads_back():
    """No Python or native thread left once the test's targets are closed."""
    python_before = set(threading.enumerate())
    assert librdkafka_threads() == [], "a librdkafka thread was running before the test"
    yield
    end = time.monotonic() + 5.0
    while time.monotonic() < end and (librdkafka_threads() or set(threading.enumerate()) - python_before):
        time.sleep(0.05)
    assert set(threading.enumerate()) - python_before == set()
    assert librdkafka_threads() == [], "a librdkafka thread outlived the test"
