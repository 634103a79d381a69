"""Values with units, as people write them in scenario files, and back.

A scenario says ``10ms``, ``2M/s`` or ``10M`` because a bare ``10`` could mean
seconds or milliseconds, and a benchmark that guesses wrong measures something
else without telling anyone. So a duration without a unit is refused, with a
message that says which unit is missing. Inside busbench every duration is an
``int`` of nanoseconds (exact, and what the jitted clocks count), every rate a
``float`` of events per second, every count an ``int``.

Two kinds of writers live here: ``canonical_*`` give the exact short text that
parses back to the same value (a scenario "as run" in a result file), and
``format_*`` give three significant digits for people (``12.3M/s``, ``1.20 ms``).

Suffixes are case-sensitive where it matters: ``m`` is a minute, ``M`` a
million.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = [
    "UnitError", "parse_duration", "parse_rate", "parse_count", "parse_percent",
    "parse_fraction", "canonical_duration", "canonical_rate", "format_duration",
    "format_rate", "format_count", "NS_PER_UNIT", "MULTIPLIERS",
]


class UnitError(ValueError):
    """A value that cannot be read in the unit it needs; the message says what was expected."""


NS_PER_UNIT = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
               "m": 60_000_000_000, "h": 3_600_000_000_000}
MULTIPLIERS = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}

_NUMBER = r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION = re.compile(rf"\s*({_NUMBER})\s*(ns|us|µs|ms|s|m|h)\s*")
_RATE = re.compile(rf"\s*({_NUMBER})\s*([kKMG]?)\s*/\s*s\s*")
_COUNT = re.compile(rf"\s*({_NUMBER})\s*([kKMG]?)\s*")
_PERCENT = re.compile(rf"\s*({_NUMBER})\s*%\s*")
_PLAIN_NUMBER = re.compile(rf"\s*{_NUMBER}\s*")

DURATION_EXAMPLE = "a duration like 500us, 10ms or 2s"
RATE_EXAMPLE = "a rate like 2M/s, 500k/s or 5000/s"
COUNT_EXAMPLE = "a count like 5000, 10_000_000, 5k or 10M"


def _decimal(number_text: str) -> Decimal:
    return Decimal(number_text.replace("_", ""))


def _is_number(value) -> bool:
    """A real int or float (YAML's ``true`` is a bool, and a bool is never a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_sign(amount, text, what: str, allow_zero: bool) -> None:
    if amount < 0:
        raise UnitError(f"a {what} cannot be negative, got {text!r}")
    if amount == 0 and not allow_zero:
        raise UnitError(f"expected a {what} greater than zero, got {text!r}")


def parse_duration(value, *, allow_zero: bool = False) -> int:
    """``"10ms"`` -> 10_000_000 (ns). Units: ns, us (or µs), ms, s, m (minute), h.

    A bare number is refused even when it is zero: the unit is the point.
    """
    if _is_number(value) or (isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value)):
        number = str(value).strip()
        raise UnitError(f"a duration needs a unit: write {number}ms or {number}s, "
                        f"not a bare {number} (units: ns, us, ms, s, m, h)")
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise UnitError(f"expected {DURATION_EXAMPLE}, got {value!r}")
    nanoseconds = _decimal(match[1]) * NS_PER_UNIT[match[2]]
    if nanoseconds != nanoseconds.to_integral_value():
        raise UnitError(f"{value!r} is not a whole number of nanoseconds")
    _require_sign(nanoseconds, value, "duration", allow_zero)
    return int(nanoseconds)


def parse_rate(value, *, allow_bare: bool = False, allow_zero: bool = False) -> float:
    """``"2M/s"`` -> 2e6 events per second. Suffixes k (or K), M, G.

    ``allow_bare`` accepts a plain number as events per second: right for a
    threshold (``throughput >= 5000000``), wrong for a load rate, where a
    forgotten ``/s`` is more likely a slip than a choice.
    """
    if _is_number(value) and allow_bare:
        per_second = Decimal(repr(float(value)))
    elif isinstance(value, str) and (match := _RATE.fullmatch(value)):
        per_second = _decimal(match[1]) * MULTIPLIERS[match[2]]
    elif allow_bare and isinstance(value, str) and (match := _COUNT.fullmatch(value)):
        per_second = _decimal(match[1]) * MULTIPLIERS[match[2]]
    elif _is_number(value):
        raise UnitError(f"a rate needs a unit: write {value}/s (or 2M/s, 500k/s), not a bare {value}")
    else:
        raise UnitError(f"expected {RATE_EXAMPLE}, got {value!r}")
    _require_sign(per_second, value, "rate", allow_zero)
    return float(per_second)


