"""Resident memory of a long run: is ground truth in fixed memory?

Runs ``busbench run SCENARIO`` with one run step of --seconds (default: the
quick start's settings, verify adapter, closed loop) in a child process and
samples its RSS (/proc/PID/status VmRSS) every --interval seconds. Prints the
RSS after the first 10 s, the maximum after that, and the growth between them;
goal: within 10%. Linux only.

Run: nice python benchmarks/rss.py [--seconds 90] [--scenario scenarios/quickstart.yaml]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="scenarios/quickstart.yaml")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--json", metavar="FILE", help="write the samples")
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="more --set overrides for the run")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="busbench-rss-")
    steps = f"steps=[{{run: {args.seconds}s}}, flush, {{shutdown: {{grace: 5s}}}}]"
    cmd = [sys.executable, "-m", "busbench", "run", args.scenario, "--no-live", "-q",
           "--out", out, "--set", steps, "--set", "checks=[conservation, ground_truth]"]
    for extra in args.extra:
        cmd += ["--set", extra]
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []
    try:
        while child.poll() is None:
            value = rss_kib(child.pid)
            if value is not None:
                samples.append((round(time.monotonic() - t0, 2), value))
            time.sleep(args.interval)
    finally:
        if child.poll() is None:
            child.terminate()
        output = child.communicate()[0]
    # t counts from the process start; the load starts after the kernels load
    after = [(t, v) for t, v in samples if t >= 10.0]
    if not after:
        print("the run ended before 10 s; nothing to compare", file=sys.stderr)
        return 1
    first, peak = after[0][1], max(v for _, v in after)
    growth = peak / first - 1
    verdict = [line for line in output.splitlines() if "ground_truth" in line or "PASSED" in line
               or "FAILED" in line]
    print(f"run: {args.seconds:g} s of load ({args.scenario}), exit {child.returncode}")
    print(f"RSS at 10 s: {first / 1024:.1f} MiB; max after: {peak / 1024:.1f} MiB; "
          f"growth {growth:+.1%} (goal: within 10%)")
    print("RSS over the run (MiB): " + ", ".join(
        f"{t:.0f}s {v / 1024:.0f}" for t, v in samples[::max(1, len(samples) // 12)]))
    for line in verdict:
        print("  " + " ".join(line.split())[:200])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cmd": cmd, "samples": samples, "growth": growth,
                       "exit": child.returncode}, f, indent=1)
    return 0 if growth <= 0.10 and child.returncode == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
