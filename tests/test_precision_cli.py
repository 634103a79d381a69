"""compare's precision options through the CLI: usage errors are exit 2; a short
--precision run says which metric, why it stopped and what it could see."""
import json

from click.testing import CliRunner

from busbench.cli import main

SHORT = ["--set", "steps=[{run: 150ms}, {shutdown: {grace: 5s}}]", "--set", "checks=[]"]


def test_a_bad_precision_or_budget_is_a_usage_error():
    for option, value, complaint in (("--precision", "fast", "--precision"),
                                     ("--precision", "150%", "--precision"),
                                     ("--max-time", "soon", "--max-time")):
        args = ["compare", "scenarios/throughput.yaml", "--vary", "bus.counters=padded,packed",
                option, value] + (["--precision", "5%"] if option == "--max-time" else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (option, value, result.output)
        assert complaint in result.output


def test_compare_with_precision_and_cpu_metric_reports_stop_reason_and_resolution(tmp_path):
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(main, ["compare", "scenarios/throughput.yaml", *SHORT,
                                       "--vary", "bus.counters=padded,packed",
                                       "--metric", "cpu_per_event", "--precision", "50%",
                                       "--max-time", "20s", "--warmup", "settle",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["metric"] == "cpu_per_event" and "CPU time" in data["metric_description"]
    assert data["stopping"]["precision"] == 0.5
    assert set(data["stopping"]["stopped_by"].values()) <= {"precision", "significant", "budget"}
    assert data["noise_reduction"]["warmup"] == "settle"
    assert "scenario_hash" in data["environment"]
    assert "metric: cpu_per_event" in result.output
    assert "smallest change" in result.output or "resolution" in result.output
