"""Reading a record's dict back into a frozen dataclass, strictly."""
from __future__ import annotations

from dataclasses import fields


def field_values(cls, d, what: str, error: type[Exception] = ValueError) -> dict:
    """``d``'s values for ``cls``'s fields: every field present, no other key, else
    ``error`` naming what is missing and what is unknown."""
    if not isinstance(d, dict):
        raise error(f"{what}: expected an object, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in d]
    unknown = sorted(k for k in d if k not in names)
    if missing or unknown:
        said = ([f"missing {', '.join(missing)}"] if missing else []) \
            + ([f"unknown {', '.join(unknown)}"] if unknown else [])
        raise error(f"{what}: {'; '.join(said)}")
    return {n: d[n] for n in names}
