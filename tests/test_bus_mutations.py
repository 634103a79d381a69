"""Every re-introducible fault of BUS.md ("Mutations") is caught by the product's checks.

Each mutation gets a scenario built so that the fault it re-introduces must
show, whatever the thread scheduling: the scenario runs the bus with the
mutation on and the checks must report a violation of the promise BUS.md says
catches it; the same scenario with no mutation must report none.
"""
import time

import pytest

from busbench.bus.config import MUTATIONS, BusConfig

MUTATIONS_OF_BUS_MD = {
    "dispatch_counters_frozen", "flush_single_window", "flush_global_sum", "no_inflight_gate",
    "lossy_flag_never_set", "stranded_double_count", "final_sweep_single_pass",
    "uncounted_eviction", "refusal_not_ingested",
    "batch_announced_late",       # issue 9: fools flush's own predicate
}


# --------------------------------------------------------------------------- scenarios
def flush_under_a_slow_adapter(rig, check, mutations):
    """A backlog that takes the adapter >= 100 ms (4 rings of 1024 events at 50 us
    each), then flush with no ingest running: it cannot be done in one 1 ms
    ``max_delay`` window, nor while ``batches_dispatched`` stands still."""
    bus = rig.bus(shards=4, capacity=1024, max_events=64, max_delay_ns=1_000_000,
                  backpressure="drop_newest", adapter="slow", slow_per_event_ns=50_000,
                  mutations=mutations)
    gen = rig.run_load(bus, 0.15, producers=2, batch=64)
    truths = gen.truths()
    assert sum(bus.shard_fill()) >= 2048
    flush = rig.flush(bus, gen, timeout_s=10.0)
    # A flush that says it reached the barrier, with nothing ingesting, promises conservation.
    violations = check(bus, truths, flush=flush, quiescent=flush.reached)
    bus.release_stalls()                # the slow adapter turns instant: a quick final drain
    report = bus.shutdown(grace_s=5.0)
    return violations + check(bus, truths, report=report)


def flush_while_a_batch_is_frozen_and_other_events_settle(rig, check, mutations):
    """Skewed keys, tiny drop_oldest rings, and a frozen downstream: the worker
    sits in ``on_batch`` with a batch it took before the flush, while producers
    keep evicting from every ring. Each eviction settles one event, so the
    settled sum passes the sum of the targets within microseconds, though the
    frozen batch (ingested before the call) is not delivered: only a per-shard
    barrier sees it. The correct flush must time out and say so."""
    bus = rig.bus(shards=4, capacity=64, max_events=64, backpressure="drop_oldest",
                  adapter="verify", mutations=mutations)
    gen = rig.load(bus, producers=2, batch=64, keys="hot", hot_shard=0, hot_share=0.95)
    gen.start(duration_ns=30_000_000_000)
    assert rig.wait_for(lambda: bus.stats().events_dispatched > 0, timeout_s=5.0)
    bus.schedule_adapter_stall(after_ns=0, for_ns=30_000_000_000)
    # Rings stay full, so the worker's next dispatch (within max_delay, 1 ms) freezes
    # with its batch; then events_dispatched stands still.
    time.sleep(0.1)
    dispatched = bus.stats().events_dispatched
    time.sleep(0.05)
    assert bus.stats().events_dispatched == dispatched
    flush = rig.flush(bus, gen, timeout_s=0.3)
    assert gen.running
    violations = check(bus, flush=flush, quiescent=False)
    bus.release_stalls()
    gen.stop()
    truths = gen.truths()
    flush = rig.flush(bus, gen, timeout_s=10.0)
    violations += check(bus, truths, flush=flush)
    report = bus.shutdown(grace_s=5.0)
    return violations + check(bus, truths, report=report)


def producer_stalled_mid_push_through_shutdown(rig, check, mutations):
    """Producer 0 stalls with slots claimed and unpublished, far past a 50 ms
    grace; producer 1 (drop_newest: it never waits for room) is turned away at
    the gate. Checked right after shutdown, then after the stalled producer wakes."""
    bus = rig.bus(shards=4, capacity=4096, backpressure="drop_newest", adapter="verify",
                  mutations=mutations)
    gen = rig.load(bus, producers=2, batch=64)
    bus.arm_producer_stall(0, after_ns=30_000_000, for_ns=30_000_000_000)
    gen.start(duration_ns=30_000_000_000)
    assert rig.wait_for(lambda: bus.producer_stalling(0), timeout_s=5.0)
    report = bus.shutdown(grace_s=0.05)
    assert bus.producer_stalling(0)
    violations = []
    if not bus.stats().shutdown_was_lossy:
        violations.append("lossy shutdown: producer 0 was stalled mid-push through the grace "
                          "deadline, yet shutdown_was_lossy is false")
    violations += check(bus, report=report)
    bus.release_stalls()
    assert rig.wait_for(lambda: not bus.producer_stalling(0), timeout_s=5.0)
    assert rig.wait_for(lambda: not gen.running, timeout_s=5.0)
    gen.stop()
    return violations + check(bus, gen.truths(), report=report)


def backlog_behind_an_empty_shard_at_shutdown(rig, check, mutations):
    """Every event goes to shard 2, whose ring a slow adapter (10 ms a batch)
    keeps full; shards 0 and 1, drained first, are empty. Shutdown while the
    producers run: the final drain must keep going past the empty shards."""
    bus = rig.bus(shards=4, capacity=512, max_events=64, backpressure="drop_newest",
                  adapter="slow", slow_per_batch_ns=10_000_000, mutations=mutations)
    gen = rig.load(bus, producers=2, batch=64, keys="hot", hot_shard=2, hot_share=1.0)
    gen.start(duration_ns=30_000_000_000)
    assert rig.wait_for(lambda: bus.shard_fill()[2] >= 256, timeout_s=5.0)
    report = bus.shutdown(grace_s=5.0)
    gen.stop()
    return check(bus, gen.truths(), report=report)


