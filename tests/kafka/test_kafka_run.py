"""`busbench run` on the kafka target: the quickstart with no broker installed, what is
said before loading librdkafka, validation that never loads it, bad keys as exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import cli, flat

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios/kafka/quickstart.yaml"


def _record(out: Path) -> dict:
    (path,) = sorted(out.glob("*.json"))
    return json.loads(path.read_text())


def test_quickstart_runs_with_no_broker_and_leaves_nothing_behind(tmp_path, monkeypatch, threads_back):
    monkeypatch.chdir(ROOT)
    result = cli("run", QUICKSTART, "--out", tmp_path, "--no-live")
    text = flat(result.output)
    assert result.exit_code == 0, text
    said, loaded = text.index("target kafka 2.16.1: loading librdkafka"), text.index("loaded from")
    assert said < loaded                                   # said before it is loaded
    record = _record(tmp_path)
    assert record["status"] == "passed" and record["threads_left"] == []
    assert record["environment"]["native_library"]["librdkafka"] == "2.16.0"
    verdicts = {c["name"]: c["outcome"] for c in record["checks"]}
    assert verdicts == {"ground_truth": "passed", "flush_barrier": "passed", "flush_completes": "passed"}
    assert record["counters"]["events_ingested"] == 100_000


def test_validate_never_loads_librdkafka(tmp_path):
    code = ("import sys; from busbench.cli import main\n"
            "try:\n    main(['validate', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('LOADED' if 'librdkafka' in maps else 'CLEAN', code)\n")
    out = subprocess.run([sys.executable, "-c", code, str(QUICKSTART)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.stdout.split()[-2:] == ["CLEAN", "0"], out.stdout + out.stderr


def _scenario(tmp_path, target: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: x\ndescription: y\ntarget: {target}\n{extra}steps: [{{run: 100}}]\n"
                    "checks: [ground_truth]\n")
    return path


def test_unknown_target_key_names_the_nearest(tmp_path):
    result = cli("validate", _scenario(tmp_path, "{kafka: {shutdwn: purge}}"))
    assert result.exit_code == 2
    assert "target.kafka.shutdwn: unknown key" in flat(result.output)
    assert "did you mean 'shutdown'" in flat(result.output)


def test_bus_keys_and_config_keys_it_cannot_honour_are_refused(tmp_path):
    for target, extra, words in (
            ("{kafka: {}}", "bus: {backpressure: drop_oldest}\n", "never evicts"),
            ("{kafka: {}}", "bus: {workers: 2, shards: 4}\n", "bus.workers"),
            ("{kafka: {config: {queue.buffering.max.messages: 5}}}", "", "from bus.capacity"),
            ("{kafka: {bootstrap: 'localhost'}}", "", "expected host:port"),
            ("{kafka: {bootstrap: 'localhost:9092'}}",
             "", None)):
        result = cli("validate", _scenario(tmp_path, target, extra))
        if words is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2 and words in flat(result.output), result.output


def test_a_fault_on_a_broker_busbench_did_not_start_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndescription: y\ntarget: {kafka: {bootstrap: 'h:1'}}\n"
                    "steps: [{fault: {broker_down: {}}}, {run: 100}]\nchecks: [ground_truth]\n")
    result = cli("validate", path)
    assert result.exit_code == 2 and "not busbench's to break" in flat(result.output)
    path.write_text("name: x\ndescription: y\nsteps: [{fault: {kill_cluster: {}}}, {run: 100}]\n"
                    "checks: [ground_truth]\n")
    result = cli("validate", path)
    assert result.exit_code == 2 and "the builtin target has none" in flat(result.output)


def test_a_config_key_librdkafka_does_not_know_is_exit_2_at_run(tmp_path, monkeypatch, threads_back):
    monkeypatch.chdir(tmp_path)
    result = cli("run", _scenario(tmp_path, "{kafka: {config: {no.such.key: 1}}}"), "--out", tmp_path,
                 "--no-live")
    assert result.exit_code == 2
    assert 'target.kafka.config.no.such.key: No such configuration property' in flat(result.output)
