"""The invariant checks: pure functions from what a run observed to a Verdict.

A check never touches the bus (STYLE.md): it reads the evidence the runner
recorded (the target's counters and claims, the producers' own tallies, the
downstream witness's tallies) and says passed, failed, not evaluable (the run
did not produce the evidence, e.g. no flush, producers still running), or not
observable (this target cannot provide it). Neither of the last two is a pass.

The bus's word is what is judged, never the evidence: a flush's "reached", the
lossy flag and the counters are compared against what producers tallied and
what the witness received. Every check's ``evidence`` line says what it rests on.
``Evidence`` is plain values, so a record's checks can be re-evaluated from the
record alone (``busbench check``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..common import names as N
from ..common.names import FAILED, NOT_EVALUABLE, NOT_OBSERVABLE, PASSED
from ..common.names import CHECKSUM_MOD as MOD
from ..evidence.types import Evidence

__all__ = [
    "CHECKS",
    "FAILED",
    "NOT_EVALUABLE",
    "NOT_OBSERVABLE",
    "PASSED",
    "Evidence",
    "Verdict",
    "evaluate",
]


@dataclass(frozen=True)
class Verdict:
    name: str                 # "conservation", "lossy_shutdown == true", "threshold: ..."
    kind: str                 # names.CHECK_DISPLAY's keys
    outcome: str              # passed | failed | not_evaluable | not_observable
    expect: str               # "pass" or "fail" (a mutation scenario expects its check to fail)
    evidence: str             # one line, with the numbers compared and what they rest on
    numbers: dict = field(default_factory=dict)
    at: str = "end"           # "end" or "step N"

    @property
    def ok(self) -> bool:
        """Did the check come out as the scenario declared? Never when it could not tell."""
        if self.outcome in (NOT_EVALUABLE, NOT_OBSERVABLE):
            return False
        return (self.outcome == PASSED) == (self.expect == "pass")

    @property
    def outcome_words(self) -> str:
        return N.OUTCOME_WORDS[self.outcome]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "outcome": self.outcome,
                "expect": self.expect, "ok": self.ok, "evidence": self.evidence,
                "numbers": self.numbers, "at": self.at}


def _verdict(spec, outcome, evidence, numbers, at):
    return Verdict(name=spec.label, kind=spec.kind, outcome=outcome, expect=spec.expect,
                   evidence=evidence, numbers=numbers, at=at)


def _reason(ev, name, default) -> str:
    """Why the target lacks ``name``, in its own words when it gave them."""
    return ((ev.capabilities or {}).get("reasons") or {}).get(name) or default


def _missing_counters(ev, names) -> list:
    return [n for n in names if n not in ev.counters]


def _not_observable_counters(spec, ev, names, at):
    missing = _missing_counters(ev, names)
    if missing:
        why = "; ".join(_reason(ev, m, f"the target does not export {m}") for m in missing)
        return _verdict(spec, NOT_OBSERVABLE, why, {"missing_counters": missing}, at)
    return None


# --------------------------------------------------------------------------- conservation
def conservation(spec, ev: Evidence, at="end") -> Verdict:
    c = dict(ev.counters)
    stand_in = ""
    if N.EVENTS_DISPATCHED not in c and ev.delivery is not None \
            and ev.delivery.get("incomplete"):
        return _verdict(spec, NOT_EVALUABLE, f"{ev.delivery['incomplete']}: what the witness "
                        "received stands in for events_dispatched, and it was not all read",
                        {}, at)
    if N.EVENTS_DISPATCHED not in c and ev.delivery is not None:
        # The bus does not export events_dispatched: what its witness received stands
        # in for it (net-mesh: what reached Redis), and the verdict says so.
        c[N.EVENTS_DISPATCHED] = sum(sum(row) for row in ev.delivery["received_by_shard"])
        stand_in = (f" (events_dispatched is not exported: what the "
                    f"{ev.delivery.get('witness') or 'witness'} received stands in for it)")
    lacking = _not_observable_counters(spec, replace(ev, counters=c),
                                       (N.EVENTS_INGESTED, N.EVENTS_DISPATCHED, N.EVENTS_DROPPED), at)
    if lacking:
        return lacking
    ingested, dispatched, dropped = c[N.EVENTS_INGESTED], c[N.EVENTS_DISPATCHED], c[N.EVENTS_DROPPED]
    numbers = {"events_ingested": ingested, "events_dispatched": dispatched,
               "events_dropped": dropped, "difference": ingested - dispatched - dropped,
               "dispatched_from_witness": bool(stand_in)}
    if not ev.quiescent:
        return _verdict(spec, NOT_EVALUABLE,
                        f"{ev.unquiet or 'producers were still running'}: conservation holds "
                        "only at quiescence", numbers, at)
    if dispatched + dropped == ingested:
        return _verdict(spec, PASSED, f"ingested {ingested:,} = dispatched {dispatched:,} + "
                        f"dropped {dropped:,}{stand_in}", numbers, at)
    diff = ingested - dispatched - dropped
    what = "unaccounted for" if diff > 0 else "counted too many"
    return _verdict(spec, FAILED, f"ingested {ingested:,} != dispatched {dispatched:,} + dropped "
                    f"{dropped:,}: {abs(diff):,} events {what}{stand_in}", numbers, at)


# --------------------------------------------------------------------------- ground truth
def _no_witness(spec, ev, at, what):
    hint = (ev.capabilities or {}).get("witness_hint")
    if hint:
        return _verdict(spec, NOT_EVALUABLE, f"{what} needs a witness downstream ({hint})", {}, at)
    return _verdict(spec, NOT_OBSERVABLE, _reason(ev, "delivery", f"{what} needs a witness "
                    "downstream; this target has none"), {}, at)


def _column_sums(rows, producers) -> list:
    return [sum(row[p] for row in rows) for p in range(producers)]


def ground_truth(spec, ev: Evidence, at="end") -> Verdict:
    """Every event each producer offered is accounted for exactly once, from
    the producer side and the witness side, in counts *and* checksums; FIFO per
    (producer, shard); the bus's counters agree with both sides."""
    d = ev.delivery
    if d is None:
        return _no_witness(spec, ev, at, "ground_truth")
    if not ev.quiescent:
        return _verdict(spec, NOT_EVALUABLE, f"{ev.unquiet or 'producers were still running'}: "
                        "events in flight cannot be told from lost ones", {}, at)
    if d.get("incomplete"):
        return _verdict(spec, NOT_EVALUABLE, f"{d['incomplete']}: an event not read back cannot "
                        "be told from a lost one", {}, at)
    if d.get("evicted_by_shard") is None or d.get("rejected_by_shard") is None:
        return _verdict(spec, NOT_OBSERVABLE, _reason(ev, "drops", "the target does not "
                        "attribute the events it dropped to producers: a drop cannot be told from "
                        "a loss"), {}, at)
    producers = ev.producers
    n = len(producers)
    received = _column_sums(d["received_by_shard"], n)
    evicted = _column_sums(d["evicted_by_shard"], n)
    rejected = _column_sums(d["rejected_by_shard"], n)
    sd = ev.shutdown
    bus_stranded = None if sd is None else sd.stranded_by_producer
    problems, by_producer = [], {}
    for i, p in enumerate(producers):
        accounted = received[i] + p.refused + evicted[i] + rejected[i] + p.stranded
        sums = (d["received_sum"][i] + p.refused_sum + d["evicted_sum"][i]
                + d["rejected_sum"][i] + p.stranded_sum) % MOD
        entry = {"offered": p.offered, "received": received[i], "refused": p.refused,
                 "evicted": evicted[i], "rejected": rejected[i], "stranded": p.stranded,
                 "count_difference": p.offered - accounted,
                 "checksum_matches": sums == p.offered_sum % MOD}
        by_producer[str(i)] = entry
        if accounted != p.offered:
            missing = p.offered - accounted
            word = "never accounted for" if missing > 0 else "accounted for twice"
            problems.append(f"producer {i}: {abs(missing):,} events {word} (offered "
                            f"{p.offered:,} != received {received[i]:,} + refused "
                            f"{p.refused:,} + evicted {evicted[i]:,} + rejected {rejected[i]:,}"
                            f" + stranded {p.stranded:,})")
        elif sums != p.offered_sum % MOD:
            problems.append(f"producer {i}: counts balance but checksums do not: some events "
                            "were reported twice (received and dropped) while as many others "
                            "were lost")
        if bus_stranded is not None and i < len(bus_stranded) and bus_stranded[i] != p.stranded:
            problems.append(f"producer {i} saw {p.stranded:,} events stranded, the bus "
                            f"counted {bus_stranded[i]:,}")
    if d["order_violations"]:
        problems.append(f"{d['order_violations']:,} events received out of order or twice within "
                        "a (producer, shard)")
    if d.get("duplicates"):
        problems.append(f"{d['duplicates']:,} events received twice (bitmaps)")
    if d.get("received_and_dropped"):
        problems.append(f"{d['received_and_dropped']:,} events received although reported "
                        "dropped (bitmaps)")
    if ev.backpressure is not None and ev.backpressure != "drop_oldest" and sum(evicted):
        problems.append(f"{sum(evicted):,} events evicted, but backpressure is "
                        f"{ev.backpressure}: only drop_oldest evicts")
    if sd is not None and sd.residue:
        problems.append(f"{sd.residue:,} events left in the rings after the final drain")
    c = ev.counters
    offered = sum(p.offered for p in producers)
    lost = sum(p.refused + p.stranded for p in producers) + sum(evicted) + sum(rejected)
    compared = []
    ingested_want, ingested_label = offered, "producers offered"
    if (ev.capabilities or {}).get("ingested_counts") == "landed":
        # the target counts only accepted events as ingested (a refusal only as dropped)
        ingested_want = offered - sum(p.refused for p in producers)
        ingested_label = "producers landed (this target counts refusals as dropped only)"
    for name, want, label in ((N.EVENTS_INGESTED, ingested_want, ingested_label),
                              (N.EVENTS_DISPATCHED, sum(received), "the witness received"),
                              (N.EVENTS_DROPPED, lost, "refused + evicted + rejected + stranded")):
        if name in c:
            compared.append(name)
            if c[name] != want:
                problems.append(f"{name} {c[name]:,} but {label} {want:,}")
    numbers = {"offered": offered, "received": sum(received), "dropped": lost,
               "order_violations": d["order_violations"], "duplicates": d.get("duplicates"),
               "received_and_dropped": d.get("received_and_dropped"),
               "by_producer": by_producer, "counters_compared": compared,
               "witness": d.get("witness")}
    coverage = ""
    if d.get("beyond_bitmap"):
        numbers["beyond_bitmap"] = d["beyond_bitmap"]
        coverage = (f"; bitmaps covered all but {d['beyond_bitmap']:,} events, counts, "
                    "checksums and order covered all")
    if problems:
        return _verdict(spec, FAILED, "; ".join(problems[:4]), numbers, at)
    return _verdict(spec, PASSED, f"{offered:,} offered = {sum(received):,} received by the "
                    f"{d.get('witness', 'witness')} + {lost:,} refused, evicted, rejected or "
                    f"stranded, per producer in counts and checksums; FIFO per (producer, shard)"
                    f"{coverage}", numbers, at)


