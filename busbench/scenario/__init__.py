"""Scenario files -> a validated, frozen ``Scenario``, or a ``ScenarioError`` naming file, line and key.

    scenario = load_scenario("scenarios/flush-barrier.yaml", overrides=["bus.shards=8"], seed=3)
"""
from .errors import ScenarioError
from .loader import ScenarioEntry, list_scenarios, load_scenario, load_scenario_text
from .schema import (BACKPRESSURE_MODES, CHECK_KINDS, MUTATIONS, AdapterSpec, ArrivalRate,
                     BatchPolicy, Bus, CheckSpec, CheckStep, CounterSpec, FaultStep, FlakyAdapter,
                     FlushStep, HotKeys, Load, NoopAdapter, RoundRobinKeys, RunStep, Scenario,
                     ShutdownStep, SleepStep, SlowAdapter, StallAdapter, StallAdapterFault,
                     StallProducerFault, UniformKeys, VerifyAdapter, ZipfKeys)

__all__ = [
    "load_scenario", "load_scenario_text", "list_scenarios", "ScenarioEntry", "ScenarioError",
    "Scenario", "Bus", "BatchPolicy", "CounterSpec", "AdapterSpec", "NoopAdapter", "VerifyAdapter",
    "SlowAdapter", "FlakyAdapter", "StallAdapter", "Load", "ArrivalRate", "UniformKeys",
    "RoundRobinKeys", "HotKeys", "ZipfKeys", "CheckSpec", "RunStep", "FlushStep", "CheckStep",
    "SleepStep", "FaultStep", "StallProducerFault", "StallAdapterFault", "ShutdownStep",
    "BACKPRESSURE_MODES", "MUTATIONS", "CHECK_KINDS",
]
