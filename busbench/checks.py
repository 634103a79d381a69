"""The invariant checks: pure functions from what a run observed to a Verdict.

A check never touches the bus (STYLE.md): it reads the evidence the runner
recorded (counters, producers' ground truth, the verify adapter's tallies,
flush and shutdown results) and says passed, failed, or not evaluable, with
the numbers it compared. "Not evaluable" never counts as a pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PASSED, FAILED, NOT_EVALUABLE = "passed", "failed", "not_evaluable"


@dataclass(frozen=True)
class Verdict:
    name: str                 # "conservation", "lossy_shutdown == true", "threshold: ..."
    kind: str                 # conservation | ground_truth | flush_barrier | lossy_shutdown | threshold
    outcome: str              # passed | failed | not_evaluable
    expect: str               # "pass" or "fail" (a mutation scenario expects its check to fail)
    evidence: str             # one line, with the numbers compared
    numbers: dict = field(default_factory=dict)
    at: str = "end"           # "end" or "step N"

    @property
    def ok(self) -> bool:
        """Did the check come out as the scenario declared? Never for not evaluable."""
        if self.outcome == NOT_EVALUABLE:
            return False
        return (self.outcome == PASSED) == (self.expect == "pass")

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "outcome": self.outcome,
                "expect": self.expect, "ok": self.ok, "evidence": self.evidence,
                "numbers": self.numbers, "at": self.at}


@dataclass(frozen=True)
class Evidence:
    """What a check may read: values, never live objects."""
    counters: dict                      # EventBusStats as a dict
    producers: list                     # per producer: ProducerTruth.as_dict()
    bus_truth: dict | None              # ground truth from the bus side (verify adapter)
    flushes: list                       # per flush step: dict (see runner)
    shutdown: dict | None               # ShutdownReport as a dict, when shut down
    metrics: dict                       # named metrics for thresholds
    quiescent: bool                     # no producer running, nothing being ingested


def _verdict(spec, outcome, evidence, numbers, at):
    return Verdict(name=spec.label, kind=spec.kind, outcome=outcome, expect=spec.expect,
                   evidence=evidence, numbers=numbers, at=at)


def conservation(spec, ev: Evidence, at="end") -> Verdict:
    c = ev.counters
    ingested, dispatched, dropped = c["events_ingested"], c["events_dispatched"], c["events_dropped"]
    numbers = {"events_ingested": ingested, "events_dispatched": dispatched,
               "events_dropped": dropped, "difference": ingested - dispatched - dropped}
    if not ev.quiescent:
        return _verdict(spec, NOT_EVALUABLE,
                        "producers were still running: conservation holds only at quiescence",
                        numbers, at)
    if dispatched + dropped == ingested:
        return _verdict(spec, PASSED, f"ingested {ingested:,} = dispatched {dispatched:,} + "
                        f"dropped {dropped:,}", numbers, at)
    diff = ingested - dispatched - dropped
    what = "unaccounted for" if diff > 0 else "counted too many"
    return _verdict(spec, FAILED, f"ingested {ingested:,} != dispatched {dispatched:,} + dropped "
                    f"{dropped:,}: {abs(diff):,} events {what}", numbers, at)


def ground_truth(spec, ev: Evidence, at="end") -> Verdict:
    bt = ev.bus_truth
    if bt is None or not bt.get("verify"):
        return _verdict(spec, NOT_EVALUABLE, "ground_truth needs the verify adapter "
                        "(bus.adapter.kind: verify)", {}, at)
    if not ev.quiescent:
        return _verdict(spec, NOT_EVALUABLE, "producers were still running", {}, at)
    c = ev.counters
    offered = sum(p["offered"] for p in ev.producers) + bt.get("python_offered", 0)
    received = sum(bt["received"])
    problems = []
    if c["events_ingested"] != offered:
        problems.append(f"events_ingested {c['events_ingested']:,} but producers offered {offered:,}")
    if c["events_dispatched"] != received:
        problems.append(f"events_dispatched {c['events_dispatched']:,} but the adapter received "
                        f"{received:,}")
    lost = []
    for i, p in enumerate(ev.producers):
        accounted = (bt["received"][i] + p["refused"] + bt["evicted"][i] + bt["rejected"][i]
                     + bt["stranded"][i])
        if accounted != p["offered"]:
            lost.append((i, p["offered"] - accounted))
    for i, missing in lost[:3]:
        word = "never accounted for" if missing > 0 else "accounted for twice"
        problems.append(f"producer {i}: {abs(missing):,} events {word}")
    for key, label in (("duplicates", "received twice"), ("order_violations", "out of order in a shard"),
                       ("received_and_dropped", "received although reported dropped")):
        if bt[key]:
            problems.append(f"{bt[key]:,} events {label}")
    numbers = {"offered": offered, "received": received,
               "events_ingested": c["events_ingested"], "events_dispatched": c["events_dispatched"],
               "duplicates": bt["duplicates"], "order_violations": bt["order_violations"],
               "received_and_dropped": bt["received_and_dropped"],
               "unaccounted_by_producer": {str(i): m for i, m in lost}}
    coverage = ""
    if bt.get("beyond_bitmap"):
        numbers["beyond_bitmap"] = bt["beyond_bitmap"]
        coverage = (f" (duplicates checked by bitmap for all but {bt['beyond_bitmap']:,} events "
                    f"past its capacity; order and counts for all)")
    if problems:
        return _verdict(spec, FAILED, "; ".join(problems), numbers, at)
    return _verdict(spec, PASSED, f"{offered:,} offered = {received:,} received + refused, evicted, "
                    f"rejected and stranded; no duplicate, no reordering{coverage}", numbers, at)


def flush_barrier(spec, ev: Evidence, at="end") -> Verdict:
    if not ev.flushes:
        return _verdict(spec, NOT_EVALUABLE, "no flush happened", {}, at)
    failures = []
    for f in ev.flushes:
        where = f"flush at step {f['step']}"
        lagging = [s for s in f["shards"] if not s["reached"]]
        if f["reached"] and lagging:
            worst = max(lagging, key=lambda s: s["unsettled"])
            failures.append(f"{where} returned success with {sum(s['unsettled'] for s in lagging):,} "
                            f"events ingested before it still in flight (shard {worst['shard']}: "
                            f"{worst['unsettled']:,})")
        elif not f["reached"]:
            failures.append(f"{where} did not reach the barrier within {f['timeout_s']:g}s "
                            f"({sum(s['unsettled'] for s in lagging):,} events still in flight)")
    numbers = {"flushes": len(ev.flushes), "failed": len(failures)}
    if failures:
        return _verdict(spec, FAILED, "; ".join(failures[:2]), numbers, at)
    waited = sum(f.get("in_flight_at_call", 0) for f in ev.flushes)
    longest = max(f["waited_s"] for f in ev.flushes)
    return _verdict(spec, PASSED, f"{len(ev.flushes)} flush(es): on every shard, all events "
                    f"ingested before the call were settled ({waited:,} were in flight at the "
                    f"calls; longest wait {longest * 1e3:.1f} ms)", numbers, at)


def lossy_shutdown(spec, ev: Evidence, at="end") -> Verdict:
    if ev.shutdown is None:
        return _verdict(spec, NOT_EVALUABLE, "the bus was not shut down", {}, at)
    flag = bool(ev.counters["shutdown_was_lossy"])
    sd = ev.shutdown
    want = bool(spec.value)
    numbers = {"shutdown_was_lossy": flag, "expected": want, "stranded_events": sd["stranded_events"],
               "grace_s": sd["grace_s"], "abandoned_producers": list(sd["abandoned_producers"])}
    story = (f"grace {sd['grace_s']:g}s passed with {len(sd['abandoned_producers'])} producer(s) "
             f"mid-push, {sd['stranded_events']:,} events stranded" if sd["lossy"]
             else "every in-flight push finished within the grace period")
    outcome = PASSED if flag == want else FAILED
    return _verdict(spec, outcome, f"shutdown_was_lossy = {str(flag).lower()}, expected "
                    f"{str(want).lower()} ({story})", numbers, at)


def threshold(spec, ev: Evidence, at="end") -> Verdict:
    passed, evidence = spec.threshold.evaluate(ev.metrics)
    metric = spec.threshold.metric
    numbers = {"metric": metric, "value": ev.metrics.get(metric), "limit": spec.threshold.value,
               "op": spec.threshold.op}
    if ev.metrics.get(metric) is None:
        return _verdict(spec, NOT_EVALUABLE, evidence, numbers, at)
    return _verdict(spec, PASSED if passed else FAILED, evidence, numbers, at)


CHECKS = {"conservation": conservation, "ground_truth": ground_truth,
          "flush_barrier": flush_barrier, "lossy_shutdown": lossy_shutdown, "threshold": threshold}


def evaluate(spec, ev: Evidence, at="end") -> Verdict:
    return CHECKS[spec.kind](spec, ev, at)
