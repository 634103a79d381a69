"""busbench.scenario: scenario files -> a typed, frozen Scenario, or errors a user can act on."""
import json
import re
from pathlib import Path

import pydantic
import pytest
import yaml

from busbench.scenario import (CheckStep, FaultStep, FlakyAdapter, FlushStep, HotKeys, NoopAdapter,
                               RunStep, Scenario, ScenarioError, ShutdownStep, SleepStep,
                               SlowAdapter, StallAdapterFault, StallProducerFault, UniformKeys,
                               VerifyAdapter, ZipfKeys, list_scenarios, load_scenario,
                               load_scenario_text)
from busbench.scenario.thresholds import Threshold

DATA = Path(__file__).parent / "data"
GOOD = DATA / "good_scenario.yaml"
BAD = sorted((DATA / "bad_scenarios").glob("*.yaml"))

MINIMAL = """\
name: minimal
description: the least a scenario must say
steps:
  - run: 1s
checks: []
"""


def scenario_with(extra: str = "", steps: str = "  - run: 1s\n") -> Scenario:
    """A minimal scenario with ``extra`` top-level YAML and the given steps."""
    checks = "" if "checks:" in extra else "checks: [conservation]\n"
    return load_scenario_text(f"name: t\ndescription: test\n{extra}{checks}steps:\n{steps}", "t.yaml")


def error_of(text: str, **options) -> ScenarioError:
    with pytest.raises(ScenarioError) as raised:
        load_scenario_text(text, "t.yaml", **options)
    return raised.value


# --- a good file becomes typed values ------------------------------------------------


def test_a_good_scenario_loads_into_typed_values_in_one_unit_each():
    scenario = load_scenario(GOOD)
    assert (scenario.name, scenario.seed, scenario.target_name) == ("flush-barrier", 7, "builtin")
    bus, load = scenario.bus, scenario.load
    assert (bus.shards, bus.capacity, bus.workers, bus.backpressure) == (4, 4096, 2, "drop_newest")
    assert bus.block_timeout == 10_000_000                       # durations: int ns
    assert (bus.batch.max_events, bus.batch.max_delay) == (512, 1_000_000)
    assert bus.adapter == SlowAdapter(per_batch="2us", per_event="0ns")
    assert bus.adapter.per_batch == 2_000
    assert bus.mutations == ("flush_single_window",)
    assert load.rate.total == 2e6                                # rates: float events/s
    assert load.keys == HotKeys(hot={"shard": 1, "share": 0.9})
    assert (load.on_fail, load.late_after) == ("retry", 1_000_000)
    assert [step.kind for step in scenario.steps] == [
        "run", "flush", "check", "sleep", "fault", "fault", "run", "shutdown"]
    assert scenario.steps[6].events == 10_000_000               # counts: int


def test_omitted_settings_take_their_documented_defaults():
    scenario = load_scenario_text(MINIMAL)
    bus, load = scenario.bus, scenario.load
    assert scenario.seed == 1 and scenario.target_name == "builtin" and scenario.checks == ()
    assert (bus.shards, bus.capacity, bus.backpressure, bus.workers, bus.latency) == (
        4, 4096, "drop_newest", 1, True)
    assert (bus.block_timeout, bus.batch.max_events, bus.batch.max_delay) == (10_000_000, 512, 1_000_000)
    assert bus.layout_label == "padded" and isinstance(bus.adapter, VerifyAdapter) and bus.mutations == ()
    assert (load.producers, load.batch, load.late_after, load.on_fail) == (2, 64, 1_000_000, "drop")
    assert not load.is_open_loop and isinstance(load.keys, UniformKeys)


def test_a_scenario_is_frozen():
    scenario = load_scenario(GOOD)
    with pytest.raises(pydantic.ValidationError):
        scenario.bus.shards = 8
    with pytest.raises(pydantic.ValidationError):
        scenario.name = "other"


def test_steps_are_typed_with_their_settings():
    run, flush, check, sleep, stall_producer, stall_adapter, _, shutdown = load_scenario(GOOD).steps
    assert isinstance(run, RunStep) and (run.duration, run.events) == (2_000_000_000, None)
    assert isinstance(flush, FlushStep) and (flush.timeout, flush.under_load) == (5_000_000_000, False)
    assert isinstance(check, CheckStep) and [c.kind for c in check.checks] == ["conservation", "flush_barrier"]
    assert isinstance(sleep, SleepStep) and sleep.duration == 100_000_000
    assert isinstance(stall_producer, FaultStep)
    assert stall_producer.fault == StallProducerFault(
        stall_producer={"producer": 1, "after": "100ms", "for": "3s"})
    assert (stall_producer.fault.kind, stall_producer.fault.duration) == ("stall_producer", 3_000_000_000)
    assert isinstance(stall_adapter.fault, StallAdapterFault) and stall_adapter.fault.after == 0
    assert isinstance(shutdown, ShutdownStep) and shutdown.grace == 5_000_000_000