def parse_count(value, *, allow_zero: bool = True) -> int:
    """``"10M"`` -> 10_000_000; ``10_000_000``, ``"5k"``, ``3`` as they are. Whole numbers only."""
    if isinstance(value, bool):
        raise UnitError(f"expected {COUNT_EXAMPLE}, got {value!r}")
    if isinstance(value, int):
        count = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        count = Decimal(repr(value))
    elif isinstance(value, str) and (match := _COUNT.fullmatch(value)):
        count = _decimal(match[1]) * MULTIPLIERS[match[2]]
    else:
        raise UnitError(f"expected {COUNT_EXAMPLE}, got {value!r}")
    if count != count.to_integral_value():
        raise UnitError(f"expected a whole number, got {value!r}")
    _require_sign(count, value, "count", allow_zero)
    return int(count)


def parse_percent(value) -> float:
    """``"10%"`` -> 0.10. Only text ending in ``%``; see ``parse_fraction`` for either form."""
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise UnitError(f"expected a percentage like 10%, got {value!r}")
    fraction = _decimal(match[1]) / 100
    _require_sign(fraction, value, "percentage", allow_zero=True)
    return float(fraction)


def parse_fraction(value) -> float:
    """A share as a plain number (``0.1``) or a percentage (``"10%"``); range checks are the caller's."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str) and "%" in value:
        return parse_percent(value)
    raise UnitError(f"expected a number like 0.1 or a percentage like 10%, got {value!r}")


# --- exact text that parses back to the same value (scenario as run) ----------

def canonical_duration(nanoseconds: int) -> str:
    """The shortest exact text for a duration: 2_000_000_000 -> ``"2s"``, 1_500_000 -> ``"1500us"``."""
    if nanoseconds == 0:
        return "0s"
    for unit in ("h", "m", "s", "ms", "us"):
        if nanoseconds % NS_PER_UNIT[unit] == 0:
            return f"{nanoseconds // NS_PER_UNIT[unit]}{unit}"
    return f"{nanoseconds}ns"


def canonical_rate(per_second: float) -> str:
    """The exact text for a rate: 2e6 -> ``"2M/s"``, 1.5e6 -> ``"1500k/s"``, 0.5 -> ``"0.5/s"``."""
    if float(per_second).is_integer():
        whole = int(per_second)
        for suffix in ("G", "M", "k"):
            if whole % MULTIPLIERS[suffix] == 0:
                return f"{whole // MULTIPLIERS[suffix]}{suffix}/s"
        return f"{whole}/s"
    return f"{per_second!r}/s"


# --- three significant digits for people ------------------------------------

def _three_digits(value: float, scales: tuple[tuple[float, str], ...]) -> tuple[str, str]:
    """``value`` in the largest scale it reaches, as three significant digits and that scale's name.

    A value that rounds up to 1000 of one scale moves to the next (999.96 us -> "1.00 ms").
    """
    if not math.isfinite(value):
        return str(value), scales[0][1]
    magnitude = abs(value)
    index = 0
    while index + 1 < len(scales) and magnitude >= scales[index + 1][0]:
        index += 1
    while True:
        scaled = magnitude / scales[index][0]
        if index == 0 and float(value).is_integer():
            text = f"{scaled:.0f}"
        elif scaled >= 99.95:
            text = f"{scaled:.0f}"
        elif scaled >= 9.995:
            text = f"{scaled:.1f}"
        else:
            text = f"{scaled:.2f}"
        if float(text) >= 1000 and index + 1 < len(scales):
            index += 1
            continue
        sign = "-" if value < 0 and float(text) != 0 else ""
        return sign + text, scales[index][1]


_TIME_SCALES = ((1, "ns"), (1e3, "µs"), (1e6, "ms"), (1e9, "s"))
_SI_SCALES = ((1, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"))


def format_duration(nanoseconds: float) -> str:
    """1_200_000 -> ``"1.20 ms"``; 512 -> ``"512 ns"``."""
    text, unit = _three_digits(nanoseconds, _TIME_SCALES)
    return f"{text} {unit}"


def format_rate(per_second: float) -> str:
    """12_340_000 -> ``"12.3M/s"``; 512 -> ``"512/s"``."""
    text, suffix = _three_digits(per_second, _SI_SCALES)
    return f"{text}{suffix}/s"


def format_count(count: float) -> str:
    """10_000_000 -> ``"10.0M"``; below a thousand the exact number (``"999"``)."""
    text, suffix = _three_digits(count, _SI_SCALES)
    return f"{text}{suffix}"


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def parse_memory(text: str) -> int:
    """``2G``, ``256M``, ``512MiB``, ``1.5GB`` -> bytes (binary units: 2G is 2 GiB)."""
    s = str(text).strip().upper().replace(" ", "")
    for suffix in ("IB", "B"):
        if s.endswith(suffix) and len(s) > len(suffix) and s[-len(suffix) - 1] in "KMGT":
            s = s[: -len(suffix)]
            break
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if s and s[-1] in scale:
            value = float(s[:-1]) * scale[s[-1]]
        else:
            value = float(s)
    except ValueError:
        raise UnitError(f"expected a size like 2G or 256M, got {text!r}") from None
    if value < 16 << 20:
        raise UnitError(f"expected at least 16M, got {text!r}")
    return int(value)
