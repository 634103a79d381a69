"""The scenario fuzzer, offline: many generated scenarios on the correct bus
(and, with --mutations, on each mutation), with figures at the end.

    python benchmarks/fuzz.py --examples 1000 [--seed 1] [--mutations 50] [--out DIR]

Each run executes in a warm supervised child (busbench/run/supervisor.py; a crash
costs that run, recorded as crashed; --no-isolate: in this process).
Prints the count of runs, ok, failures, hangs (runs the watchdog had to end),
crashes, tracebacks (status error), invalid (a generated scenario refused), wall time
per run; writes each failing scenario's YAML and problems to --out. Exit 1
when anything but ok (or, for mutations, anything missed) was seen.
The strategies and judges are tests/fuzz/scenario_fuzz.py, shared with CI.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fuzz")]

import scenario_fuzz as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed


def _settings(examples):
    return settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))


def fuzz_correct(examples, seed, out, provoke_known):
    F.PROVOKE_KNOWN = provoke_known
    tally = collections.Counter()
    walls = []
    problems_seen = collections.Counter()

    @hypothesis_seed(seed)
    @_settings(examples)
    @given(F.correct_scenarios())
    def one(data):
        outcome = F.run_scenario(data)
        verdict, problems = F.judge_correct(outcome)
        tally[verdict] += 1
        walls.append(outcome.wall_s)
        if verdict != "ok":
            n = sum(v for k, v in tally.items() if k != "ok")
            path = out / f"correct-{n:04d}-{verdict}.txt"
            path.write_text("\n".join(problems) + "\n--- scenario ---\n" + outcome.yaml_text,
                            encoding="utf-8")
            for p in problems:
                problems_seen[p.split(":")[0]] += 1
            print(f"  {verdict}: {problems[0][:200]} ({path})", flush=True)
        done = sum(tally.values())
        if done % 100 == 0:
            print(f"  {done} runs: {dict(tally)}", flush=True)

    t0 = time.monotonic()
    one()
    runs = sum(tally.values())
    print(f"correct bus: {runs} runs in {time.monotonic() - t0:.0f} s: ok {tally['ok']}, failures "
          f"{tally['failure']}, hangs {tally['hang']}, crashes {tally['crash']}, tracebacks "
          f"{tally['traceback']}, invalid "
          f"{tally['invalid']}")
    if walls:
        print(f"  wall per run: median {statistics.median(walls) * 1e3:.0f} ms, p99 "
              f"{sorted(walls)[int(0.99 * (len(walls) - 1))] * 1e3:.0f} ms, max {max(walls) * 1e3:.0f} ms")
    for kind, n in problems_seen.most_common():
        print(f"  {n} x {kind}")
    return runs - tally["ok"]


def fuzz_mutations(examples, seed, out):
    bad = 0
    for mutation in F.MUTATIONS:
        tally = collections.Counter()
        bad += _fuzz_mutation(mutation, examples, seed, out, tally)
    return bad


def _fuzz_mutation(mutation, examples, seed, out, tally):
    @hypothesis_seed(seed)
    @_settings(examples)
    @given(F.strategy_for(mutation))
    def one(data):
        outcome = F.run_scenario(data)
        verdict, detail = F.judge_mutation(mutation, outcome)
        tally[verdict] += 1
        if verdict not in ("caught", "not_manifested"):
            path = out / f"{mutation}-{sum(tally.values()):04d}-{verdict}.txt"
            path.write_text(f"{detail}\n--- scenario ---\n{outcome.yaml_text}", encoding="utf-8")
            print(f"  {mutation}: {verdict}: {detail[:200]} ({path})", flush=True)

    one()
    manifested = tally["caught"] + tally["missed"]
    print(f"{mutation}: {sum(tally.values())} runs, manifested in {manifested}, caught "
          f"{tally['caught']}, missed {tally['missed']}, hangs {tally['hang']}, crashes "
          f"{tally['crash']}, tracebacks "
          f"{tally['traceback']}, invalid {tally['invalid']}", flush=True)
    return sum(v for k, v in tally.items() if k not in ("caught", "not_manifested"))




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1000, help="runs on the correct bus")
    ap.add_argument("--mutations", type=int, default=0, metavar="N", help="runs per mutation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("results/fuzz"))
    ap.add_argument("--provoke-known", action=argparse.BooleanOptionalAction,
                    default=F.PROVOKE_KNOWN,
                    help="generate short flush timeouts, so that flushes time out honestly "
                         "(flush_barrier must pass them, flush_completes fail them)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                    help="run in a warm supervised child (default), or in this process")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bad = 0
    from busbench.run.supervisor import Session
    with Session(isolate=args.isolate) as session:
        F.SESSION = session if args.isolate else None
        if args.examples:
            bad += fuzz_correct(args.examples, args.seed, args.out, args.provoke_known)
        if args.mutations:
            bad += fuzz_mutations(args.mutations, args.seed, args.out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
