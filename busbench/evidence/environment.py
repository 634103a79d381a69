"""What decides whether two runs can be compared: a record's ``environment``, and the guard.

pyperf's habit: a result carries the machine that produced it, and
comparison checks those before comparing. Two records are compared (by
``run --baseline`` or ``compare`` over records) only when the fields that
change the figures by themselves agree:

* REFUSE (``DECIDING``): ``cpu_model``, ``cores_usable`` (the CPUs this
  process may run on), ``machine`` (architecture), ``scenario_hash`` (the
  scenario as run, overrides and seed included). A different CPU or core
  count changes throughput by itself (BUS.md: 2x between placements on one
  VM type already); a different scenario is a different benchmark.
  ``--allow-incomparable`` turns the refusal into a loud warning.
* WARN (``NOTED``): python, numba, numpy and busbench versions, OS, host name,
  CPU governor; a nominal CPU frequency more than 10% apart; a load average
  at start above half a core per core on either side (the machine was busy).
  Fields a record does not have (older records) are warned about, never
  treated as equal.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass

#: fields that must agree, or the comparison is refused
DECIDING = ("cpu_model", "cores_usable", "machine", "scenario_hash")
#: fields whose difference is warned about
NOTED = ("python", "numba", "numpy", "busbench", "os", "hostname", "cpu_governor")
#: nominal CPU frequencies further apart than this are warned about
FREQUENCY_TOLERANCE = 0.10
#: load average (1 min) per core above which the machine is called busy
BUSY_LOAD_PER_CORE = 0.5

_GOVERNOR_GLOB = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
_FREQ_GLOB = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_mhz() -> float | None:
    """Mean current frequency: cpufreq where readable, else /proc/cpuinfo's "cpu MHz"."""
    values = [int(v) / 1000.0 for v in (_read(p) for p in sorted(glob.glob(_FREQ_GLOB))) if v]
    if not values:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                values = [float(line.split(":", 1)[1]) for line in handle
                          if line.startswith("cpu MHz")]
        except (OSError, ValueError):
            values = []
    return round(sum(values) / len(values), 1) if values else None


def cpu_governor() -> str | None:
    governors = {v for v in (_read(p) for p in sorted(glob.glob(_GOVERNOR_GLOB))) if v}
    if not governors:
        return None
    return governors.pop() if len(governors) == 1 else "mixed: " + ", ".join(sorted(governors))


def scenario_hash(scenario: dict | None) -> str | None:
    """A short hash of the scenario as run (canonical JSON): equal hashes, same benchmark."""
    if scenario is None:
        return None
    text = json.dumps(scenario, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def describe(scenario: dict | None = None) -> dict:
    """The environment of a run, as its record carries it."""
    import numba
    import numpy

    from .. import __version__
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "cores_usable": usable,
            "machine": platform.machine(), "os": platform.platform(),
            "hostname": platform.node(), "python": sys.version.split()[0],
            "numba": numba.__version__, "numpy": numpy.__version__, "busbench": __version__,
            "cpu_governor": cpu_governor(), "cpu_mhz": cpu_mhz(),
            "load_average_at_start": load, "scenario_hash": scenario_hash(scenario)}


@dataclass(frozen=True)
class Comparability:
    refusals: tuple[str, ...]     # DECIDING fields that differ: do not compare
    warnings: tuple[str, ...]     # what differs but does not by itself decide

    @property
    def comparable(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict:
        return {"comparable": self.comparable, "refusals": list(self.refusals),
                "warnings": list(self.warnings), "deciding_fields": list(DECIDING)}


def _busy(env: dict) -> float | None:
    load, cores = env.get("load_average_at_start"), env.get("cores_usable") or env.get("cores")
    if not load or not cores:
        return None
    return load[0] / cores


def check(reference: dict, other: dict, reference_name: str = "baseline",
          other_name: str = "candidate") -> Comparability:
    """Which fields of two environments differ, split into refusals and warnings."""
    refusals, warnings = [], []
    for key in DECIDING:
        a, b = reference.get(key), other.get(key)
        if a is None or b is None:
            missing = reference_name if a is None else other_name
            warnings.append(f"{key}: not recorded in the {missing} record, cannot check it")
        elif a != b:
            refusals.append(f"{key} differs: {reference_name} {a!r}, {other_name} {b!r}")
    for key in NOTED:
        a, b = reference.get(key), other.get(key)
        if a != b and not (a is None and b is None):
            warnings.append(f"{key} differs: {reference_name} {a!r}, {other_name} {b!r}")
    fa, fb = reference.get("cpu_mhz"), other.get("cpu_mhz")
    if fa and fb and abs(fa - fb) / max(fa, fb) > FREQUENCY_TOLERANCE:
        warnings.append(f"CPU frequency differs by more than {FREQUENCY_TOLERANCE:.0%}: "
                        f"{reference_name} {fa} MHz, {other_name} {fb} MHz")
    for name, env in ((reference_name, reference), (other_name, other)):
        busy = _busy(env)
        if busy is not None and busy > BUSY_LOAD_PER_CORE:
            warnings.append(f"the {name} ran on a busy machine: load average "
                            f"{env['load_average_at_start'][0]} on "
                            f"{env.get('cores_usable') or env.get('cores')} cores at its start")
    return Comparability(tuple(refusals), tuple(dict.fromkeys(warnings)))
