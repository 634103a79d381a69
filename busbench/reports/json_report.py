"""The run record: results/<scenario>-<timestamp>.json."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):     # numpy scalars
        return value.item()
    return value


def render(result) -> str:
    return json.dumps(_clean(result.to_dict()), indent=1, sort_keys=False) + "\n"


def record_path(out_dir, result) -> Path:
    stamp = re.sub(r"[^0-9T]", "", result.started_at.split("+")[0])
    return Path(out_dir) / f"{result.scenario_name}-{stamp}.json"


def new_record_path(out_dir, result) -> Path:
    """record_path, with -2, -3... when runs of one scenario start in the same
    second: a record never replaces another."""
    path = record_path(out_dir, result)
    n = 2
    while path.exists():
        path = path.with_name(f"{record_path(out_dir, result).stem}-{n}.json")
        n += 1
    return path
