"""What does running each run in a supervised child cost (issue 17)?

    python benchmarks/bench_isolation.py [--pairs 10] [--scenario scenarios/quickstart.yaml]

Times whole ``busbench run SCENARIO`` commands, as a user starts them, isolated
(the default: the run in a supervised child) and with ``--no-isolate`` (in the
busbench process), alternating, the order flipped every pair, after one warm-up
of each (Numba's on-disk cache then holds the kernels: "warm"). Reports:

* wall time per command: the median of the per-pair differences isolated minus
  in-process, with a distribution-free 95% interval (sign test on the
  differences' order statistics); the goal is at most +0.3 s;
* throughput through the bus, from each run's record: the median of the
  per-pair ratios isolated / in-process with its distribution-free interval
  (busbench.verdicts.precision.paired_ratio) and its resolution (the smallest
  change this many pairs could see); "unchanged" when the interval holds 1;
* the child's own start-up (spawn to a live interpreter) and its prepare time
  (job sent to the deadline starting: imports, the target opened, kernels
  loaded from the cache), from the isolated records.

Never a timed test: figures, with their spread, from one run of this script.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from busbench.verdicts import precision  # noqa: E402

GOAL_S = 0.3


def one(scenario: str, isolate: bool, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GITHUB_STEP_SUMMARY", None)
    folder = Path(tempfile.mkdtemp(dir=out))
    cmd = [sys.executable, "-m", "busbench", "run", scenario, "-q", "--no-live",
           "--out", str(folder)] + ([] if isolate else ["--no-isolate"])
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall = time.monotonic() - t0
    records = list(folder.glob("*.json"))
    if proc.returncode not in (0, 1) or not records:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    record = json.loads(records[0].read_text())
    return {"wall_s": wall, "throughput": record["metrics"].get("throughput"),
            "process": record.get("process"), "duration_s": record.get("duration_s")}


def difference_interval(diffs: list) -> tuple:
    """Median of the differences and its distribution-free interval (sign test)."""
    median, low, high, cover = precision.median_interval(sorted(diffs), 0.95)
    return median, low, high, cover


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--scenario", default="scenarios/quickstart.yaml")
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        out = Path(tmp)
        print(f"warm-up: one run of each ({args.scenario})", flush=True)
        one(args.scenario, True, out)
        one(args.scenario, False, out)
        iso, inp = [], []
        for pair in range(args.pairs):
            order = (True, False) if pair % 2 == 0 else (False, True)
            got = {flag: one(args.scenario, flag, out) for flag in order}
            iso.append(got[True])
            inp.append(got[False])
            print(f"pair {pair + 1}: isolated {got[True]['wall_s']:.2f} s "
                  f"{got[True]['throughput'] / 1e6:.1f}M/s, in-process {got[False]['wall_s']:.2f} s "
                  f"{got[False]['throughput'] / 1e6:.1f}M/s", flush=True)
    diffs = [a["wall_s"] - b["wall_s"] for a, b in zip(iso, inp)]
    med, low, high, cover = difference_interval(diffs)
    tp = precision.paired_ratio([b["throughput"] for b in inp], [a["throughput"] for a in iso])
    startup = [a["process"]["startup_s"] for a in iso if a["process"]]
    prepare = [a["process"]["prepare_s"] for a in iso if a["process"]]
    rss = [a["process"]["peak_rss_bytes"] for a in iso if a["process"]]
    resolution = tp.resolution if tp.has_interval else None
    figures = {
        "pairs": args.pairs, "scenario": args.scenario,
        "wall_isolated_median_s": statistics.median(a["wall_s"] for a in iso),
        "wall_in_process_median_s": statistics.median(b["wall_s"] for b in inp),
        "wall_difference_median_s": med, "wall_difference_ci95_s": [low, high],
        "wall_difference_ci_exact_level": cover,
        "goal_s": GOAL_S,
        "throughput_ratio_isolated_over_in_process": tp.point,
        "throughput_ratio_ci95": [tp.low, tp.high], "throughput_resolution": resolution,
        "child_startup_median_s": statistics.median(startup) if startup else None,
        "child_prepare_median_s": statistics.median(prepare) if prepare else None,
        "child_peak_rss_median_mib": statistics.median(rss) / 2**20 if rss else None,
        "load_average": os.getloadavg(),
    }
    print()
    print(f"wall per command: isolated {figures['wall_isolated_median_s']:.2f} s, in-process "
          f"{figures['wall_in_process_median_s']:.2f} s (medians of {args.pairs})")
    print(f"isolation costs {med:+.2f} s per command (median of per-pair differences; "
          f"95% interval {low:+.2f} .. {high:+.2f} s, exact level {cover:.1%}); goal <= "
          f"+{GOAL_S} s: {'met' if high <= GOAL_S else 'met by the median' if med <= GOAL_S else 'NOT met'}")
    if not tp.has_interval:
        judged = "no interval: " + tp.reason
    else:
        judged = "unchanged within the resolution" if tp.low <= 1 <= tp.high else "differs"
    shown = "" if resolution is None else f"; resolution ±{resolution:.1%}"
    print(f"throughput isolated / in-process: {tp.point:.3f} [{tp.low:.3f} .. {tp.high:.3f}] "
          f"(paired, distribution-free 95%){shown}: {judged}")
    print(f"the child: start-up {figures['child_startup_median_s']:.3f} s (spawn to interpreter), "
          f"prepare {figures['child_prepare_median_s']:.2f} s (imports, target, kernels from "
          f"Numba's cache), peak RSS {figures['child_peak_rss_median_mib']:.0f} MiB (medians)")
    print(f"load average {figures['load_average'][0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