# --------------------------------------------------------------------------- flush barrier
def _settled_pairs(f) -> tuple:
    """Per (producer, shard), was every event landed before the flush call
    received or dropped at its return? -> (unsettled, undecided, rows).

    Evidence: producer-side landed counts L and last landed seq S per
    (producer, shard), snapshotted just before flush was called; the bus's
    attributed evictions E0 at that moment; at return the witness's received
    count R and last received seq, the bus's rejections J and evictions E1.

    Why counts suffice (with the order check): events of one producer on one
    shard land in seq order and leave the ring in that order, either to a batch
    (delivered or rejected in order: R + J, checked FIFO by the order check) or
    evicted from the head. So:
    * the witness received a seq above S  =>  every landed event up to S had
      left the ring before it, and those that went to a batch were dispatched
      before it: all settled;
    * R + J + E0 >= L  =>  settled: evictions counted before the call are of
      events landed before it, and R + J either holds a seq above S (above) or
      only events up to S;
    * R + J + E1 < L  =>  not settled, whatever the evictions were;
    * otherwise the evictions during the flush (drop_oldest under load) may be
      of events landed after the call, standing in for events still in a
      batch: counts cannot decide, and the pair is undecided.
    A producer's tallies are updated when its ingest call returns: a call in
    progress at the snapshot is not demanded (the check under-demands, never
    over-demands).
    """
    unsettled, undecided, rows = [], [], []
    landed, last_landed = f.landed_before, f.last_landed_before
    recv, last_recv = f.received_after, f.last_received_after
    ev0, ev1, rej = f.evicted_before, f.evicted_after, f.rejected_after
    for p, per_shard in enumerate(landed):
        for s, L in enumerate(per_shard):
            if L == 0:
                continue
            R, J = recv[s][p], rej[s][p]
            E0, E1 = ev0[s][p], ev1[s][p]
            row = {"producer": p, "shard": s, "landed": L, "received": R, "rejected": J,
                   "evicted_before": E0, "evicted_after": E1}
            if last_recv[s][p] > last_landed[p][s] or R + J + E0 >= L:
                continue
            if R + J + E1 < L:
                row["missing"] = L - R - J - E1
                unsettled.append(row)
            else:
                undecided.append(row)
            rows.append(row)
    return unsettled, undecided, rows


