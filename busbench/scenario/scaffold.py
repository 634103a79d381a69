"""``busbench init``: a commented starter scenario that validates and runs.

The starters live in the package (a non-editable install has no
``scenarios/`` folder), and each is checked by the tests to load and run.
``--from`` also takes a path to any scenario file, copied with the new name.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

SCHEMA_FILE = "scenario.schema.json"
SCHEMA_LINE = "# yaml-language-server: $schema={}"

QUICKSTART = """\
{schema_line}
# A busbench scenario. Check it with `busbench validate {file}`, run it with
# `busbench run {file}`, look at the run with `busbench report results/*.json`.
# Every key below is optional unless marked required; the values shown are
# the defaults or the quick start's. `busbench schema` prints the full format.
name: {name}                        # required: letters, digits, _ . - (used in result file names)
description: >                      # required: what the scenario shows
  Two closed-loop producers drive a 4-shard bus through the verify adapter;
  a flush must be an exact delivery barrier, a clean shutdown must leave
  shutdown_was_lossy false, and the counters must conserve events.
seed: 7
bus:
  shards: 4                         # 1..1024
  capacity: 4096                    # events per shard's ring, a power of two
  backpressure: drop_newest         # drop_newest | fail_producer | drop_oldest | block
  batch: {{max_events: 512, max_delay: 1ms}}
  counters: padded                  # padded | packed | striped | {{stride: 64}}
  workers: 1                        # batch worker threads, at most one per shard
  adapter: {{kind: verify}}           # noop | verify | slow | flaky | stall
load:
  producers: 2
  rate: max                         # closed loop; or 2M/s in total (open loop)
  batch: 64                         # events per ingest call
  keys: uniform                     # round_robin | {{hot: {{shard: 0, share: 0.9}}}} | {{zipf: 1.1}}
steps:                              # required: what happens, in order
  - run: 1s                         # a duration (2s) or an event count (10M)
  - flush: {{timeout: 5s}}
  - check: [conservation, ground_truth, flush_barrier]
  - run: 1s
  - shutdown: {{grace: 5s}}           # last, if present (else an implicit one)
checks:                             # evaluated at the end; any failing one exits 1
  - conservation
  - ground_truth
  - flush_barrier
  - lossy_shutdown: false
  - threshold: "throughput >= 1M/s" # metric op value; see `busbench schema` for metrics
"""

STARTERS = {"quickstart": QUICKSTART}
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


class ScaffoldError(ValueError):
    """A user's mistake (exit 2)."""


def target_path(name: str, directory=".") -> tuple[Path, str]:
    """``NAME`` or ``NAME.yaml`` (or a path ending so) -> (file, scenario name)."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = path.with_name(path.name + ".yaml")
    path = Path(directory) / path
    scenario_name = path.stem
    if not NAME_RE.fullmatch(scenario_name):
        raise ScaffoldError(f"{name!r}: a scenario name takes letters, digits, '_', '.' or '-' only "
                            f"(it is used in result file names)")
    return path, scenario_name


def starter_text(name: str, origin: str, file: str, schema_ref: str) -> str:
    """The starter's text: a built-in starter, or a copy of the scenario file ``origin``."""
    schema_line = SCHEMA_LINE.format(schema_ref)
    if origin in STARTERS:
        return STARTERS[origin].format(name=name, file=file, schema_line=schema_line)
    source = Path(origin)
    if not source.is_file():
        raise ScaffoldError(f"--from {origin}: neither a built-in starter "
                            f"({', '.join(STARTERS)}) nor a scenario file")
    text = source.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("# yaml-language-server:")]
    renamed, count = re.subn(r"^name:\s*\S+", f"name: {name}", "\n".join(lines), count=1, flags=re.MULTILINE)
    if not count:
        raise ScaffoldError(f"--from {origin}: no top-level `name:` line to rename")
    return schema_line + "\n" + renamed + "\n"


def write_starter(name: str, origin: str = "quickstart", directory=".", force: bool = False) -> list[Path]:
    """Write the scenario (and, beside it, the JSON Schema editors read); the paths written."""
    from .jsonschema import scenario_json_schema
    path, scenario_name = target_path(name, directory)
    if path.exists() and not force:
        raise ScaffoldError(f"{path} exists; choose another name or pass --force to overwrite it")
    text = starter_text(scenario_name, origin, str(path), SCHEMA_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    schema = path.parent / SCHEMA_FILE
    schema_text = json.dumps(scenario_json_schema(), indent=1, ensure_ascii=False) + "\n"
    if not schema.exists() or schema.read_text(encoding="utf-8") != schema_text:
        schema.write_text(schema_text, encoding="utf-8")
        written.append(schema)
    path.write_text(text, encoding="utf-8")
    written.insert(0, path)
    return written
