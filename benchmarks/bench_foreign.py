"""Throughput of buses busbench did not write, through the c-abi and python targets.

events/s the bus accepted (landed, as its producers tallied them) per second of
closed-loop load, for: the example C bus (examples/c_bus, built here with cc)
and net-mesh 0.45.1 declared as a c-abi target (examples/net_mesh_cabi, when
``import net`` works; no adapter), each with batch calls (``ingest_batch``) and
single calls (``ingest``), 1 and 2 producers (Numba kernels, GIL-free); and the
example Python bus (examples/python_bus) through the python target, whose
producers are Python threads (figures include the GIL). Batches of 64 events.

A fresh bus per sample; variants interleaved across repeats; each figure a
median with min and max. Numbers from a loaded 2-core VM are for reading, not
for gating.

Run: python benchmarks/bench_foreign.py [--seconds 1.0] [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from busbench.load import kernels as LK
from busbench.scenario.foreign import load_target_text
from busbench.targets.cabi import CAbiTarget
from busbench.targets.python_target import PythonTarget

ROOT = Path(__file__).resolve().parents[1]


def c_bus_spec(folder: Path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    library = folder / "libcbus.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-pthread", "-o", str(library),
                    str(ROOT / "examples/c_bus/cbus.c")], check=True, timeout=120)
    text = (ROOT / "examples/c_bus/target.yaml").read_text().replace("./libcbus.so", str(library))
    return load_target_text("c-abi:\n" + "\n".join("  " + line for line in text.splitlines()))


def net_mesh_spec():
    try:
        import net  # noqa: F401
    except ImportError:
        return None
    return load_target_text(f"c-abi: {ROOT / 'examples/net_mesh_cabi/target.yaml'}")


def python_bus_spec():
    return load_target_text("python: {factory: 'pybus:make_bus', path: '%s', "
                            "config: {shards: 4, capacity: 4096}}" % (ROOT / "examples/python_bus"))


def sample(make, producers: int, seconds: float) -> float:
    """One fresh bus, ``producers`` threads for ``seconds``: events landed per second."""
    target = make(producers)
    try:
        target.prepare()
        target.start()
        states = [np.zeros(LK.S_LEN, np.int64) for _ in range(producers)]
        prm = np.zeros(LK.P_LEN, np.int64)
        prm[LK.P_BATCH] = 64
        prm[LK.P_MAX_EVENTS] = -1
        now = time.monotonic_ns()
        prm[LK.P_T0_NS] = now
        prm[LK.P_DEADLINE_NS] = now + int(seconds * 1e9)
        threads = [threading.Thread(target=target.produce, args=(p, prm.copy(), states[p]))
                   for p in range(producers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        return sum(int(s[LK.S_LANDED]) for s in states) / seconds
    finally:
        target.close()


def variants(folder: Path) -> dict:
    out = {}
    for bus, spec in (("cbus", c_bus_spec(folder)), ("net-mesh", net_mesh_spec())):
        if spec is None:
            continue
        for calls, producers in (("batch", 1), ("batch", 2), ("single", 1)):
            out[f"{bus} c-abi {calls} {producers}P"] = (
                lambda n, spec=spec, calls=calls: CAbiTarget(spec, producers=n, calls=calls),
                producers)
    spec = python_bus_spec()
    for producers in (1, 2):
        out[f"pybus python {producers}P (GIL)"] = (
            lambda n, spec=spec: PythonTarget(spec, producers=n, shards=4), producers)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="busbench-foreign-") as tmp:
        rows = variants(Path(tmp))
        for make, producers in rows.values():        # compile / load caches, warm up
            sample(make, producers, 0.05)
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.repeat):
            for name, (make, producers) in rows.items():
                samples[name].append(sample(make, producers, args.seconds))
    result = {"seconds": args.seconds, "repeat": args.repeat, "batch": 64, "rows": [
        {"variant": name, "events_per_s": values,
         "median": statistics.median(values), "min": min(values), "max": max(values)}
        for name, values in samples.items()]}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.quiet:
        table = Table(title=f"events/s accepted, closed loop, batch 64, {args.repeat} x "
                            f"{args.seconds:g} s (loaded machine)")
        for column in ("variant", "median", "min", "max"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for row in result["rows"]:
            table.add_row(row["variant"], *(f"{row[k] / 1e6:.2f} M" for k in ("median", "min", "max")))
        Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
