"""Reading run records back (``busbench check``, ``busbench report``): one loader, one error."""
from __future__ import annotations

import json


class RecordError(ValueError):
    """A file that is not a readable busbench run record (exit 2 at the command line)."""


def read_record(path) -> dict:
    """The record at ``path`` as a dict; RecordError naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise RecordError(f"{path}: not JSON ({e})") from None
    if not isinstance(record, dict) or "scenario_name" not in record or "scenario" not in record:
        raise RecordError(f"{path}: not a busbench run record (records are the "
                          "results/<scenario>-<timestamp>.json files `run` writes)")
    return record
