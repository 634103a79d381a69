"""The scenario fuzzer, offline: many generated scenarios on the correct buses
(and, with --mutations, on each mutation of the builtin bus), with figures at the end.

    python benchmarks/fuzz.py --examples 1000 [--seed 1] [--targets builtin,c_bus,python_bus]
                              [--mutations 50] [--out DIR]

The target is drawn per scenario among --targets (default: every one this machine
can run; c_bus needs a C compiler): the builtin bus, examples/c_bus through its C
ABI, examples/python_bus from Python threads. Prints the count of runs, ok,
failures, hangs (runs the watchdog had to end), tracebacks (status error), invalid
(a generated scenario refused), in all and per target, and wall time per run;
writes each failing scenario's YAML and problems to --out. Exit 1 when anything
but ok (or, for mutations, anything missed) was seen.
Each run executes in a warm supervised child (busbench/run/supervisor.py): a crash
costs that run and is counted (crashes); --no-isolate runs in this process.
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


def fuzz_correct(examples, seed, out, provoke_known, targets=None):
    F.PROVOKE_KNOWN = provoke_known
    targets = tuple(targets or F.available_targets())
    tally = collections.Counter()
    per_target = {t: collections.Counter() for t in targets}
    walls = []
    walls_by_target = {t: [] for t in targets}
    problems_seen = collections.Counter()

    @hypothesis_seed(seed)
    @_settings(examples)
    @given(F.correct_scenarios(targets))
    def one(data):
        outcome = F.run_scenario(data)
        verdict, problems = F.judge_correct(outcome)
        tally[verdict] += 1
        per_target[F.target_of(data)][verdict] += 1
        walls.append(outcome.wall_s)
        walls_by_target[F.target_of(data)].append(outcome.wall_s)
        if verdict != "ok":
            n = sum(v for k, v in tally.items() if k != "ok")
            path = out / f"correct-{n:04d}-{F.target_of(data)}-{verdict}.txt"
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
    print(f"correct bus: {runs} runs in {time.monotonic() - t0:.0f} s: {_figures(tally)} "
          f"(seed {seed}, targets {', '.join(targets)})")
    for target, counts in per_target.items():
        w = walls_by_target[target]
        wall = f"; wall median {statistics.median(w) * 1e3:.0f} ms, max {max(w) * 1e3:.0f} ms" if w else ""
        print(f"  {target}: {sum(counts.values())} runs: {_figures(counts)}{wall}")
    if walls:
        print(f"  wall per run: median {statistics.median(walls) * 1e3:.0f} ms, p99 "
              f"{sorted(walls)[int(0.99 * (len(walls) - 1))] * 1e3:.0f} ms, max {max(walls) * 1e3:.0f} ms "
              f"(the first run of a process includes loading the compiled kernels: "
              f"{walls[0] * 1e3:.0f} ms)")
    for kind, n in problems_seen.most_common():
        print(f"  {n} x {kind}")
    return runs - tally["ok"]


def _figures(counts) -> str:
    return (f"ok {counts['ok']}, failures {counts['failure']}, hangs {counts['hang']}, crashes "
            f"{counts['crash']}, tracebacks {counts['traceback']}, invalid {counts['invalid']}")


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


def _targets(text: str) -> tuple:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in names if t not in F.TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown target(s) {', '.join(unknown) or '(none)'}; "
                                         f"expected some of {', '.join(F.TARGETS)}")
    if "c_bus" in names and "c_bus" not in F.available_targets():
        raise argparse.ArgumentTypeError("c_bus needs a C compiler (cc or gcc) on PATH")
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1000, help="runs on the correct bus")
    ap.add_argument("--mutations", type=int, default=0, metavar="N", help="runs per mutation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--targets", type=_targets, default=None, metavar="T,T",
                    help=f"targets to draw among (default: every available one of {', '.join(F.TARGETS)})")
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
            bad += fuzz_correct(args.examples, args.seed, args.out, args.provoke_known, args.targets)
        if args.mutations:
            bad += fuzz_mutations(args.mutations, args.seed, args.out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