def flush_barrier(spec, ev: Evidence, at="end") -> Verdict:
    """A flush that claims success has every event landed before the call
    received or dropped; a flush that timed out and said so kept the promise."""
    if not ev.flushes:
        return _verdict(spec, NOT_EVALUABLE, "no flush happened", {}, at)
    failures, second_opinion, undecided_flushes, rests = [], [], [], set()
    timed_out = 0
    for f in ev.flushes:
        where = f"flush at step {f.step}"
        if not f.claimed_reached:
            timed_out += 1          # said so: the barrier promise is kept (flush_completes asks more)
            continue
        positions = f.positions or {}
        if f.received_after is None and f.witness_shortfall is not None:
            # Producers do not know shards: the target's witness counted, per event,
            # what had landed before the call and was neither received nor dropped.
            rests.add(f"the {f.witness or 'witness'}'s per-event shortfall against "
                      "producer-side landed events")
            if f.witness_shortfall > 0:
                failures.append(f"{where} returned success with {f.witness_shortfall:,} events "
                                "landed before the call neither received nor dropped")
            continue
        if f.received_after is None:
            # No witness: only the bus's own positions remain, and the verdict says so.
            if not positions:
                undecided_flushes.append(f"{where}: no witness and no positions")
                continue
            rests.add("the bus's own per-shard positions (no witness downstream)")
            if not positions.get("reached", True):
                lag = sum(s["unsettled"] for s in positions["shards"] if not s["reached"])
                failures.append(f"{where} returned success with {lag:,} events ingested before "
                                "it still in flight, by the bus's own positions")
            continue
        rests.add(f"producer-side landed counts and the {f.witness or 'witness'}'s "
                  "received counts")
        unsettled, undecided, _rows = _settled_pairs(f)
        if unsettled:
            worst = max(unsettled, key=lambda r: r["missing"])
            failures.append(f"{where} returned success with {sum(r['missing'] for r in unsettled):,}"
                            f" events landed before the call neither received nor dropped "
                            f"(producer {worst['producer']}, shard {worst['shard']}: "
                            f"{worst['landed']:,} landed, {worst['received']:,} received, "
                            f"{worst['rejected'] + worst['evicted_after']:,} dropped)")
        elif undecided:
            # Counts cannot decide (evictions during the flush); the positions can
            # only break the tie, and the verdict says it rests on them.
            if positions:
                rests.add("the bus's own positions, for pairs where evictions during the "
                          "flush left counts undecided")
                second_opinion.append(where)
                if not positions.get("reached", True):
                    failures.append(f"{where} returned success; counts are undecided for "
                                    f"{len(undecided)} (producer, shard) pairs (evictions during "
                                    "the flush), and the bus's own positions show events still "
                                    "in flight")
            else:
                undecided_flushes.append(f"{where}: evictions during the flush leave counts "
                                         f"undecided for {len(undecided)} (producer, shard) pairs")
    numbers = {"flushes": len(ev.flushes), "failed": len(failures), "timed_out": timed_out,
               "rests_on": sorted(rests), "second_opinion_used": second_opinion}
    if failures:
        return _verdict(spec, FAILED, "; ".join(failures[:2]), numbers, at)
    if undecided_flushes:
        return _verdict(spec, NOT_EVALUABLE, "; ".join(undecided_flushes[:2]), numbers, at)
    claimed = len(ev.flushes) - timed_out
    told = f"; {timed_out} timed out and said so (the promise kept)" if timed_out else ""
    basis = " and ".join(sorted(rests)) if rests else "the flushes' own timeout reports"
    return _verdict(spec, PASSED, f"{claimed} flush(es) claimed success and every event landed "
                    f"before each call was received or dropped{told}; rests on {basis}",
                    numbers, at)


