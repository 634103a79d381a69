"""What does a feature cost? The same scenario with it on and off, alternating.

    python benchmarks/bench_overhead.py latency   [--repeat 7] [--seconds 1]
    python benchmarks/bench_overhead.py dashboard [--repeat 7] [--seconds 1]

`latency`: bus.latency true vs false (timestamps in the rings, one histogram
record per event per clock). `dashboard`: the live dashboard rendering at its
normal refresh rate into a terminal-sized recording console vs no display.
Runs alternate on/off (after one warm-up of each) so machine drift hits both
alike. The cost is the median of the per-round ratios on/off with a
distribution-free 95% interval (busbench.verdicts.precision.paired_ratio), with the
resolution: the smallest cost this run could have seen (half-width of the
interval, log scale). The ratio of median throughputs with a bootstrap
interval is reported beside it. Never a single pair of runs.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from busbench.verdicts import precision  # noqa: E402
from busbench.reports.dashboard import LiveDashboard, NullProgress  # noqa: E402
from busbench.run.runner import Runner  # noqa: E402
from busbench.targets.builtin import warm_up  # noqa: E402
from busbench.scenario import load_scenario  # noqa: E402
from busbench.verdicts.stats import bootstrap_ratio_ci, summarize, verdict  # noqa: E402

GOALS = {"latency": 0.15, "dashboard": 0.02}
DEFAULT_SCENARIO = {"latency": "scenarios/throughput.yaml", "dashboard": "scenarios/throughput.yaml"}


def one_run(scenario, feature: str, on: bool) -> float:
    progress = NullProgress()
    if feature == "dashboard" and on:
        console = Console(file=io.StringIO(), record=False, width=120, height=45,
                          force_terminal=True, color_system="truecolor")
        progress = LiveDashboard(console=console)
    with progress:
        result = Runner(scenario, "bench", progress=progress).run()
    if result.status not in ("passed", "failed"):
        raise RuntimeError(f"run did not complete: {result.error}")
    return result.metrics["throughput"]


def measure(feature: str, scenario_path: str, repeat: int, seconds: float, overrides=()):
    base = [f"steps=[{{run: {seconds}s}}, {{shutdown: {{grace: 5s}}}}]", "checks=[]", *overrides]
    variants = {}
    for on in (False, True):
        extra = [f"bus.latency={'true' if on else 'false'}"] if feature == "latency" else []
        variants[on] = load_scenario(scenario_path, overrides=base + extra)
    warm_up()
    samples = {False: [], True: []}
    for rnd in range(repeat + 1):
        order = (False, True) if rnd % 2 == 0 else (True, False)
        for on in order:
            value = one_run(variants[on], feature, on)
            if rnd > 0:                      # round 0 is the warm-up
                samples[on].append(value)
            print(f"  round {rnd}{' (warm-up)' if rnd == 0 else ''}: {feature} "
                  f"{'on ' if on else 'off'} {value / 1e6:8.2f} M events/s", flush=True)
    ratio, low, high = bootstrap_ratio_ci(samples[False], samples[True])
    # Same-round pairs: when the VM moves its vCPUs between rounds (throughput
    # jumps 2-5x), the ratio within a round still compares like with like.
    paired = sorted(on / off for on, off in zip(samples[True], samples[False]))
    estimate = precision.paired_ratio(samples[False], samples[True])
    return {
            "paired_estimate": estimate.to_dict(), "resolution": estimate.resolution,
            "paired_verdict": precision.verdict(estimate),
            "paired_description": precision.describe(estimate),
            "feature": feature, "scenario": scenario_path, "repeat": repeat, "seconds": seconds,
            "off": samples[False], "on": samples[True],
            "off_summary": summarize(samples[False]).to_dict(),
            "on_summary": summarize(samples[True]).to_dict(),
            "ratio_on_over_off": ratio, "ci95": [low, high],
            "cost": 1 - ratio, "goal_max_cost": GOALS[feature],
            "verdict": verdict(low, high),
            "paired_ratios": paired, "paired_median": statistics.median(paired)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("feature", choices=sorted(GOALS))
    p.add_argument("--scenario", default=None)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--json", dest="json_path")
    a = p.parse_args(argv)
    scenario = a.scenario or DEFAULT_SCENARIO[a.feature]
    out = measure(a.feature, scenario, a.repeat, a.seconds, a.overrides)
    print(f"\n{a.feature} cost on {scenario} ({a.repeat} alternating runs each, {a.seconds:g}s of load):")
    print(f"  off: median {out['off_summary']['median'] / 1e6:.2f} M/s   "
          f"on: median {out['on_summary']['median'] / 1e6:.2f} M/s")
    print(f"  on/off = {out['ratio_on_over_off']:.3f} (95% CI {out['ci95'][0]:.3f}..{out['ci95'][1]:.3f}): "
          f"cost {out['cost']:.1%} (goal < {GOALS[a.feature]:.0%}); {out['verdict']}")
    p = out["paired_ratios"]
    print(f"  paired (same round) on/off: median {out['paired_median']:.3f} "
          f"(min {p[0]:.3f}, max {p[-1]:.3f}): cost {1 - out['paired_median']:.1%}")
    print(f"  paired on/off (primary): {out['paired_description']}")
    if a.json_path:
        Path(a.json_path).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