@pytest.mark.parametrize("written, duration, events", [
    ("2s", 2_000_000_000, None), ("10M", None, 10_000_000), ("500_000", None, 500_000),
    ("{duration: 1.5s}", 1_500_000_000, None), ("{events: 5k}", None, 5_000),
])
def test_run_takes_a_duration_or_an_event_count(written, duration, events):
    run = scenario_with(steps=f"  - run: {written}\n").steps[0]
    assert (run.duration, run.events) == (duration, events)


def test_run_with_both_a_duration_and_a_count_is_an_error():
    error = error_of("name: t\ndescription: d\nsteps:\n  - run: {duration: 1s, events: 10}\n")
    assert "exactly one of duration or events" in error.format()


def test_flush_and_shutdown_may_be_bare_names_with_default_settings():
    flush, shutdown = scenario_with(steps="  - run: 1s\n  - flush\n  - shutdown\n").steps[1:]
    assert (flush.timeout, flush.under_load, shutdown.grace) == (5_000_000_000, False, 5_000_000_000)


@pytest.mark.parametrize("written, kind, field, value", [
    ("uniform", UniformKeys, None, None),
    ("{zipf: 1.1}", ZipfKeys, "exponent", 1.1),
    ("{hot: {share: 90%}}", HotKeys, "share", 0.9),
])
def test_key_distributions_accept_their_short_forms(written, kind, field, value):
    keys = scenario_with(f"load:\n  keys: {written}\n").load.keys
    assert isinstance(keys, kind)
    assert field is None or getattr(keys, field) == value


@pytest.mark.parametrize("written, label, stride", [
    ("padded", "padded", 128), ("packed", "packed", 8), ("striped", "striped", 128),
    ("{stride: 64}", "stride 64", 64),
])
def test_counter_layouts_give_a_stride_in_bytes_and_a_label(written, label, stride):
    bus = scenario_with(f"bus:\n  counters: {written}\n").bus
    assert (bus.layout_label, bus.counter_stride_bytes) == (label, stride)


@pytest.mark.parametrize("written, open_loop, total", [
    ("max", False, None), ("2M/s", True, 2e6), ("{per_producer: 1M/s}", True, 3e6),
])
def test_load_rate_is_closed_loop_or_a_total_open_loop_rate(written, open_loop, total):
    load = scenario_with(f"load:\n  producers: 3\n  rate: {written}\n").load
    assert (load.is_open_loop, load.total_rate) == (open_loop, total)


def test_adapter_settings_belong_to_its_kind():
    flaky = scenario_with("bus:\n  adapter: {kind: flaky, failure_rate: 5%, retries: 2}\n").bus.adapter
    assert isinstance(flaky, FlakyAdapter) and flaky.kind == "flaky"
    assert (flaky.failure_rate, flaky.retries, flaky.backoff) == (0.05, 2, 100_000)
    assert scenario_with("bus:\n  adapter: noop\n").bus.adapter == NoopAdapter()


def test_checks_have_a_kind_an_expectation_and_a_label():
    checks = load_scenario(GOOD).checks
    assert [(c.kind, c.expect, c.label) for c in checks] == [
        ("conservation", "pass", "conservation"),
        ("ground_truth", "pass", "ground_truth"),
        ("flush_barrier", "fail", "flush_barrier"),
        ("lossy_shutdown", "pass", "lossy_shutdown == false"),
        ("threshold", "pass", "threshold: throughput >= 5M/s"),
        ("threshold", "fail", "threshold: dropped_ratio < 1%"),
    ]
    assert checks[4].threshold == Threshold("throughput", ">=", 5e6, "throughput >= 5M/s")
    assert checks[3].value is False and checks[2].expects_failure


def test_all_checks_lists_the_step_checks_then_the_end_checks():
    scenario = load_scenario(GOOD)
    assert [c.label for c in scenario.all_checks][:3] == ["conservation", "flush_barrier", "conservation"]
    assert len(scenario.all_checks) == 2 + len(scenario.checks)


def test_lossy_shutdown_long_form_declares_value_and_expectation():
    check = scenario_with("checks:\n  - lossy_shutdown: {value: true, expect: fail}\n").checks[0]
    assert (check.value, check.expect, check.label) == (True, "fail", "lossy_shutdown == true")


def test_flush_barrier_in_a_check_step_needs_a_flush_before_it():
    error = error_of("name: t\ndescription: d\nsteps:\n  - run: 1s\n  - check: [flush_barrier]\n  - flush\n")
    assert error.format() == "t.yaml:5: steps.1.check.0: flush_barrier needs a flush step before this check"


