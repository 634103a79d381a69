"""Throughput of the reference bus, as a fraction of the bare ring it is built on.

events/s through ingest -> ring -> worker -> ``noop`` adapter (latency off),
closed loop: producers ingest batches of 64 uniform keys into one shard (like
the calibration ring; ``--shards N`` adds the cost of grouping events by shard)
of capacity 4096 (drop_newest), one batch worker, max_events 512. Rows: 1 and 2
producers x counters ``padded``, ``packed`` and ``striped``, plus the bare
calibration kernel (``calibration.py``: the same ring, one shard, no counters,
stripes, batching or adapter) with 1 producer, the reference every ratio is
taken against, and with 2 producers for context.

Everything is compiled (or loaded from Numba's cache) and run once before the
timing. Variants are interleaved across repeats (A, B, C, ..., A, B, C, ...)
so that the machine's drift hits them alike; each figure is a median over
repeats, with min and max. Ratios come two ways: of medians, with a bootstrap
interval (busbench.verdicts.stats), and paired, the median over rounds of the two
variants' ratio in the same round. On a VM whose vCPUs move (BUS.md measured
two placements; the bare ring here ran at ~100, ~160 and ~700 M events/s on
different occasions) the paired figure is the one to trust.

Throughput is ``events_dispatched / seconds of load`` (the producers'
deadline), counted after ``flush()``, so the few events still in the rings at
the deadline (at most 4 x 4096) are included.

Run: python benchmarks/bench_bus.py [--seconds 1.0] [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numba
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the busbench of this checkout, not whichever one is installed
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from calibration import run_calibration  # noqa: E402  (this directory, not a package)

from busbench.verdicts import precision, stats  # noqa: E402
from busbench.bus.config import BusConfig  # noqa: E402
from busbench.bus.core import ReferenceBus  # noqa: E402
from busbench.bus.layout import CounterLayout  # noqa: E402
from busbench.load.generator import LoadGenerator, LoadSpec  # noqa: E402
from busbench.targets.builtin import BuiltinTarget  # noqa: E402

SCHEMA_VERSION = 1
SHARDS = 1     # like the calibration ring; --shards N adds the cost of sharding
CAPACITY = 4096
MAX_EVENTS = 512
WORKERS = 1
BATCH = 64
WARMUP_SECONDS = 0.05
GOAL = 0.30                  # padded, 1 producer, as a fraction of the calibration
CALIBRATION = "calibration 1P"


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str                # "bus" or "calibration"
    producers: int
    counters: Optional[str]  # the layout, for bus rows
    bonus: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "producers": self.producers,
                "counters": self.counters, "bonus": self.bonus}


VARIANTS = (
    Variant(CALIBRATION, "calibration", 1, None),
    Variant("padded 1P", "bus", 1, "padded"),
    Variant("packed 1P", "bus", 1, "packed"),
    Variant("striped 1P", "bus", 1, "striped", bonus=True),
    Variant("calibration 2P", "calibration", 2, None, bonus=True),
    Variant("padded 2P", "bus", 2, "padded"),
    Variant("packed 2P", "bus", 2, "packed"),
    Variant("striped 2P", "bus", 2, "striped", bonus=True),
)
PAIRS = (("padded 1P", "packed 1P"), ("padded 2P", "packed 2P"))


# ------------------------------------------------------------------ one measurement
def run_bus(counters: str, producers: int, seconds: float) -> dict:
    """One closed-loop run; every thread started here is stopped before return."""
    config = BusConfig(shards=SHARDS, capacity=CAPACITY, max_events=MAX_EVENTS,
                       workers=WORKERS, counters=CounterLayout.parse(counters),
                       adapter="noop", latency=False, producers=producers,
                       backpressure="drop_newest")
    bus = ReferenceBus(config)
    target = BuiltinTarget.around(bus)        # the producer entry the runner uses
    gen = LoadGenerator(LoadSpec(producers=producers, batch=BATCH, keys="uniform"),
                        config.shards, target.produce, target.producer_stalling)
    duration_ns = int(seconds * 1e9)
    t0 = time.monotonic_ns()
    try:
        bus.start()
        gen.start(duration_ns=duration_ns)
        gen.wait()
        loaded = time.monotonic_ns()
        flush = bus.flush()
    finally:
        try:
            gen.stop()
        finally:
            report = bus.shutdown()
    s = bus.stats()
    return {
        "seconds": duration_ns / 1e9,
        "wall_seconds": (loaded - t0) / 1e9,
        "events_per_s": s.events_dispatched / (duration_ns / 1e9),
        "events_ingested": s.events_ingested,
        "events_dispatched": s.events_dispatched,
        "events_dropped": s.events_dropped,
        "batches_dispatched": s.batches_dispatched,
        "dropped_ratio": s.events_dropped / s.events_ingested if s.events_ingested else math.nan,
        "flush_reached": flush.reached,
        "conserved": s.events_dispatched + s.events_dropped == s.events_ingested,
        "shutdown_lossy": report.lossy,
    }


def run_variant(variant: Variant, seconds: float) -> dict:
    if variant.kind == "calibration":
        sample = run_calibration(seconds, variant.producers).to_dict()
        sample["dropped_ratio"] = None       # the bare producer waits when the ring is full
        sample["conserved"] = sample["checksum_ok"]
        return sample
    return run_bus(variant.counters, variant.producers, seconds)


# ------------------------------------------------------------------ the whole benchmark
def environment() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "cores_usable": usable,
            "cpu_governor": stats.read_cpu_governor(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "numba": numba.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                       time.gmtime())}


def _ratio(denominator: list, numerator: list) -> dict:
    """Ratio of medians with a bootstrap interval and verdict, plus the paired view."""
    ratio, low, high = stats.bootstrap_ratio_ci(denominator, numerator)
    return {"ratio": ratio, "ci_low": stats.json_number(low), "ci_high": stats.json_number(high),
            "verdict": stats.verdict(low, high), "paired": _paired(denominator, numerator)}


def _reference() -> dict:
    return {"ratio": 1.0, "ci_low": None, "ci_high": None, "verdict": "reference",
            "paired": {"median": 1.0, "min": 1.0, "max": 1.0, "per_round": None}}


def _paired(denominator: list, numerator: list) -> dict:
    """Per-round ratios (both measured in the same round, seconds apart): robust
    to the machine changing between rounds, which a ratio of medians is not."""
    per_round = [n / d for n, d in zip(numerator, denominator)]
    estimate = precision.paired_ratio(denominator, numerator)
    return {"median": float(np.median(per_round)), "min": min(per_round),
            "max": max(per_round), "per_round": per_round,
            "estimate": estimate.to_dict(), "resolution": stats.json_number(estimate.resolution),
            "verdict": precision.verdict(estimate), "description": precision.describe(estimate)}


def run(seconds: float = 1.0, repeat: int = 5, variants=VARIANTS,
        progress: Optional[Callable[[str], None]] = None) -> dict:
    """Warm up every variant, then ``repeat`` interleaved rounds; returns the
    result as plain data (what ``--json`` writes)."""
    if seconds <= 0 or repeat < 1:
        raise ValueError("seconds must be > 0 and repeat >= 1")
    names = [v.name for v in variants]
    if CALIBRATION not in names:
        raise ValueError(f"the variants must include {CALIBRATION!r}, the reference")
    for variant in variants:        # compile or load from cache, and touch every page once
        run_variant(variant, WARMUP_SECONDS)
    samples = {v.name: [] for v in variants}
    for r in range(repeat):
        for variant in variants:
            sample = run_variant(variant, seconds)
            sample["repeat"] = r
            samples[variant.name].append(sample)
            if progress:
                progress(f"round {r + 1}/{repeat}  {variant.name:<15} "
                         f"{sample['events_per_s'] / 1e6:8.1f} M events/s")
    calibration = [s["events_per_s"] for s in samples[CALIBRATION]]
    rows = []
    for variant in variants:
        rates = [s["events_per_s"] for s in samples[variant.name]]
        summary = stats.summarize(rates)
        rows.append({
            "variant": variant.to_dict(),
            "summary": summary.to_dict(),
            "dropped_ratio_median": (None if variant.kind == "calibration" else float(
                np.median([s["dropped_ratio"] for s in samples[variant.name]]))),
            "vs_calibration": (_reference() if variant.name == CALIBRATION
                               else _ratio(calibration, rates) if min(rates + calibration) > 0
                               else None),
            "all_conserved": all(s["conserved"] for s in samples[variant.name]),
            "samples": samples[variant.name],
        })
    by_name = {row["variant"]["name"]: row for row in rows}
    pairs = []
    for a, b in PAIRS:
        if a in by_name and b in by_name:
            ra = [s["events_per_s"] for s in samples[a]]
            rb = [s["events_per_s"] for s in samples[b]]
            if min(ra + rb) > 0:
                pairs.append({"numerator": a, "denominator": b, **_ratio(rb, ra)})
    goal = None
    if "padded 1P" in by_name and by_name["padded 1P"]["vs_calibration"]:
        vs = by_name["padded 1P"]["vs_calibration"]
        share = vs["ratio"]
        goal = {"variant": "padded 1P", "share_of_calibration": share,
                "share_paired_median": vs["paired"]["median"],
                "share_paired_min": vs["paired"]["min"], "share_paired_max": vs["paired"]["max"],
                "goal": GOAL, "met": share >= GOAL}
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "bus_throughput",
        "unit": "events/s (events_dispatched / seconds of load)",
        "settings": {"seconds": seconds, "repeat": repeat, "warmup_seconds": WARMUP_SECONDS,
                     "shards": SHARDS, "capacity": CAPACITY, "max_events": MAX_EVENTS,
                     "workers": WORKERS, "batch": BATCH, "keys": "uniform",
                     "load": "closed loop", "backpressure": "drop_newest", "adapter": "noop",
                     "latency": False, "order": names},
        "environment": environment(),
        "rows": rows,
        "padded_vs_packed": pairs,
        "goal": goal,
    }


# ------------------------------------------------------------------ output
def _fmt_ratio(entry: Optional[dict], percent: bool = False) -> str:
    if not entry:
        return "-"
    if entry["verdict"] == "reference":
        return "100% (reference)"
    if percent:
        text = f"{entry['ratio']:.0%}"
        if entry["ci_low"] is not None:
            text += f" [{entry['ci_low'] * 100:.0f}-{entry['ci_high']:.0%}]"
        return text
    text = f"{entry['ratio']:.2f}x"
    if entry["ci_low"] is not None:
        text += f" [{entry['ci_low']:.2f}-{entry['ci_high']:.2f}]"
    return text


def _fmt_paired(entry: Optional[dict], percent: bool = False) -> str:
    if not entry or entry["verdict"] == "reference":
        return "-"
    p = entry["paired"]
    if percent:
        return f"{p['median']:.0%} ({p['min'] * 100:.0f}-{p['max']:.0%})"
    return f"{p['median']:.2f}x ({p['min']:.2f}-{p['max']:.2f})"


def render_table(result: dict) -> Table:
    s = result["settings"]
    table = Table(title=f"Bus throughput: {s['shards']} shards x {s['capacity']}, batch {s['batch']}, "
                        f"max_events {s['max_events']}, {s['workers']} worker, noop adapter, "
                        f"{s['seconds']:g} s x {s['repeat']} interleaved")
    table.add_column("variant")
    table.add_column("threads", justify="right")
    table.add_column("median ev/s", justify="right")
    table.add_column("min - max", justify="right")
    table.add_column("CV", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("vs calib 1P [95% CI]", justify="right")
    table.add_column("paired: median (min-max)", justify="right")
    table.add_column("ok", justify="center")
    for row in result["rows"]:
        v, summary = row["variant"], stats.Summary(**{k: (math.nan if x is None else x)
                                                     for k, x in row["summary"].items()})
        name = v["name"] + (" *" if v["bonus"] else "")
        dropped = ("-" if row["dropped_ratio_median"] is None
                   else f"{row['dropped_ratio_median']:.1%}")
        table.add_row(name, str(v["producers"] + 1), stats.format_si(summary.median),
                      f"{stats.format_si(summary.min)} - {stats.format_si(summary.max)}",
                      stats.format_cv(summary), dropped,
                      _fmt_ratio(row["vs_calibration"], percent=True),
                      _fmt_paired(row["vs_calibration"], percent=True),
                      "yes" if row["all_conserved"] else "NO")
    return table


def render_pairs(result: dict) -> Table:
    table = Table(title="padded vs packed counters")
    table.add_column("ratio")
    table.add_column("ratio of medians [95% CI]", justify="right")
    table.add_column("verdict")
    table.add_column("paired: median (min-max)", justify="right")
    table.add_column("paired verdict (resolution)")
    for pair in result["padded_vs_packed"]:
        paired = pair["paired"]
        resolution = "-" if paired["resolution"] is None else f"±{paired['resolution']:.1%}"
        table.add_row(f"{pair['numerator']} / {pair['denominator']}", _fmt_ratio(pair),
                      pair["verdict"], _fmt_paired(pair), f"{paired['verdict']} ({resolution})")
    return table


def goal_line(result: dict) -> Optional[str]:
    goal = result["goal"]
    if goal is None:
        return None
    return (f"padded, 1 producer: {goal['share_of_calibration']:.0%} of calibration "
            f"(goal >= {goal['goal']:.0%}): {'met' if goal['met'] else 'NOT met'}; "
            f"per round {goal['share_paired_median']:.0%} "
            f"({goal['share_paired_min']:.0%} to {goal['share_paired_max']:.0%})")


def notes(result: dict) -> list[str]:
    cores = result["environment"]["cores_usable"] or result["environment"]["cpu_count"]
    out = ["* = bonus row.",
           f"2 producers + 1 worker = 3 busy threads on {cores} cores (likewise calibration 2P: "
           "2 producers + 1 consumer); 1-producer rows run 2 threads.",
           "ok = conservation held (dispatched + dropped == ingested) and flush/checksum fine "
           "in every sample; calibration never drops ('-'): its producer waits when the ring is full."]
    calibration = next(r for r in result["rows"] if r["variant"]["name"] == CALIBRATION)
    low, high = calibration["summary"]["min"], calibration["summary"]["max"]
    if low and high / low > 1.5:
        out.append(f"the calibration ring itself varied {high / low:.1f}x across rounds "
                   f"({stats.format_si(low)} to {stats.format_si(high)} events/s): the VM's vCPUs "
                   "moved (BUS.md: two placements, cache-line round trip ~150 vs ~500 ns); "
                   "trust the paired (same-round) ratios over the ratio of medians.")
    out.append("vs calib 1P = ratio of medians with a bootstrap 95% interval; paired = median "
               "(min-max) over rounds of variant / calibration measured in the same round.")
    out.append("paired verdict: median of per-round ratios with a distribution-free 95% interval "
               "(6 rounds or more; --repeat 5 gives none); resolution = its half-width on the log "
               "scale, the smallest change this run could see.")
    for pair in result["padded_vs_packed"]:
        out.append(f"{pair['numerator']} / {pair['denominator']}: {pair['paired']['description']}")
    summaries = {}
    for row in result["rows"]:
        summary = stats.Summary(**{k: (math.nan if x is None else x)
                                   for k, x in row["summary"].items()})
        summaries[row["variant"]["name"]] = summary
    out += stats.noise_warnings(summaries, None, None)
    governor = stats.cpu_governor_warning()
    if governor:
        out.append(governor)
    return out


def print_result(result: dict, console: Console) -> None:
    env = result["environment"]
    console.print(f"{env['cpu_model']}, {env['cores_usable'] or env['cpu_count']} cores, "
                  f"Python {env['python']}, Numba {env['numba']}")
    console.print(render_table(result))
    if result["padded_vs_packed"]:
        console.print(render_pairs(result))
    for note in notes(result):
        console.print(f"note: {note}", highlight=False)
    line = goal_line(result)
    if line:
        console.print(line, style="bold", highlight=False)


def _check_writable(path: str) -> None:
    """Fail in a second, not after the run (hyperfine's habit)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SystemExit(f"--json: directory {directory} does not exist")
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise SystemExit(f"--json: cannot write {path}: {exc}") from exc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of load per sample")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--json", metavar="FILE", help="write every sample and the environment")
    parser.add_argument("--quiet", action="store_true", help="no per-sample progress lines")
    parser.add_argument("--shards", type=int, default=SHARDS,
                        help="shards of the bus (the calibration ring is one shard; "
                             "--shards 1 compares like with like)")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be >= 1")
    globals()["SHARDS"] = args.shards
    if args.seconds <= 0 or args.repeat < 1:
        parser.error("--seconds must be > 0 and --repeat >= 1")
    if args.json:
        _check_writable(args.json)
    console = Console()
    if not console.is_terminal and console.width < 120:
        console = Console(width=120)     # piped or captured: keep the table on one line a row
    progress = None if args.quiet else (lambda line: console.print(line, style="dim",
                                                                    highlight=False))
    result = run(args.seconds, args.repeat, progress=progress)
    print_result(result, console)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(_jsonable(result), handle, indent=2, allow_nan=False)
            handle.write("\n")
    return 0


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return stats.json_number(float(value))
    return value


if __name__ == "__main__":
    sys.exit(main())