def flush_while_the_adapter_holds_the_only_batch(rig, check, mutations):
    """One shard, one ingest call of 100 events (fewer than max_events, and a
    max_delay of 5 s, so nothing is dispatched by itself), then a frozen
    downstream and a flush: the flush makes the worker take all 100 into one
    batch and it sits in on_batch. The correct flush times out and says so;
    with batch_announced_late, BATCH_START no longer announces the batch while
    on_batch runs, flush's own per-shard predicate is fooled and it claims
    success with the batch still inside the adapter."""
    bus = rig.bus(shards=1, capacity=1024, max_events=512, max_delay_ns=5_000_000_000,
                  backpressure="drop_newest", adapter="verify", mutations=mutations)
    gen = rig.load(bus, producers=1, batch=100)
    gen.start(events=100)
    assert gen.wait(timeout_s=10.0)
    gen.stop()
    assert bus.stats().events_ingested == 100 and bus.stats().events_dispatched == 0
    bus.schedule_adapter_stall(after_ns=0, for_ns=30_000_000_000)
    flush = rig.flush(bus, gen, timeout_s=0.3)
    violations = check(bus, gen.truths(), flush=flush, quiescent=flush.reached)
    bus.release_stalls()
    flush = rig.flush(bus, gen, timeout_s=10.0)
    violations += check(bus, gen.truths(), flush=flush)
    report = bus.shutdown(grace_s=5.0)
    return violations + check(bus, gen.truths(), report=report)


def overflowing_ring(mode):
    def scenario(rig, check, mutations):
        """Rings of 64 events on 4 shards, two closed-loop producers: constant overflow."""
        bus = rig.bus(shards=4, capacity=64, backpressure=mode, adapter="verify",
                      mutations=mutations)
        gen = rig.run_load(bus, 0.2, producers=2, batch=64)
        truths = gen.truths()
        if mode == "drop_oldest":
            assert bus.ground_truth().evicted.sum() > 0
        else:
            assert sum(t.refused for t in truths) > 0
        flush = rig.flush(bus, gen, timeout_s=10.0)
        violations = check(bus, truths, flush=flush)
        report = bus.shutdown(grace_s=5.0)
        return violations + check(bus, truths, report=report)
    scenario.__name__ = f"overflowing_{mode}_ring"
    return scenario


SCENARIOS = [
    flush_under_a_slow_adapter,
    flush_while_a_batch_is_frozen_and_other_events_settle,
    producer_stalled_mid_push_through_shutdown,
    backlog_behind_an_empty_shard_at_shutdown,
    flush_while_the_adapter_holds_the_only_batch,
    overflowing_ring("drop_oldest"),
    overflowing_ring("drop_newest"),
]
BY_NAME = {s.__name__: s for s in SCENARIOS}

# mutation -> (scenario, the checks that must fire: BUS.md's "caught by")
CATCHES = {
    "dispatch_counters_frozen": ("flush_under_a_slow_adapter", {"flush barrier", "conservation"}),
    "flush_single_window": ("flush_under_a_slow_adapter", {"flush barrier"}),
    "flush_global_sum": ("flush_while_a_batch_is_frozen_and_other_events_settle",
                         {"flush barrier"}),
    "no_inflight_gate": ("producer_stalled_mid_push_through_shutdown",
                         {"ground truth", "lossy shutdown"}),
    "lossy_flag_never_set": ("producer_stalled_mid_push_through_shutdown", {"lossy shutdown"}),
    "stranded_double_count": ("producer_stalled_mid_push_through_shutdown", {"conservation"}),
    "final_sweep_single_pass": ("backlog_behind_an_empty_shard_at_shutdown",
                                {"conservation", "final drain"}),
    "uncounted_eviction": ("overflowing_drop_oldest_ring", {"conservation"}),
    "refusal_not_ingested": ("overflowing_drop_newest_ring", {"conservation"}),
    "batch_announced_late": ("flush_while_the_adapter_holds_the_only_batch", {"flush barrier"}),
}


def _checks_that_fired(violations):
    return {v.split(":", 1)[0] for v in violations}


# --------------------------------------------------------------------------- tests
def test_every_mutation_of_bus_md_has_a_scenario_and_none_is_on_by_default():
    assert set(MUTATIONS) == MUTATIONS_OF_BUS_MD == set(CATCHES)
    assert BusConfig().mutations == () and BusConfig().mutation_bits == 0
    assert len({MUTATIONS[m] for m in MUTATIONS_OF_BUS_MD}) == len(MUTATIONS_OF_BUS_MD)  # one bit each
    with pytest.raises(ValueError):
        BusConfig(mutations=("not_a_mutation",))


@pytest.mark.parametrize("mutation", sorted(CATCHES))
def test_mutation_is_caught_by_the_contract_checks(bus_rig, contract_violations, mutation):
    scenario, must_fire = CATCHES[mutation]
    violations = BY_NAME[scenario](bus_rig, contract_violations, (mutation,))
    fired = _checks_that_fired(violations)
    assert violations, f"{mutation} went unnoticed by {scenario}"
    assert must_fire <= fired, f"{mutation}: expected {must_fire} to fire, got {violations}"


@pytest.mark.parametrize("scenario", sorted(BY_NAME))
def test_the_same_scenario_passes_with_no_mutation(bus_rig, contract_violations, scenario):
    assert BY_NAME[scenario](bus_rig, contract_violations, ()) == []