# --- the scenario as run ----------------------------------------------------------------


def test_to_dict_is_json_friendly_with_durations_and_rates_as_text():
    as_run = load_scenario(GOOD).to_dict()
    json.dumps(as_run)
    assert as_run["bus"]["block_timeout"] == "10ms"
    assert as_run["load"]["rate"] == "2M/s"
    assert as_run["steps"][0] == {"run": "2s"}
    assert as_run["steps"][4] == {"fault": {"stall_producer": {"producer": 1, "after": "100ms", "for": "3s"}}}
    assert as_run["checks"][0] == "conservation"


def test_to_dict_fills_in_the_defaults_the_run_used():
    as_run = load_scenario_text(MINIMAL).to_dict()
    assert as_run["bus"]["capacity"] == 4096 and as_run["bus"]["adapter"] == {"kind": "verify", "bitmaps": False}
    assert as_run["load"]["rate"] == "max" and as_run["load"]["keys"] == "uniform"


@pytest.mark.parametrize("dump", [json.dumps, yaml.safe_dump])
def test_to_dict_loads_back_to_an_equal_scenario(dump):
    scenario = load_scenario(GOOD)
    assert load_scenario_text(dump(scenario.to_dict())) == scenario


@pytest.mark.parametrize("extra", [
    "bus:\n  counters: {stride: 256}\n  adapter: {kind: stall, at: 1s, for: 1500ms}\n",
    "bus:\n  adapter: {kind: flaky, failure_rate: 12.5%}\nload:\n  rate: {per_producer: 1.5M/s}\n",
    "load:\n  keys: {zipf: 1.1}\n  rate: 1234.5/s\n",
    "load:\n  keys: round_robin\nchecks:\n  - threshold: {expr: 'latency.p99 < 5ms', expect: fail}\n",
    "checks:\n  - conservation: {expect: fail}\n  - lossy_shutdown: {value: true, expect: fail}\n",
])
def test_every_shorthand_round_trips_through_to_dict(extra):
    scenario = scenario_with(extra, steps="  - run: {events: 5k}\n  - sleep: 1m\n  - shutdown: {grace: 0s}\n")
    assert load_scenario_text(json.dumps(scenario.to_dict())) == scenario


# --- errors a user can act on --------------------------------------------------------------


def test_an_error_names_file_line_and_key_and_suggests_the_nearest_key():
    error = error_of("name: t\ndescription: d\nbus:\n  shardz: 8\nsteps: [{run: 1s}]\n")
    assert (error.file, error.line, error.key, error.suggestion) == ("t.yaml", 4, "bus.shardz", "shards")
    assert error.format() == (
        "t.yaml:4: bus.shardz: unknown key; expected one of: shards, capacity, backpressure, "
        "block_timeout, batch, counters, workers, latency, adapter, mutations; did you mean 'shards'?")


def test_several_errors_in_one_file_are_reported_together_one_per_line():
    error = error_of("name: t\ndescription: d\nbus:\n  shards: 0\n  backpressure: block_oldest\n"
                     "load:\n  producers: 100\nsteps: [{run: 1s}]\n")
    assert [(e.line, e.key) for e in error.errors] == [
        (4, "bus.shards"), (5, "bus.backpressure"), (7, "load.producers")]
    assert error.format().splitlines() == [e.format() for e in error.errors]
    assert error.errors[1].suggestion == "drop_oldest"


def test_an_invalid_step_is_reported_once_not_also_as_an_empty_list():
    error = error_of("name: t\ndescription: d\nsteps:\n  - run: 2x\n")
    assert [(e.line, e.key) for e in error.errors] == [(4, "steps.0.run")]


def test_a_missing_key_hidden_behind_shorthand_is_named_in_the_message():
    error = error_of("name: t\ndescription: d\nload:\n  keys: hot\nsteps: [{run: 1s}]\n")
    assert error.format() == "t.yaml:4: load.keys: required key is missing: share"


def test_a_missing_key_is_reported_on_the_line_of_its_mapping():
    error = error_of("# a comment\nname: t\nsteps: [{run: 1s}]\n")
    assert (error.line, error.key, error.message) == (2, "description", "required key is missing")


def test_a_duplicate_key_is_refused_although_yaml_would_keep_the_last():
    error = error_of("name: t\ndescription: d\nname: u\nsteps: [{run: 1s}]\n")
    assert error.format() == ("t.yaml:3: name: duplicate key 'name'; it is already set on line 1 "
                              "(YAML would silently keep only the last)")


def test_a_yaml_syntax_error_names_the_line_of_the_problem():
    error = error_of("name: t\ndescription: d\nsteps:\n  - run: [1s\n")
    assert error.line == 5 and error.message.startswith("invalid YAML:")


