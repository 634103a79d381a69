"""A user's first hour: the schema editors read, the starter scenario, shell
completion, progress on a long step, the compile notice, the summary of an
interrupted run."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from cli_helpers import cli, flat
from test_dashboard import make_snapshot, render_text

from busbench.targets import coldstart
from busbench.cli.completion import scenario_files, set_keys, setting_keys
from busbench.reports.dashboard import PlainProgress, waiting_line
from busbench.scenario import ScenarioError, load_scenario
from busbench.scenario.jsonschema import scenario_json_schema
from busbench.run.snapshot import ShardFill

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "scenarios").rglob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------- schema


def test_every_shipped_scenario_is_valid_against_the_schema(validator):
    assert SHIPPED
    for path in SHIPPED:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, (path, errors)


@pytest.mark.parametrize("change, where", [
    ({"bus": {"shardz": 4}}, "shardz"),                        # unknown key
    ({"bus": {"backpressure": "drop_newset"}}, "drop_newset"),   # not one of the modes
    ({"bus": {"batch": {"max_delay": 5}}}, "5"),               # a duration needs a unit
    ({"load": {"rate": "2M"}}, "2M"),                          # a rate needs /s
    ({"steps": [{"rn": "2s"}]}, "rn"),                         # unknown step
    ({"checks": ["conservaton"]}, "conservaton"),               # unknown check
    ({"bus": {"workers": 0}}, "0"),                            # below the model's minimum
    ({"target": "net-mash"}, "net-mash"),                      # unknown target
    ({"checks": [{"lossy_shutdown": "yes"}]}, "yes"),          # a flag is true or false
    ({"target": {"net-mesh": {"version": "latest"}}}, "latest"),  # a release number
])
def test_the_schema_refuses_what_validate_refuses(validator, tmp_path, change, where):
    base = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    for key, value in change.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    assert list(validator.iter_errors(base)), f"the schema accepted {change}"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ScenarioError):
        load_scenario(str(path))


@pytest.mark.parametrize("change", [
    {"target": "net-mesh", "bus": {"shards": 4, "backpressure": "drop_oldest"}, "steps": [
        "flush", {"fault": {"kill_adapter": {"after": "1s", "restart_after": "2s"}}},
        {"run": "2s"}, {"shutdown": {"grace": "1s"}}]},
    {"target": {"net-mesh": {"driver": "binding", "adapter": "noop",
                             "redis_url": "redis://127.0.0.1:6379/0"}},
     "bus": {"shards": 2, "capacity": 1024}},
    {"target": "builtin", "bus": {"adapter": {"kind": "verify", "bitmaps": True},
                                  "mutations": ["batch_announced_late"]}},
    {"checks": ["lossy_shutdown", {"lossy_shutdown": None}, {"lossy_shutdown": {"expect": "fail"}},
                {"lossy_shutdown": True}, "flush_completes", {"flush_completes": {"expect": "fail"}}]},
])
def test_the_schema_accepts_what_validate_accepts(validator, tmp_path, change):
    """The current scenario format: targets, kill_adapter, flush_completes, a
    lossy_shutdown with no value, verify bitmaps, the newest mutation."""
    base = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    base.update(change)
    assert not [e.message for e in validator.iter_errors(base)]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base))
    load_scenario(str(path))


def test_shipped_schema_file_is_the_generated_one_and_every_scenario_points_at_it():
    shipped = json.loads((REPO / "scenarios" / "scenario.schema.json").read_text())
    assert shipped == scenario_json_schema(), \
        "scenarios/scenario.schema.json is stale: run `busbench schema -o scenarios/scenario.schema.json`"
    for path in SHIPPED:
        first = path.read_text().splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert match, path
        assert (path.parent / match[1]).resolve() == (REPO / "scenarios" / "scenario.schema.json")


def test_schema_command_prints_json_schema():
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "busbench scenario"
    assert set(schema["required"]) == {"name", "description", "steps"}
    shards = schema["properties"]["bus"]["properties"]["shards"]
    assert shards["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 1024}


# --------------------------------------------------------------------------- init


def test_init_writes_a_commented_starter_that_validates(tmp_path, validator):
    result = cli("init", "my_bus", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    path = tmp_path / "my_bus.yaml"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=scenario.schema.json\n")
    assert (tmp_path / "scenario.schema.json").exists()
    assert text.count("#") > 10                                   # commented
    scenario = load_scenario(str(path))
    assert scenario.name == "my_bus"
    assert not list(validator.iter_errors(yaml.safe_load(text)))
    assert cli("validate", path).exit_code == 0


def test_init_refuses_to_overwrite_and_bad_names(tmp_path):
    assert cli("init", "a", "--dir", tmp_path).exit_code == 0
    again = cli("init", "a", "--dir", tmp_path)
    assert again.exit_code == 2 and "exists" in again.output and "--force" in again.output
    assert cli("init", "a", "--dir", tmp_path, "--force").exit_code == 0
    bad = cli("init", "no spaces", "--dir", tmp_path)
    assert bad.exit_code == 2 and "letters, digits" in flat(bad.output)
    unknown = cli("init", "b", "--from", "nowhere", "--dir", tmp_path)
    assert unknown.exit_code == 2 and "quickstart" in unknown.output


def test_init_from_a_scenario_file_copies_it_under_the_new_name(tmp_path):
    result = cli("init", "hot2", "--from", REPO / "scenarios" / "hot_shard.yaml", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    scenario = load_scenario(str(tmp_path / "hot2.yaml"))
    original = load_scenario(str(REPO / "scenarios" / "hot_shard.yaml"))
    assert scenario.name == "hot2"
    assert scenario.bus == original.bus and scenario.steps == original.steps


@pytest.mark.slow
def test_the_starter_runs(tmp_path):
    cli("init", "starter", "--dir", tmp_path)
    result = cli("run", tmp_path / "starter.yaml", "--no-live", "-q", "--out", tmp_path / "out",
                 "--set", "steps.0.run=200ms", "--set", "steps.3.run=200ms")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    result = cli("completion", shell)
    assert result.exit_code == 0
    assert "_BUSBENCH_COMPLETE" in result.output


def test_set_completion_offers_scenario_keys():
    keys = setting_keys()
    assert {"bus.shards", "bus.batch.max_events", "load.rate", "seed", "steps"} <= set(keys)
    offered = [item.value for item in set_keys(None, None, "bus.ba")]
    assert offered == ["bus.backpressure=", "bus.batch=", "bus.batch.max_events=", "bus.batch.max_delay="]
    assert set_keys(None, None, "bus.shards=") == []          # a value: nothing to offer


def test_file_completion_offers_scenarios_and_folders_only(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "b.json").write_text("")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert [i.value for i in scenario_files(None, None, "")] == ["a.yaml", "sub/"]


def test_completion_through_the_shell_protocol(monkeypatch):
    """What bash asks when the user presses tab after `busbench run --set bus.sh`."""
    env = {"_BUSBENCH_COMPLETE": "bash_complete", "COMP_WORDS": "busbench run --set bus.sh",
           "COMP_CWORD": "3"}
    result = subprocess.run([sys.executable, "-c", "from busbench.cli import main; main(prog_name='busbench')"],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
                            cwd=REPO, check=False)
    assert "plain,bus.shards=" in result.stdout, result.stdout + result.stderr


# --------------------------------------------------------------------------- long steps


def long_shutdown(**changes):
    base = {"step_label": "shutdown (grace 5.00 s)", "step_index": 4, "step_elapsed_s": 3.0,
            "step_expected_s": 0.0,
            "waiting_for": "in-flight producers (grace 5.00 s), then the final drain",
            "shards": (ShardFill(3000, 4096), ShardFill(1000, 4096)),
            "rates": {"events_ingested": 0, "events_dropped": 0, "batches_dispatched": 10,
                      "events_dispatched": 2000.0}}
    base.update(changes)
    return make_snapshot(**base)


def test_a_long_step_says_what_it_waits_for_and_what_is_left():
    line = waiting_line(long_shutdown())
    assert "waiting 3.0s for in-flight producers" in line
    assert "4,000 events in the rings" in line and "fullest shard 0: 3,000" in line
    assert "draining 2.0k/s, ~2.0s left" in line
    frame = render_text(long_shutdown())
    assert "waiting 3.0s for in-flight producers" in frame       # in the dashboard's header too
    assert "waiting" not in render_text(long_shutdown(step_elapsed_s=0.2))


def test_a_step_on_time_or_a_stalled_drain_reads_truthfully():
    assert waiting_line(long_shutdown(step_elapsed_s=0.5)) is None          # not long yet
    assert waiting_line(long_shutdown(step_label="run 2s", step_expected_s=2.0,
                                      step_elapsed_s=2.5)) is None         # a run on time
    stalled = waiting_line(long_shutdown(rates={"events_dispatched": 0.0}))
    assert "not draining" in stalled
    empty = waiting_line(long_shutdown(shards=(ShardFill(0, 4096),)))
    assert "the rings are empty" in empty


def test_a_long_step_on_a_target_that_cannot_see_it_says_so():
    """No events_dispatched (net-mesh): no drain rate made up from a 0; no ring
    fill: said, not left out silently."""
    counters = {"events_ingested": 10, "events_dropped": 0}
    no_dispatch = waiting_line(long_shutdown(counters=counters, rates={"events_ingested": 0.0}))
    assert "drain rate not observable on this target" in no_dispatch
    assert "not draining" not in no_dispatch and "left" not in no_dispatch
    no_fill = waiting_line(long_shutdown(shards=()))
    assert "ring fill not observable on this target" in no_fill


def test_plain_progress_prints_the_final_frame_once():
    """The runner's final frame is a step change when the last step was quick:
    printed by update, it is not printed again on exit."""
    out = io.StringIO()
    with PlainProgress(file=out, interval_s=10.0, clock=lambda: 0.0) as progress:
        progress.update(make_snapshot(step_index=0))
        progress.update(make_snapshot(step_index=4, status="finished"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and " finished: " in lines[-1]


def test_plain_progress_says_at_once_when_a_step_turns_long():
    out = io.StringIO()
    now = [0.0]
    progress = PlainProgress(file=out, interval_s=10.0, clock=lambda: now[0])
    with progress:
        progress.update(long_shutdown(step_elapsed_s=0.1))
        now[0] = 1.5
        progress.update(long_shutdown(step_elapsed_s=1.6))     # turned long: printed at once
        now[0] = 2.0
        progress.update(long_shutdown(step_elapsed_s=2.1))     # no flood
        progress.update(dataclasses.replace(long_shutdown(step_elapsed_s=2.2), status="finished",
                                            waiting_for=""))
    lines = out.getvalue().splitlines()
    assert len([l for l in lines if "waiting 1.6s for" in l]) == 1
    assert not any("waiting 2.1s" in l for l in lines)
    # the last line says how the run ended, not the step it ended in
    assert lines[-1].startswith("[") and " finished: " in lines[-1] and "step" not in lines[-1]
    assert sum("shutdown (grace" in l for l in lines) == 2


# --------------------------------------------------------------------------- compile notice


def test_compile_notice_fires_once_and_only_on_a_compile():
    from numba import njit
    said = []

    @njit(cache=False)
    def add(a, b):
        return a + b

    with coldstart._CompileWatch(said.append) as watch:
        add(1, 2)
        add(3, 4)                        # already compiled: no event
        add(1.5, 2.0)                    # a second specialization: counted, not announced again
    assert said == [coldstart.COMPILING_MESSAGE]
    assert watch.count == 2
    with coldstart._CompileWatch(said.append):
        add(5, 6)
    assert said == [coldstart.COMPILING_MESSAGE]


def test_interrupted_summary_says_checks_were_not_evaluated():
    from rich.console import Console

    from busbench.reports import summary
    from busbench.evidence.result import RunResult
    result = RunResult(scenario_name="s", scenario={}, source="s.yaml", target="builtin",
                       layout="padded", environment={}, started_at="now", status="interrupted",
                       error="interrupted")
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(summary.render(result))
    text = console.export_text()
    assert "checks: not evaluated, the run was interrupted before its end" in text
    assert "verdict" not in text                       # no empty table header


@pytest.mark.slow
def test_cold_first_run_says_it_compiles_then_warm_runs_do_not(tmp_path):
    """A fresh Numba cache (NUMBA_CACHE_DIR, as for an installed package whose
    folder is not writable): the first run prints the notice before any
    progress and the seconds it took; the second run loads the cache silently."""
    scenario = tmp_path / "s.yaml"
    from test_cli import SHORT_OK
    scenario.write_text(SHORT_OK)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    env.pop("COLUMNS", None)

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "busbench", "run", str(scenario), "--out",
                               str(tmp_path / "out"), *extra], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    cold = run("--no-live")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    lines = cold.stdout.splitlines()
    assert lines[0] == coldstart.COMPILING_MESSAGE
    assert re.fullmatch(r"compiled Numba kernels in \d+\.\d s", lines[1]), lines[:3]
    assert list((tmp_path / "numba-cache").rglob("*.nbi"))
    warm = run("--no-live")
    assert warm.returncode == 0
    assert "compiling" not in warm.stdout and "compiled" not in warm.stdout
    # --quiet still says it, on stderr
    for f in (tmp_path / "numba-cache").rglob("*.nb?"):
        f.unlink()
    quiet = run("--quiet")
    assert quiet.returncode == 0
    assert coldstart.COMPILING_MESSAGE in quiet.stderr and "compiling" not in quiet.stdout


def _compile_cold_in_a_child(tmp_path, code: str) -> str:
    """Run ``code`` in a fresh Python on an empty Numba cache, ``names`` listing every
    kernel compiled in that process (not in its helpers); its output."""
    listener = ("from numba.core import event\n"
                "names = []\n"
                "class L(event.Listener):\n"
                "    def on_start(self, e): names.append(e.data['dispatcher'].py_func.__name__)\n"
                "    def on_end(self, e): pass\n"
                "event.register('numba:compile', L())\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", listener + code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_helper_process_fills_the_cache_this_process_then_loads(tmp_path):
    """On a cold cache a forked helper compiles the worker side's bulk (``dispatch``,
    by signature) and the load loop (``produce``); this process compiles the ring step
    and the worker side around ``dispatch``, loading the helper's share from the cache
    (no compile event for it here). A run of the reference bus never compiles the
    foreign step (load.foreign)."""
    out = _compile_cold_in_a_child(tmp_path, (
            "from busbench.targets import builtin\n"
            "cold = builtin.compile_kernels(helper=True)\n"
            "print(cold.helper_process, cold.compiled,\n"
            "      sorted({'ingest_batch', 'worker_loop'} - set(names)) or '-',\n"
            "      sorted({'dispatch', 'produce', 'after_call', 'c_step', 'write_payloads',\n"
            "              'settle_foreign'} & set(names)) or '-',\n"
            "      sorted(n for n in set(names) if names.count(n) != 1) or '-')\n"))
    helper, compiled, missing_here, compiled_here, twice = out.split()
    assert helper == "True" and 0 < int(compiled)
    assert missing_here == "-", f"not compiled here: {missing_here}"
    # ``dispatch`` is compiled by signature (builtin.precompile_dispatch): a signature that
    # is not the one worker_loop calls it with would be compiled again here; and the
    # foreign step is compiled by nobody
    assert compiled_here == "-", f"compiled here: {compiled_here}"
    assert twice == "-", f"compiled here more than once: {twice}"


@pytest.mark.slow
def test_a_c_bus_compiles_the_loop_here_and_its_step_and_sink_in_helpers(tmp_path):
    """A C bus's cold start (coldstart.compile_foreign_loop): the load loop here, the
    foreign step and the c-abi sink in forked helpers (loaded here from the cache), and
    nothing of the reference bus (its ring step, its workers) anywhere."""
    out = _compile_cold_in_a_child(tmp_path, (
            "from busbench.targets import coldstart\n"
            "from busbench.load import foreign, ring\n"
            "from busbench.targets.sink import C_SINK\n"
            "cold = coldstart.compile_foreign_loop(helper=True, sink=True)\n"
            "print(cold.helper_process, foreign.STEP.compiled, C_SINK.compiled, ring.STEP.compiled,\n"
            "      sorted({'produce', 'after_call'} - set(names)) or '-',\n"
            "      sorted({'c_step', 'write_payloads', 'settle_foreign', 'ingest_batch',\n"
            "              'worker_loop', 'dispatch'} & set(names)) or '-')\n"))
    helper, step, sink, ring_step, missing_here, compiled_here = out.split()
    assert (helper, step, sink, ring_step) == ("True", "True", "True", "False")
    assert missing_here == "-", f"not compiled here: {missing_here}"
    assert compiled_here == "-", f"compiled here: {compiled_here}"


_NO_COMPILE_DURING_RUN = '''
import sys, time
from numba.core import event
late = []
state = {"load": False}
class L(event.Listener):
    def on_start(self, e):
        if state["load"]:
            late.append(e.data["dispatcher"].py_func.__name__)
    def on_end(self, e):
        pass
event.register("numba:compile", L())
from busbench.load import generator
start = generator.LoadGenerator.start
def marked(self, *a, **k):
    state["load"] = True
    return start(self, *a, **k)
generator.LoadGenerator.start = marked
from busbench.cli import main
try:
    main(["run", sys.argv[1], "--no-live", "--no-isolate", "--out", sys.argv[2]])
except SystemExit as e:
    print("exit", e.code)
print("late", sorted(set(late)) or "-")
'''


@pytest.mark.slow
@pytest.mark.parametrize("target", ["builtin", "c_bus"])
def test_a_first_run_compiles_nothing_once_its_load_started(tmp_path, target):
    """On a cold cache everything a run calls is compiled before its first load step
    (the loop, the target's step, and what the run calls from Python afterwards:
    unsent counts, checksums, latency percentiles), so a first run's figures and its
    wall time after the load hold no compile."""
    if target == "c_bus" and shutil.which("cc") is None:
        pytest.skip("no C compiler for examples/c_bus")
    if target == "c_bus":
        subprocess.run(["make", "-s", "-C", str(REPO / "examples" / "c_bus")], check=True,
                       capture_output=True, timeout=120)
        head = f"target:\n  c-abi: {REPO / 'examples' / 'c_bus' / 'target.yaml'}\n"
    else:
        head = "bus:\n  shards: 2\n  capacity: 1024\n  adapter: {kind: verify}\n  latency: true\n"
    scenario = tmp_path / "first.yaml"
    scenario.write_text(
        f"name: first\ndescription: a first run, on a cold cache\n{head}load:\n  producers: 2\n  rate: max\n  batch: 16\n"
        "steps:\n  - run: 300ms\n  - flush: {timeout: 5s}\n  - run: 200ms\n"
        "  - shutdown: {grace: 5s}\n"
        "checks:\n  - conservation\n  - ground_truth\n  - flush_barrier\n"
        "  - threshold: \"latency.p99 < 1s\"\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", _NO_COMPILE_DURING_RUN, str(scenario),
                           str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert "exit 0" in done.stdout, done.stdout + done.stderr
    assert done.stdout.strip().endswith("late -"), done.stdout
