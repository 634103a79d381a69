"""The scenario fuzzer's parts: Hypothesis strategies for valid scenarios across
the whole schema, a runner that bounds every run, and the judges.

Shared by the CI properties (``tests/fuzz/test_fuzz_*.py``) and the offline
driver (``benchmarks/fuzz.py``). Every scenario is generated as the YAML a user
would write, then loaded through the real loader, so validation is fuzzed too.

Sizes are bounded so each run takes well under a second (and the watchdog
bounds the rest): rings of at most 2**20 slots in all, a few hundred
milliseconds of load, adapters whose cost drains full rings in ~0.1 s, stalls
of at most 300 ms.

The target is drawn too (``TARGETS``): the builtin reference bus, the C bus of
``examples/c_bus`` (driven through its C ABI by the Numba producers; built once
per source into a temporary folder, drawn only when a C compiler is found) and
the Python bus of ``examples/python_bus`` (driven from Python threads). All
three are correct, so every judge below holds on each. A foreign target takes
only ``bus.shards`` and no fault: its own configuration (capacity, batch size,
which ingest calls it declares, whether a sink witnesses delivery, a slow
downstream for the Python bus) is drawn instead.

Two judges:

* ``judge_correct``: on a correct bus, every check passed or was honestly
  not evaluable (a reason the record shows), no silent loss (an independent
  recount from the record's evidence, not the checks' own verdicts), no hang
  (status timed_out), no traceback (status error), no thread left.
* ``MUTATIONS[name]``: a strategy built to provoke the mutation, how we know
  from the record's evidence that the bug manifested in a run, and the checks
  that must then fail.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import strategies as st
from rich.console import Console

from busbench.run import watchdog as W
from busbench.common.names import RUN_CRASHED as CRASHED
from busbench.common.names import RUN_ERROR as ERROR
from busbench.common.names import RUN_TIMED_OUT as TIMED_OUT
from busbench.reports import json_report, junit, markdown, summary
from busbench.run.runner import Runner
from busbench.scenario import ScenarioError, load_scenario_text

RUN_TIMEOUT_S = 20.0            # the watchdog's deadline for one fuzzed run, at least
PLAN_FACTOR = 3.0               # ...or this many times its planned time (watchdog.planned_seconds)
MAX_SLOTS = 1 << 20             # shards x capacity
DRAIN_BUDGET_NS = 100_000_000   # a slow or flaky adapter drains full rings in at most this
MAX_STALL_MS = 300

# Short flush timeouts, so that flushes time out honestly (a producer frozen
# mid-push, a frozen downstream). They used to fail flush_barrier on the correct
# bus (issue 9 part 2, fixed on branch `core`): now flush_barrier must pass them
# and flush_completes must fail them. test_fuzz_known.py keeps the two shapes.
PROVOKE_KNOWN = True

ROOT = Path(__file__).resolve().parents[2]
C_BUS = ROOT / "examples" / "c_bus"
PYTHON_BUS = ROOT / "examples" / "python_bus"
#: the correct buses a scenario is drawn against
TARGETS = ("builtin", "c_bus", "python_bus")


def us(n: int) -> str:
    return f"{n}us"


def ms(n: int) -> str:
    return f"{n}ms"


# --------------------------------------------------------------------------- bus


@st.composite
def adapters(draw, slots: int, max_events: int, kinds=("verify", "verify", "noop", "slow", "flaky", "stall")):
    kind = draw(st.sampled_from(kinds))
    batches = max(1, math.ceil(slots / max_events))
    if kind == "slow":
        per_batch_ns = draw(st.integers(0, min(200_000, DRAIN_BUDGET_NS // batches)))
        per_event_ns = draw(st.integers(0, min(2_000, DRAIN_BUDGET_NS // slots)))
        return {"kind": "slow", "per_batch": f"{per_batch_ns}ns" if per_batch_ns else "0ns",
                "per_event": f"{per_event_ns}ns"}
    if kind == "flaky":
        retries = draw(st.integers(0, 3))
        backoff_ns = draw(st.integers(0, min(200_000, DRAIN_BUDGET_NS // batches // max(1, retries))))
        return {"kind": "flaky", "failure_rate": draw(st.sampled_from([0, 0.01, 0.1, 0.5, 1.0])),
                "retries": retries, "backoff": f"{backoff_ns}ns"}
    if kind == "stall":
        return {"kind": "stall", "at": ms(draw(st.integers(0, 100))), "for": ms(draw(st.integers(1, 200)))}
    return {"kind": kind}


@st.composite
def buses(draw, adapter_kinds=None, backpressure=None, mutations=(), min_shards=1):
    shards = draw(st.one_of(st.integers(min_shards, 8), st.sampled_from([2, 4, 16, 64, 256, 1024])))
    max_log = min(16, int(math.log2(MAX_SLOTS // shards)))
    capacity = 2 ** draw(st.integers(1, max_log))
    max_events = draw(st.one_of(st.integers(1, 64), st.sampled_from([256, 512, 1024, 10_000])))
    counters = draw(st.one_of(st.sampled_from(["padded", "packed", "striped"]),
                              st.builds(lambda n: {"stride": 8 * n}, st.integers(1, 32))))
    bus = {
        "shards": shards, "capacity": capacity,
        "backpressure": backpressure or draw(st.sampled_from(
            ["drop_newest", "fail_producer", "drop_oldest", "block"])),
        "block_timeout": us(draw(st.integers(50, 3000))),
        "batch": {"max_events": max_events, "max_delay": us(draw(st.integers(10, 5000)))},
        "counters": counters,
        "workers": draw(st.integers(1, min(4, shards))),
        "latency": draw(st.booleans()),
        "adapter": draw(adapters(shards * capacity, max_events,
                                 **({"kinds": adapter_kinds} if adapter_kinds else {}))),
    }
    if mutations:
        bus["mutations"] = list(mutations)
    return bus


# --------------------------------------------------------------------------- foreign targets


def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def c_bus_library() -> Path | None:
    """examples/c_bus/cbus.c built into a temporary folder named by the source's hash
    (built once, reused by later runs and processes), or None without a C compiler."""
    cc = _compiler()
    if cc is None:
        return None
    source = C_BUS / "cbus.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"busbench-fuzz-cbus-{digest}"
    library = folder / "libcbus.so"
    if not library.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"libcbus.so.{os.getpid()}.part"
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(partial), str(source)],
                       check=True, timeout=120, capture_output=True)
        partial.replace(library)         # atomic: a concurrent build never sees half a file
    return library


def available_targets() -> tuple:
    """The targets this machine can run: c_bus needs a C compiler."""
    return tuple(t for t in TARGETS if t != "c_bus" or _compiler() is not None)


def target_of(data: dict) -> str:
    """Which of TARGETS a generated scenario drives."""
    target = data.get("target") or {}
    if "c-abi" in target:
        return "c_bus"
    if "python" in target:
        return "python_bus"
    return "builtin"


@st.composite
def c_bus_targets(draw, shards: int):
    """examples/c_bus/target.yaml with its config drawn: capacity (a power of two),
    batch size, which ingest calls are declared (one by one, many at once, or both),
    and, now and then, no sink (delivery then has no witness)."""
    spec = yaml.safe_load((C_BUS / "target.yaml").read_text(encoding="utf-8"))
    spec["library"] = str(c_bus_library())
    spec["shards"] = shards
    spec["init"]["config"] = {"shards": shards, "capacity": 2 ** draw(st.integers(1, 14)),
                              "max_batch": draw(st.sampled_from([1, 4, 16, 64, 256, 1024]))}
    ingest = draw(st.sampled_from(["both", "both", "ingest", "ingest_batch"]))
    if ingest != "both":
        del spec["ingest_batch" if ingest == "ingest" else "ingest"]
    if draw(st.integers(0, 7)) == 0:
        del spec["sink"]
    return {"c-abi": spec}


@st.composite
def python_bus_targets(draw, shards: int):
    """examples/python_bus's bus with its config drawn, a slow downstream included
    (a delay per batch, bounded so that full queues drain in ~0.1 s)."""
    capacity = draw(st.sampled_from([2, 16, 64, 256, 1024, 4096]))
    max_batch = draw(st.sampled_from([1, 8, 64, 256]))
    batches = math.ceil(capacity / max_batch)
    delay = draw(st.sampled_from([0.0, 0.0, 0.0002, 0.001, 0.005]))
    if delay * batches * 1e9 > DRAIN_BUDGET_NS:
        delay = 0.0
    return {"python": {"factory": "pybus:make_bus", "path": str(PYTHON_BUS),
                       "config": {"shards": shards, "capacity": capacity, "max_batch": max_batch,
                                  "per_batch_delay": delay}}}


# --------------------------------------------------------------------------- load


@st.composite
def loads(draw, shards: int, keys=None, max_producers=16):
    producers = draw(st.one_of(st.integers(1, 4), st.integers(1, max_producers)))
    load = {"producers": producers,
            "batch": draw(st.one_of(st.integers(1, 128), st.sampled_from([256, 512, 1024, 4096]))),
            "late_after": us(draw(st.integers(100, 5000))),
            "on_fail": draw(st.sampled_from(["drop", "retry"]))}
    if draw(st.booleans()):
        exponent = draw(st.integers(3, 7))           # 1k/s .. 10M/s in total
        mantissa = draw(st.sampled_from([1, 2, 5]))
        load["rate"] = f"{mantissa * 10 ** exponent}/s"
        if exponent >= 7 and mantissa > 1:
            load["rate"] = "20M/s"
    else:
        load["rate"] = "max"
    if keys is False:
        pass                 # a foreign target chooses shards itself: no keys
    elif keys is not None:
        load["keys"] = keys
    else:
        kind = draw(st.sampled_from(["uniform", "round_robin", "hot", "zipf"]))
        if kind == "hot":
            load["keys"] = {"hot": {"shard": draw(st.integers(0, shards - 1)),
                                    "share": draw(st.sampled_from([0.5, 0.9, 1.0]))}}
        elif kind == "zipf":
            load["keys"] = {"zipf": draw(st.sampled_from([0.5, 1.1, 2.0]))}
        else:
            load["keys"] = kind
    return load


def rate_of(load) -> float | None:
    rate = load["rate"]
    if rate == "max":
        return None
    if rate.endswith("M/s"):
        return float(rate[:-3]) * 1e6
    return float(rate[:-2])


# --------------------------------------------------------------------------- steps


@st.composite
def steps_and_checks(draw, bus, load, allow_faults=True, allow_short_flush=None, witness=None):
    """Steps (run, flush, sleep, faults, check steps at valid points, shutdown)
    and end checks, for a correct bus. ``witness``: whether delivery is witnessed
    (default: the builtin bus's verify adapter)."""
    allow_short_flush = PROVOKE_KNOWN if allow_short_flush is None else allow_short_flush
    n = draw(st.integers(1, 5))
    steps, settled, flushed, faults = [], True, False, []
    rate = rate_of(load)
    verify = bus["adapter"]["kind"] == "verify" if witness is None else witness
    for _ in range(n):
        kind = draw(st.sampled_from(["run", "run", "flush", "sleep", "fault", "check", "pattern"]))
        if kind == "pattern" and allow_faults:
            # The adversarial orders: a flush meeting a producer frozen mid-push, or
            # a frozen downstream while the flush runs under load.
            short = allow_short_flush and draw(st.booleans())
            timeout = ms(draw(st.integers(5, 100))) if short else "3s"
            if draw(st.booleans()):
                steps += [{"fault": {"stall_producer": {
                    "producer": draw(st.integers(0, load["producers"] - 1)), "after": "1ms",
                    "for": ms(draw(st.integers(50, MAX_STALL_MS)))}}},
                    {"run": ms(draw(st.integers(10, 60)))},
                    {"flush": {"timeout": timeout}}]
                faults.append("stall_producer")
                settled, flushed = False, True      # the frozen push is in flight at the flush
            else:
                steps += [{"run": ms(draw(st.integers(10, 60)))},
                          {"fault": {"stall_adapter": {"after": "0s",
                                                       "for": ms(draw(st.integers(20, 200)))}}},
                          {"flush": {"timeout": timeout, "under_load": draw(st.booleans())}}]
                faults.append("stall_adapter")
                settled, flushed = False, True
        elif kind == "run":
            if draw(st.booleans()):
                steps.append({"run": ms(draw(st.integers(5, 150)))})
            else:
                cap = 2_000 if rate is None else max(1, int(rate * 0.15))
                steps.append({"run": draw(st.integers(1, min(cap, 2_000)))})
            settled = False
        elif kind == "flush":
            under_load = draw(st.booleans())
            short = allow_short_flush and draw(st.booleans())
            timeout = ms(draw(st.integers(5, 200))) if short else "3s"
            steps.append({"flush": {"timeout": timeout, "under_load": under_load}})
            settled, flushed = not under_load, True
        elif kind == "sleep":
            steps.append({"sleep": ms(draw(st.integers(1, 50)))})
        elif kind == "fault" and allow_faults:
            if draw(st.booleans()):
                steps.append({"fault": {"stall_producer": {
                    "producer": draw(st.integers(0, load["producers"] - 1)),
                    "after": ms(draw(st.integers(0, 30))),
                    "for": ms(draw(st.integers(1, MAX_STALL_MS)))}}})
                faults.append("stall_producer")
            else:
                steps.append({"fault": {"stall_adapter": {
                    "after": ms(draw(st.integers(0, 30))), "for": ms(draw(st.integers(1, 200)))}}})
                faults.append("stall_adapter")
        elif kind == "check":
            valid = (["conservation"] + (["ground_truth"] if verify else [])) if settled else []
            valid += ["flush_barrier", "flush_completes"] if flushed else []
            if valid:
                steps.append({"check": draw(st.lists(st.sampled_from(valid), min_size=1,
                                                     max_size=len(valid), unique=True))})
    if not any("run" in s or "flush" in s for s in steps):
        steps.append({"run": ms(draw(st.integers(5, 100)))})    # after any check: still valid
    if draw(st.booleans()):
        steps.append({"shutdown": {"grace": ms(draw(st.integers(0, 300)))}})
    checks = ["conservation"]
    if verify or draw(st.booleans()):
        checks.append("ground_truth")          # without verify: honestly not evaluable
    if flushed:
        checks.append("flush_barrier")
        if draw(st.booleans()):
            checks.append("flush_completes")      # judged against the record's timeouts
    if "stall_producer" not in faults and draw(st.booleans()):
        # Without a producer frozen mid-push, nothing can be cut off: the flag must be false.
        checks.append({"lossy_shutdown": False})
    else:
        # The flag must agree with the producers' side (a frozen push cut off or not).
        checks.append("lossy_shutdown")
    if draw(st.booleans()):
        checks.append({"threshold": draw(st.sampled_from(
            ["unsent >= 0", "dropped_ratio <= 1", "late_sends >= 0", "events_ingested >= 0"]))})
    return steps, checks


@st.composite
def correct_scenarios(draw, targets=None):
    """A valid scenario on a correct bus, as the dict a user would write; the
    target drawn among ``targets`` (default: every available one)."""
    target = draw(st.sampled_from(targets or available_targets()))
    if target == "builtin":
        bus = draw(buses())
        load = draw(loads(bus["shards"]))
        steps, checks = draw(steps_and_checks(bus, load))
        return {"name": "fuzz", "description": "generated by the scenario fuzzer",
                "seed": draw(st.integers(0, 2 ** 31)), "bus": bus, "load": load, "steps": steps,
                "checks": checks}
    shards = draw(st.integers(1, 8))
    spec = draw(c_bus_targets(shards) if target == "c_bus" else python_bus_targets(shards))
    witness = "c-abi" not in spec or "sink" in spec["c-abi"]
    bus = {"shards": shards}
    load = draw(loads(shards, keys=False))
    steps, checks = draw(steps_and_checks(bus, load, allow_faults=False, witness=witness))
    return {"name": f"fuzz-{target}", "description": f"generated by the scenario fuzzer ({target})",
            "seed": draw(st.integers(0, 2 ** 31)), "target": spec, "bus": bus, "load": load,
            "steps": steps, "checks": checks}


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    yaml_text: str
    record: dict | None          # RunResult.to_dict(), None when the scenario did not load
    wall_s: float
    threads_left: list
    load_error: str | None = None
    render_error: str | None = None   # a report that could not be rendered (a traceback)


def busbench_threads() -> list:
    return [t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith("busbench-")]


#: benchmarks/fuzz.py runs each scenario in a warm supervised child (a busbench.run.supervisor
#: Session); None: in this process (the CI tests, which also count the threads left)
SESSION = None


def _run(scenario, text: str, timeout_s: float):
    if SESSION is None:
        return Runner(scenario, "<fuzz>", timeout_s=timeout_s).run()
    import tempfile

    from busbench.run.supervisor import Job
    with tempfile.TemporaryDirectory(prefix="busbench-fuzz-") as folder:
        path = f"{folder}/fuzz.yaml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return SESSION.run(scenario, Job(path, timeout_s=timeout_s))


def run_scenario(data: dict, timeout_s: float | None = None) -> Outcome:
    """Run one scenario with a deadline: ``timeout_s``, else the larger of
    RUN_TIMEOUT_S and PLAN_FACTOR x its planned time (a rare shape, thousands
    of events per call blocking on tiny rings in front of a flaky adapter,
    plans ~15 s and ran 27 s with the machine loaded: slow, not hung)."""
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        scenario = load_scenario_text(text, "<fuzz>")
    except ScenarioError as error:
        return Outcome(text, None, 0.0, [], load_error=error.format())
    if timeout_s is None:
        timeout_s = max(RUN_TIMEOUT_S, PLAN_FACTOR * W.planned_seconds(scenario))
    before = {t for t in threading.enumerate() if t.is_alive()}
    t0 = time.monotonic()
    result = _run(scenario, text, timeout_s)
    wall = time.monotonic() - t0
    if SESSION is not None:          # the run's threads lived in the child: its own count
        left = list(result.threads_left)
    else:
        # this run's threads only: one left by an earlier run was judged there, not again here
        left = [t.name for t in threading.enumerate()
                if t.is_alive() and t.name.startswith("busbench-") and t not in before]
    # Every output a user gets is rendered: a traceback there is a traceback too.
    # The record judged is the JSON a user would read, not the live object.
    try:
        record = json.loads(json_report.render(result))
        Console(file=io.StringIO(), width=160).print(summary.render(result))
        markdown.render([result])
        junit.render([result])
    except Exception:  # noqa: BLE001 -- judged as a traceback, with its text
        return Outcome(text, result.to_dict(), wall, left, render_error=traceback.format_exc())
    return Outcome(text, record, wall, left)


# --------------------------------------------------------------------------- judges


def _mid_run_not_evaluable_is_honest(record, verdict) -> bool:
    """A mid-run totals check may be not evaluable when the record shows why:
    a producer frozen mid-push by a fault, or the flush before it timed out."""
    step = int(verdict["at"].split()[1])
    steps = record["scenario"]["steps"]
    stalled = any(isinstance(s, dict) and "fault" in s and "stall_producer" in s["fault"]
                  for s in steps[:step])
    earlier = [f for f in record["flushes"] if f["step"] < step]
    timed_out = bool(earlier) and (earlier[-1]["timed_out"] or not earlier[-1]["claimed_reached"])
    return stalled or timed_out


def honest_not_evaluable(record, verdict) -> bool:
    kind = verdict["kind"]
    if kind == "ground_truth" and record["delivery"] is None:
        return True          # no witness downstream (not the verify adapter)
    if kind == "flush_barrier" and record["delivery"] is None \
            and not (record["capabilities"] or {}).get("positions"):
        return True          # a flush claiming success, and neither a witness nor positions to judge it
    if kind in ("conservation", "ground_truth") and verdict["at"] != "end":
        return _mid_run_not_evaluable_is_honest(record, verdict)
    return False


def _by_producer(rows, producers) -> list:
    """Column sums of a per (shard, producer) table: one total per producer."""
    return [sum(row[p] for row in rows) for p in range(producers)]


def drops(record) -> dict | None:
    """Per producer: received, evicted, rejected (the witness's and the bus's
    attributed tallies), or None without a witness."""
    d = record["delivery"]
    if d is None:
        return None
    n = len(record["producers"])
    return {"received": _by_producer(d["received_by_shard"], n),
            "evicted": _by_producer(d["evicted_by_shard"], n),
            "rejected": _by_producer(d["rejected_by_shard"], n)}


def recount(record) -> list:
    """No silent loss, recounted from the record's evidence without the checks:
    every event a producer offered is received, refused, evicted, rejected or
    stranded, and the counters agree with those tallies."""
    problems = []
    c, producers, sd = record["counters"], record["producers"], record["shutdown"]
    if c["events_ingested"] != c["events_dispatched"] + c["events_dropped"]:
        problems.append(f"counters do not conserve: ingested {c['events_ingested']} != dispatched "
                        f"{c['events_dispatched']} + dropped {c['events_dropped']}")
    offered = sum(p["offered"] for p in producers)
    if c["events_ingested"] != offered:
        problems.append(f"events_ingested {c['events_ingested']} != offered by producers {offered}")
    producer_drops = sum(p["refused"] + p["stranded"] for p in producers)
    t = drops(record)
    if t is not None:
        dropped = producer_drops + sum(t["evicted"]) + sum(t["rejected"])
        if c["events_dropped"] != dropped:
            problems.append(f"events_dropped {c['events_dropped']} != refused + stranded + evicted "
                            f"+ rejected {dropped}")
    elif c["events_dropped"] < producer_drops:
        # without a witness the bus's evictions and rejections are not recorded: a bound
        problems.append(f"events_dropped {c['events_dropped']} < refused + stranded "
                        f"{producer_drops}")
    bus_stranded = (sd or {}).get("stranded_by_producer")
    if bus_stranded is not None:
        for i, p in enumerate(producers):
            if p["stranded"] != bus_stranded[i]:
                problems.append(f"producer {i}: stranded {p['stranded']} by its count, "
                                f"{bus_stranded[i]} by the bus's")
    if t is not None:
        d = record["delivery"]
        if sum(t["received"]) != c["events_dispatched"]:
            problems.append(f"adapter received {sum(t['received'])} != events_dispatched "
                            f"{c['events_dispatched']}")
        for i, p in enumerate(producers):
            accounted = (t["received"][i] + p["refused"] + t["evicted"][i] + t["rejected"][i]
                         + p["stranded"])
            if accounted != p["offered"]:
                problems.append(f"producer {i}: offered {p['offered']} != received + refused + "
                                f"evicted + rejected + stranded {accounted}")
        for key in ("duplicates", "order_violations", "received_and_dropped"):
            if d.get(key):
                problems.append(f"{key}: {d[key]}")
    for f in record["flushes"]:
        behind = [s["shard"] for s in (f["positions"] or {}).get("shards", []) if not s["reached"]]
        if f["claimed_reached"] and behind:
            problems.append(f"flush at step {f['step']} claimed success with shards {behind} behind")
    if sd is not None:
        if sd.get("residue"):
            problems.append(f"{sd['residue']} events left in the rings after the final drain")
        if "shutdown_was_lossy" not in c:        # the target exports no lossy flag
            return problems
        if bool(c["shutdown_was_lossy"]) != bool(sd["lossy"]):
            problems.append(f"lossy flag {c['shutdown_was_lossy']} but the report says {sd['lossy']}")
        cut_off = [i for i, p in enumerate(producers) if p["stranded"]]
        if bool(c["shutdown_was_lossy"]) != bool(cut_off):
            problems.append(f"lossy flag {c['shutdown_was_lossy']} but producers {cut_off} had "
                            "a push cut off by their own count")
    return problems


def flush_completes_outcome(record, at) -> str:
    """What flush_completes must say, from the flushes recorded before ``at``:
    failed when one timed out (or did not claim success), passed when every
    one reached, not evaluable with none."""
    limit = math.inf if at == "end" else int(at.split()[1])
    flushes = [f for f in record["flushes"] if f["step"] < limit]
    if not flushes:
        return "not_evaluable"
    late = [f for f in flushes if f["timed_out"] or not f["claimed_reached"]]
    return "failed" if late else "passed"


def honest_not_observable(record, verdict) -> bool:
    """A check may be not observable only when the record's capabilities lack what it
    rests on: a witness (ground_truth), the lossy flag (lossy_shutdown), a counter
    (conservation)."""
    caps = record["capabilities"] or {}
    kind = verdict["kind"]
    if kind == "ground_truth":
        return record["delivery"] is None and not caps.get("witness")
    if kind == "lossy_shutdown":
        return not caps.get("lossy_flag")
    if kind == "conservation":
        exported = set(caps.get("counters") or ())
        return not {"events_ingested", "events_dropped"} <= exported or (
            "events_dispatched" not in exported and record["delivery"] is None)
    return False


def judge_correct(outcome: Outcome) -> tuple[str, list]:
    """("ok" | "failure" | "hang" | "crash" | "traceback" | "invalid", problems) for a run on the
    correct bus."""
    if outcome.record is None:
        return "invalid", [f"a valid scenario was refused: {outcome.load_error}"]
    r = outcome.record
    if outcome.render_error:
        return "traceback", [f"rendering the reports failed: {outcome.render_error}"]
    if r["status"] == TIMED_OUT:
        return "hang", [r["error"]]
    if r["status"] == CRASHED:
        return "crash", [r["error"]]
    if r["status"] == ERROR:
        return "traceback", [r["error"]]
    problems = []
    for v in r["checks"]:
        if v["kind"] == "flush_completes":
            expected = flush_completes_outcome(r, v["at"])
            if v["outcome"] != expected:
                problems.append(f"flush_completes ({v['at']}) {v['outcome']}, the record's flushes "
                                f"say {expected}: {v['evidence']}")
        elif v["outcome"] == "failed":
            problems.append(f"false failure: {v['name']} ({v['at']}): {v['evidence']}")
        elif v["outcome"] == "not_evaluable" and not honest_not_evaluable(r, v):
            problems.append(f"not evaluable without a reason the record shows: {v['name']} "
                            f"({v['at']}): {v['evidence']}")
        elif v["outcome"] == "not_observable" and not honest_not_observable(r, v):
            problems.append(f"not observable although the target exports what it rests on: "
                            f"{v['name']} ({v['at']}): {v['evidence']}")
    problems += [f"silent loss: {p}" for p in recount(r)]
    if r["threads_left"] or outcome.threads_left:
        problems.append(f"threads left running: {r['threads_left'] or outcome.threads_left}")
    return ("failure" if problems else "ok"), problems


# --------------------------------------------------------------------------- mutations


@dataclass(frozen=True)
class MutationProbe:
    """How to provoke a mutation, how the record shows it manifested, and the
    checks that must then fail."""
    strategy: Callable
    manifested: Callable          # record -> str | None (what shows it, or None)
    caught_by: tuple


def _scenario(draw, mutation, bus_kw=None, load_kw=None, steps=None, checks=None):
    bus = draw(buses(mutations=(mutation,), **(bus_kw or {})))
    load = draw(loads(bus["shards"], **(load_kw or {})))
    return {"name": f"fuzz-{mutation}", "description": f"provokes {mutation}",
            "seed": draw(st.integers(0, 2 ** 31)), "bus": bus, "load": load,
            "steps": steps(draw, bus, load), "checks": checks(bus)}


def _totals_checks(bus):
    return ["conservation"] + (["ground_truth"] if bus["adapter"]["kind"] == "verify" else [])


def _verify(bus):
    return bus["adapter"]["kind"] == "verify"


@st.composite
def provoke_dispatch_counters_frozen(draw):
    return _scenario(draw, "dispatch_counters_frozen", {"adapter_kinds": ("verify",)},
                     steps=lambda d, b, lo: [{"run": ms(d(st.integers(20, 150)))}, "flush"],
                     checks=_totals_checks)


def _dispatch_frozen_manifested(r):
    delivered = sum(drops(r)["received"])
    if r["counters"]["events_dispatched"] < delivered:
        return (f"the verify adapter received {delivered} events, events_dispatched says "
                f"{r['counters']['events_dispatched']}")
    return None


@st.composite
def backlogged_bus(draw, mutation, hot=False):
    """Deep rings in front of a slow adapter: a backlog that takes ~10-100 ms to
    drain when the run step ends (what a lying flush or a lazy final drain leaves)."""
    shards = draw(st.integers(2, 8))
    max_events = draw(st.sampled_from([16, 64, 256]))
    return {"shards": shards, "capacity": draw(st.sampled_from([1024, 2048, 4096])),
            "backpressure": draw(st.sampled_from(["drop_newest", "drop_oldest", "block"])),
            "block_timeout": "1ms",
            "batch": {"max_events": max_events, "max_delay": us(draw(st.integers(100, 2000)))},
            "workers": draw(st.integers(1, min(2, shards))),
            "adapter": {"kind": "slow", "per_batch": us(draw(st.integers(300, 2000)))},
            "mutations": [mutation]}


@st.composite
def provoke_flush_single_window(draw):
    bus = draw(backlogged_bus("flush_single_window"))
    load = draw(loads(bus["shards"], max_producers=4))
    return {"name": "fuzz-flush_single_window", "description": "provokes flush_single_window",
            "seed": draw(st.integers(0, 2 ** 31)), "bus": bus, "load": load,
            "steps": [{"run": ms(draw(st.integers(20, 100)))}, {"flush": {"timeout": "5s"}}],
            "checks": ["flush_barrier", "conservation"]}


def _flush_lied(r):
    for f in r["flushes"]:
        lagging = [s for s in (f["positions"] or {}).get("shards", []) if not s["reached"]]
        if f["claimed_reached"] and lagging:
            return (f"flush at step {f['step']} claimed success with "
                    f"{sum(s['unsettled'] for s in lagging)} events behind on {len(lagging)} shard(s)")
    return None


@st.composite
def provoke_flush_global_sum(draw):
    return _scenario(
        draw, "flush_global_sum", {"adapter_kinds": ("verify",), "backpressure": "drop_oldest",
                                   "min_shards": 2},
        load_kw={"keys": {"hot": {"shard": 0, "share": 0.9}}},
        steps=lambda d, b, lo: [{"run": ms(d(st.integers(20, 100)))},
                                {"fault": {"stall_adapter": {"after": "0s", "for": ms(d(st.integers(50, 250)))}}},
                                {"flush": {"timeout": "3s", "under_load": True}}],
        checks=lambda b: ["flush_barrier"])


@st.composite
def provoke_stall_at_shutdown(draw, mutation, lossy_value=None):
    def steps(d, b, lo):
        return [{"run": ms(d(st.integers(10, 60)))},
                {"fault": {"stall_producer": {"producer": 0, "after": "0s",
                                              "for": ms(d(st.integers(150, MAX_STALL_MS)))}}},
                {"run": ms(d(st.integers(20, 60)))},
                {"shutdown": {"grace": ms(d(st.integers(0, 20)))}}]

    def checks(b):
        out = _totals_checks(b)
        if lossy_value is not None:
            out.append({"lossy_shutdown": lossy_value})
        return out
    return _scenario(draw, mutation, {"adapter_kinds": ("verify", "noop")},
                     load_kw={"max_producers": 4}, steps=steps, checks=checks)


def _cut_off(r):
    """A producer's push was cut off by shutdown, by the producers' own count."""
    stranded = sum(p["stranded"] for p in r["producers"])
    return f"{stranded} events of a push stranded by the producers' count" if stranded else None


def _lost_silently(r):
    problems = [p for p in recount(r) if "conserve" in p or "offered" in p or "left in the rings" in p]
    return problems[0] if problems else None


def _flag_missing(r):
    sd = r["shutdown"]
    if sd and sd["abandoned_producers"] and not r["counters"]["shutdown_was_lossy"]:
        return f"shutdown abandoned producers {sd['abandoned_producers']}, the flag stayed false"
    return None


@st.composite
def provoke_final_sweep_single_pass(draw):
    bus = draw(backlogged_bus("final_sweep_single_pass"))
    bus["workers"] = 1
    load = draw(loads(bus["shards"], keys={"hot": {"shard": 0, "share": 1.0}}, max_producers=4))
    return {"name": "fuzz-final_sweep_single_pass", "description": "provokes final_sweep_single_pass",
            "seed": draw(st.integers(0, 2 ** 31)), "bus": bus, "load": load,
            "steps": [{"run": ms(draw(st.integers(20, 100)))}, {"shutdown": {"grace": "1s"}}],
            "checks": ["conservation"]}


@st.composite
def provoke_uncounted_eviction(draw):
    # the verify adapter: the bus's per-producer evictions are recorded with its witness
    return _scenario(draw, "uncounted_eviction", {"backpressure": "drop_oldest",
                                                  "adapter_kinds": ("verify",)},
                     steps=lambda d, b, lo: [{"run": ms(d(st.integers(20, 150)))}, "flush"],
                     checks=_totals_checks)


def _evicted(r):
    t = drops(r)
    if t is None:       # no witness: the bus's per-producer tally is not recorded
        return None
    n = sum(t["evicted"])
    return f"{n} events evicted by drop_oldest (the bus's per-producer tally)" if n else None


@st.composite
def provoke_refusal_not_ingested(draw):
    return _scenario(draw, "refusal_not_ingested",
                     {"backpressure": draw(st.sampled_from(["drop_newest", "fail_producer", "block"]))},
                     steps=lambda d, b, lo: [{"run": ms(d(st.integers(20, 150)))}, "flush"],
                     checks=_totals_checks)


def _refused(r):
    n = sum(p["refused"] for p in r["producers"])
    return f"{n} events refused, by the producers' count" if n else None


@st.composite
def provoke_batch_announced_late(draw):
    """A batch inside a frozen downstream when a short flush is called: the
    mutated worker has already cleared its announcement, so flush's own
    predicate sees nothing in flight and claims success."""
    shards = draw(st.integers(1, 4))
    bus = {"shards": shards, "capacity": draw(st.sampled_from([256, 1024, 4096])),
           "backpressure": draw(st.sampled_from(["drop_newest", "block", "fail_producer"])),
           "block_timeout": "1ms",
           "batch": {"max_events": draw(st.sampled_from([16, 64, 512])),
                     "max_delay": draw(st.sampled_from(["100us", "2ms", "5s"]))},
           "workers": draw(st.integers(1, shards)),
           "adapter": {"kind": "verify"}, "mutations": ["batch_announced_late"]}
    load = draw(loads(shards, max_producers=4))
    rate = rate_of(load)
    cap = 2_000 if rate is None else max(1, min(2_000, int(rate * 0.15)))
    run = draw(st.integers(1, cap)) if draw(st.booleans()) else ms(draw(st.integers(5, 50)))
    stall_ms = draw(st.integers(200, 400))
    steps = [{"run": run},
             {"fault": {"stall_adapter": {"after": "0s", "for": ms(stall_ms)}}},
             {"flush": {"timeout": ms(draw(st.integers(20, 150)))}}]
    if draw(st.booleans()):
        steps.append({"shutdown": {"grace": "2s"}})
    return {"name": "fuzz-batch_announced_late", "description": "provokes batch_announced_late",
            "seed": draw(st.integers(0, 2 ** 31)), "bus": bus, "load": load, "steps": steps,
            "checks": ["flush_barrier", "ground_truth", "lossy_shutdown"]}


def _flush_claimed_with_events_inside(r):
    """A flush claimed success while events a producer landed before the call
    were, at return, neither received by the witness nor dropped (counted per
    (producer, shard); every eviction up to the return counted as settling one,
    so what is left is surely inside the bus)."""
    for f in r["flushes"]:
        if not f["claimed_reached"] or f["landed_before"] is None or f["received_after"] is None:
            continue
        for p, row in enumerate(f["landed_before"]):
            for shard, landed in enumerate(row):
                settled = (f["received_after"][shard][p] + f["rejected_after"][shard][p]
                           + f["evicted_after"][shard][p])
                if landed > settled:
                    return (f"flush at step {f['step']} claimed success with {landed - settled} "
                            f"events of producer {p} landed on shard {shard} before the call "
                            "neither received nor dropped")
    return None


MUTATIONS: dict[str, MutationProbe] = {
    "dispatch_counters_frozen": MutationProbe(provoke_dispatch_counters_frozen,
                                              _dispatch_frozen_manifested, ("conservation", "ground_truth")),
    "flush_single_window": MutationProbe(provoke_flush_single_window, _flush_lied, ("flush_barrier",)),
    "flush_global_sum": MutationProbe(provoke_flush_global_sum, _flush_lied, ("flush_barrier",)),
    "no_inflight_gate": MutationProbe(lambda: provoke_stall_at_shutdown("no_inflight_gate"),
                                      _lost_silently, ("conservation", "ground_truth")),
    "lossy_flag_never_set": MutationProbe(
        lambda: provoke_stall_at_shutdown("lossy_flag_never_set", lossy_value=True),
        _flag_missing, ("lossy_shutdown",)),
    "stranded_double_count": MutationProbe(lambda: provoke_stall_at_shutdown("stranded_double_count"),
                                           _cut_off, ("conservation", "ground_truth")),
    "final_sweep_single_pass": MutationProbe(provoke_final_sweep_single_pass, _lost_silently,
                                             ("conservation", "ground_truth")),
    "uncounted_eviction": MutationProbe(provoke_uncounted_eviction, _evicted,
                                        ("conservation", "ground_truth")),
    "refusal_not_ingested": MutationProbe(provoke_refusal_not_ingested, _refused,
                                          ("conservation", "ground_truth")),
    "batch_announced_late": MutationProbe(provoke_batch_announced_late,
                                          _flush_claimed_with_events_inside, ("flush_barrier",)),
}


def strategy_for(mutation: str):
    return MUTATIONS[mutation].strategy()


def judge_mutation(mutation: str, outcome: Outcome) -> tuple[str, str]:
    """("caught" | "missed" | "not_manifested" | "hang" | "crash" | "traceback" | "invalid", detail)."""
    if outcome.record is None:
        return "invalid", outcome.load_error
    r = outcome.record
    if outcome.render_error:
        return "traceback", outcome.render_error
    if r["status"] == TIMED_OUT:
        return "hang", r["error"]
    if r["status"] == CRASHED:
        return "crash", r["error"]
    if r["status"] == ERROR:
        return "traceback", r["error"]
    probe = MUTATIONS[mutation]
    shown = probe.manifested(r)
    if shown is None:
        return "not_manifested", ""
    failed = [v["name"] for v in r["checks"] if v["outcome"] == "failed" and v["kind"] in probe.caught_by]
    if failed:
        return "caught", f"{shown}; caught by {', '.join(failed)}"
    return "missed", f"{shown}; but {', '.join(probe.caught_by)} did not fail: " + "; ".join(
        f"{v['name']}: {v['outcome']}: {v['evidence']}" for v in r["checks"])