def test_a_file_that_cannot_be_read_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "absent.yaml")


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_each_malformed_scenario_fails_with_its_expected_error(path):
    line, fragment = re.fullmatch(r"# expect: line=(\d+) (.+)", path.read_text().splitlines()[0]).groups()
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    text = raised.value.format()
    assert str(path) in text and f":{line}:" in text and fragment in text, text


def test_the_malformed_corpus_covers_enough_cases():
    assert len(BAD) >= 22


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_error_messages_speak_plain_words_not_pydantic(path):
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    text = raised.value.format()
    for jargon in ("pydantic", "http", "Input should", "Field required", "Traceback", "[type=",
                   "Value error", "model_"):
        assert jargon not in text


# --- --set overrides and --seed -----------------------------------------------------------


def test_set_overrides_dotted_paths_with_yaml_values():
    scenario = load_scenario(GOOD, overrides=[
        "bus.shards=8", "bus.mutations=[flush_global_sum]", "load.keys={zipf: 1.1}", "steps.0.run=1s",
        "checks.1=conservation"])
    assert scenario.bus.shards == 8 and scenario.bus.mutations == ("flush_global_sum",)
    assert scenario.load.keys == ZipfKeys(zipf=1.1)
    assert scenario.steps[0].duration == 1_000_000_000
    assert scenario.checks[1].kind == "conservation"


def test_set_creates_missing_mappings_and_appends_to_lists():
    scenario = load_scenario_text(MINIMAL, overrides=["load.rate.per_producer=1M/s", "steps.1=shutdown"])
    assert scenario.load.total_rate == 2e6
    assert isinstance(scenario.steps[-1], ShutdownStep)


def test_set_through_a_plain_value_is_a_clear_error_not_a_crash():
    error = error_of(MINIMAL + "load:\n  keys: uniform\n", overrides=["load.keys.hot.share=0.5"])
    assert error.format() == (
        "--set load.keys.hot.share=0.5: load.keys.hot.share: load.keys is 'uniform', not a mapping, "
        "so load.keys.hot.share cannot be set; set load.keys as a whole instead, "
        "e.g. --set load.keys={...}")


@pytest.mark.parametrize("override, key, message", [
    ("bus.shards", "bus.shards", "expected KEY=VALUE"),
    ("buss.shards=8", "buss.shards", "unknown key; expected one of: name, description"),
    ("bus..shards=8", "bus..shards", "empty part"),
    ("steps.x=1s", "steps.x", "steps is a list"),
    ("steps.9.run=1s", "steps.9.run", "out of range"),
    ("bus.shards=[8", "bus.shards", "not valid YAML"),
])
def test_a_malformed_set_is_an_error_of_the_set_option(override, key, message):
    error = error_of(MINIMAL, overrides=[override])
    assert (error.file, error.line, error.key) == ("--set", None, key)
    assert message in error.message and error.format().startswith(f"--set {override}: ")


def test_an_unknown_top_level_set_key_suggests_the_nearest():
    assert error_of(MINIMAL, overrides=["laod.producers=3"]).suggestion == "load"


def test_an_invalid_overridden_value_names_the_set_option_not_a_file_line():
    error = error_of(MINIMAL, overrides=["bus.shards=2000"])
    assert error.format() == "--set bus.shards=2000: bus.shards: expected at most 1024, got 2000"


def test_an_invalid_value_below_an_override_still_names_the_set_option():
    error = error_of(MINIMAL, overrides=["load.keys={hot: {shard: 9, share: 0.5}}"])
    assert error.format().startswith("--set load.keys={hot: {shard: 9, share: 0.5}}: load.keys.hot.shard: ")


def test_the_seed_argument_wins_over_the_file():
    assert load_scenario(GOOD, seed=42).seed == 42
    assert error_of(MINIMAL, seed=-1).format() == "--seed -1: seed: expected at least 0, got -1"


# --- listing ----------------------------------------------------------------------------


def test_list_scenarios_is_recursive_sorted_and_lists_broken_files_with_their_error(tmp_path):
    (tmp_path / "b.yaml").write_text(MINIMAL.replace("minimal", "bee"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yml").write_text(MINIMAL.replace("minimal", "ay"))
    (tmp_path / "broken.yaml").write_text("name: x\n")
    (tmp_path / "notes.txt").write_text("not a scenario")
    entries = list_scenarios(tmp_path)
    assert [(entry.path.relative_to(tmp_path).as_posix(), entry.name) for entry in entries] == [
        ("b.yaml", "bee"), ("broken.yaml", None), ("sub/a.yml", "ay")]
    path, name, description = entries[1]
    assert entries[1].failed and "description: required key is missing" in description
    assert entries[0].description == "the least a scenario must say"