def flush_completes(spec, ev: Evidence, at="end") -> Verdict:
    """Every flush reached its barrier within its timeout (the author requires it)."""
    if not ev.flushes:
        return _verdict(spec, NOT_EVALUABLE, "no flush happened", {}, at)
    late = [f for f in ev.flushes if not f.claimed_reached]
    numbers = {"flushes": len(ev.flushes), "timed_out": len(late)}
    if late:
        f = late[0]
        return _verdict(spec, FAILED, f"flush at step {f.step} timed out after "
                        f"{f.timeout_s:g}s ({len(late)} of {len(ev.flushes)} flushes did)",
                        numbers, at)
    longest = max(f.waited_s for f in ev.flushes)
    return _verdict(spec, PASSED, f"{len(ev.flushes)} flush(es) completed within their timeouts "
                    f"(longest wait {longest * 1e3:.1f} ms)", numbers, at)


# --------------------------------------------------------------------------- lossy shutdown
def lossy_shutdown(spec, ev: Evidence, at="end") -> Verdict:
    """The lossy flag agrees with the producers' side of the story: true exactly
    when some producer's push was cut off by the deadline (it saw events
    stranded), and each producer's stranded events are counted once by the bus.
    ``lossy_shutdown: true|false`` additionally requires that value."""
    if ev.shutdown is None:
        return _verdict(spec, NOT_EVALUABLE, "the bus was not shut down", {}, at)
    if (ev.shutdown.details or {}).get("account") is not None:
        return _library_account(spec, ev, at)
    if N.SHUTDOWN_WAS_LOSSY not in ev.counters:
        return _verdict(spec, NOT_OBSERVABLE, _reason(ev, N.SHUTDOWN_WAS_LOSSY, "the target "
                        "does not export shutdown_was_lossy") + " (ground_truth still catches "
                        "silent loss)", {}, at)
    if not ev.quiescent:
        return _verdict(spec, NOT_EVALUABLE, "a producer was still mid-push: its side of the "
                        "story is not complete", {}, at)
    flag = bool(ev.counters[N.SHUTDOWN_WAS_LOSSY])
    sd = ev.shutdown
    cut_off = [i for i, p in enumerate(ev.producers) if p.stranded > 0]
    seen = sum(p.stranded for p in ev.producers)
    bus_side = sd.stranded_by_producer
    numbers = {"shutdown_was_lossy": flag, "expected": spec.value, "producers_cut_off": cut_off,
               "stranded_producer_side": [p.stranded for p in ev.producers],
               "stranded_bus_side": None if bus_side is None else list(bus_side),
               "grace_s": sd.grace_s,
               "abandoned_producers": (None if sd.abandoned_producers is None
                                       else list(sd.abandoned_producers))}
    problems = []
    if flag != bool(cut_off):
        if flag:
            problems.append("shutdown_was_lossy is true, but no producer had a push cut off "
                            "(none saw an event stranded)")
        else:
            problems.append(f"shutdown_was_lossy is false, but producer(s) "
                            f"{', '.join(map(str, cut_off))} had a push cut off with {seen:,} "
                            "events stranded")
    if bus_side is not None:
        for i, p in enumerate(ev.producers):
            if i < len(bus_side) and bus_side[i] != p.stranded:
                problems.append(f"producer {i} saw {p.stranded:,} events stranded, the bus "
                                f"counted {bus_side[i]:,}")
    if spec.value is not None and flag != spec.value:
        problems.append(f"shutdown_was_lossy = {str(flag).lower()}, expected "
                        f"{str(spec.value).lower()}")
    if problems:
        return _verdict(spec, FAILED, "; ".join(problems[:3]), numbers, at)
    story = (f"grace {sd.grace_s:g}s passed with producer(s) "
             f"{', '.join(map(str, cut_off))} mid-push, {seen:,} events stranded and counted once"
             if cut_off else "no producer had a push cut off")
    return _verdict(spec, PASSED, f"shutdown_was_lossy = {str(flag).lower()}, and from the "
                    f"producers' side {story}", numbers, at)


# --------------------------------------------------------------------------- thresholds
def threshold(spec, ev: Evidence, at="end") -> Verdict:
    passed, evidence = spec.threshold.evaluate(ev.metrics)
    metric = spec.threshold.metric
    numbers = {"metric": metric, "value": ev.metrics.get(metric), "limit": spec.threshold.value,
               "op": spec.threshold.op}
    if ev.metrics.get(metric) is None:
        return _verdict(spec, NOT_EVALUABLE, evidence, numbers, at)
    return _verdict(spec, PASSED if passed else FAILED, evidence, numbers, at)


def _library_account(spec, ev: Evidence, at) -> Verdict:
    """A bus with no lossy flag but a per-message account (librdkafka: one delivery report
    per accepted message, delivered or failed with a reason): the account against the log.
    The promise: every message the producers landed got a report; every one reported
    delivered is in the log; every one not in the log was reported failed."""
    account = ev.shutdown.details["account"]
    d = ev.delivery
    if d is None:
        why = ev.unquiet or _reason(ev, "delivery", "the witness could not be read back")
        return _verdict(spec, NOT_EVALUABLE, f"{why}: the library's account cannot be set against it",
                        {"account": account}, at)
    n = len(ev.producers)
    received = _column_sums(d["received_by_shard"], n)
    by_error = account.get("failed_by_error") or {}
    inflight_purged = sum(v for k, v in by_error.items() if str(k).startswith("-151"))
    problems, rows = [], []
    for i, p in enumerate(ev.producers):
        landed, delivered, failed = p.landed, account["delivered"][i], account["failed"][i]
        unreported = landed - delivered - failed
        lost = max(0, landed - received[i])
        both = max(0, received[i] + failed - landed)     # reported failed, in the log anyway
        rows.append({"producer": i, "landed": landed, "reported_delivered": delivered,
                     "reported_failed": failed, "unreported": unreported, "in_log": received[i],
                     "not_in_log": lost, "failed_but_in_log": both})
        if unreported > 0:
            problems.append(f"producer {i}: {unreported:,} accepted message(s) got no delivery report "
                            f"({lost:,} of its {landed:,} landed are not in the log)")
        if delivered > received[i]:
            problems.append(f"producer {i}: {delivered - received[i]:,} message(s) reported delivered "
                            "are not in the log")
        if both > inflight_purged:
            problems.append(f"producer {i}: {both:,} message(s) reported failed are in the log")
    says_lossy = any(r["reported_failed"] or r["unreported"] for r in rows)
    log_lossy = any(r["not_in_log"] for r in rows)
    numbers = {"library_says_lossy": says_lossy, "log_shows_loss": log_lossy, "expected": spec.value,
               "by_producer": rows, "failed_by_error": by_error,
               "documented": ("PURGE_INFLIGHT (-151) messages may still be delivered (rdkafka.h)"
                              if inflight_purged else None)}
    if spec.value is not None and says_lossy != bool(spec.value):
        problems.append(f"the library's account says the shutdown was "
                        f"{'lossy' if says_lossy else 'not lossy'}; the scenario expects "
                        f"{'lossy' if spec.value else 'not lossy'}")
    if problems:
        return _verdict(spec, FAILED, "; ".join(problems[:3]), numbers, at)
    landed = sum(r["landed"] for r in rows)
    failed = sum(r["reported_failed"] for r in rows)
    both = sum(r["failed_but_in_log"] for r in rows)
    errors = f" ({', '.join(f'{k}: {v:,}' for k, v in by_error.items())})" if by_error else ""
    told = (f"; {both:,} of them are in the log anyway, as rdkafka.h allows for messages purged in "
            "flight (their outcome is unknown)" if both else "; none of them is in the log")
    return _verdict(spec, PASSED, f"every one of {landed:,} accepted messages got one delivery report: "
                    f"{landed - failed:,} reported delivered, all in the log; {failed:,} reported "
                    f"failed{errors}{told if failed else ''}", numbers, at)


def predicted_not_observable(kind: str, capabilities: dict) -> str | None:
    """Why a check of ``kind`` will be "not observable" on a target with these
    capabilities (said before the run and shown on the display), or None."""
    reasons = capabilities.get("reasons") or {}
    if kind == N.LOSSY_SHUTDOWN and not capabilities.get("lossy_flag") \
            and not capabilities.get("shutdown_account"):
        return reasons.get(N.SHUTDOWN_WAS_LOSSY) or "the target exports no lossy flag"
    if kind == N.GROUND_TRUTH and not capabilities.get("witness") \
            and not capabilities.get("witness_hint"):
        return reasons.get("delivery") or "no witness downstream"
    return None


CHECKS = {N.CONSERVATION: conservation, N.GROUND_TRUTH: ground_truth,
          N.FLUSH_BARRIER: flush_barrier, N.FLUSH_COMPLETES: flush_completes,
          N.LOSSY_SHUTDOWN: lossy_shutdown, N.THRESHOLD: threshold}


def evaluate(spec, ev: Evidence, at="end") -> Verdict:
    return CHECKS[spec.kind](spec, ev, at)
