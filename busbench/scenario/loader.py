"""Reading scenario files: YAML with line numbers, ``--set`` overrides, validation.

``yaml.safe_load`` forgets where each value came from and silently keeps the
last of two duplicate keys. So the file is composed into PyYAML's node tree,
each value's line is noted under its path (``("steps", 2, "run")``), duplicate
keys are refused, and every validation error is traced back through that map to
a file line, or to the ``--set`` option that supplied the value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, NamedTuple

import yaml
from pydantic import ValidationError

from .errors import ScenarioError, closest, describe, show
from .schema import TARGET_SPECS, Scenario, keys_expected_at
from .yaml_source import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, Origin, Origins  # noqa: F401  (MAX_*: re-exported)
from .yaml_source import dotted as _dotted
from .yaml_source import nesting_problem as _nesting_problem
from .yaml_source import origin_of as _origin_of
from .yaml_source import path_in_data as _path_in_data
from .yaml_source import read_yaml as _read_yaml
from .yaml_source import yaml_problem as _yaml_problem

__all__ = ["load_scenario", "load_scenario_text", "list_scenarios", "ScenarioEntry"]


def _replace_origin(origins: Origins, path: tuple, origin: Origin) -> None:
    """``path`` and all below it now come from ``origin``."""
    for noted in [noted for noted in origins if noted[:len(path)] == path]:
        del origins[noted]
    origins[path] = origin


def apply_override(data: dict, origins: Origins, override: str) -> None:
    """Apply ``KEY=VALUE`` (``bus.shards=8``, ``steps.0.run=1s``) to the raw data; VALUE is YAML.

    Missing mappings on the way are created (``load.rate.per_producer=1M/s``); a
    list index may be one past the end to append. Walking through a plain value
    is an error that says to set the value whole.
    """
    def error(key: str | None, message: str, suggestion: str | None = None) -> ScenarioError:
        return ScenarioError("--set", None, key, message, suggestion, source=f"--set {override}")

    key, has_value, value_text = override.partition("=")
    key = key.strip()
    if not has_value or not key:
        raise error(key or None, "expected KEY=VALUE, e.g. --set bus.shards=8")
    parts = key.split(".")
    if not all(parts):
        raise error(key, "a dotted key has an empty part; write it like bus.batch.max_events")
    top_keys = Scenario.user_keys()
    if parts[0] not in top_keys:
        raise error(key, f"unknown key; expected one of: {', '.join(top_keys)}",
                    closest(parts[0], top_keys))
    if len(value_text) > MAX_FILE_BYTES or _nesting_problem(value_text) is not None:
        raise error(key, f"the value is too large or nests more than {MAX_DEPTH} levels deep")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as problem:
        raise error(key, f"the value is not valid YAML: {_yaml_problem(problem)[1]}") from None

    origin = Origin("--set", None, f"--set {override}")
    container: Any = data
    path: tuple = ()
    for depth, part in enumerate(parts):
        if isinstance(container, list):
            if not part.isdigit():
                raise error(key, f"{_dotted(path)} is a list: expected an index such as "
                                 f"{_dotted(path)}.0, got {part!r}")
            step: Any = int(part)
            if step > len(container):
                raise error(key, f"index {step} is out of range: {_dotted(path)} has {len(container)} "
                                 f"item(s) (an index one past the end appends)")
            if step == len(container):
                container.append(None)
        else:
            step = part
        path += (step,)
        if depth == len(parts) - 1:
            container[step] = value
            break
        child = container.get(step) if isinstance(container, dict) else container[step]
        if child is None:
            child = [] if parts[depth + 1].isdigit() else {}
            container[step] = child
            _replace_origin(origins, path, origin)
        elif not isinstance(child, (dict, list)):
            raise error(key, f"{_dotted(path)} is {show(child)}, not a mapping, so {key} cannot be "
                             f"set; set {_dotted(path)} as a whole instead, e.g. --set {_dotted(path)}={{...}}")
        container = child
    _replace_origin(origins, path, origin)


# --- validation, with errors traced to their line ---------------------------------------


def _validate(data: Any, origins: Origins) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as invalid:
        problems = []
        for error in invalid.errors(include_url=False):
            problem = describe(error, keys_expected_at)
            path = _path_in_data(data, problem.loc, problem.missing)
            message = problem.message
            if problem.missing and path[-1:] != problem.loc[-1:]:
                message += f": {problem.loc[-1]}"      # the key is not in ``path`` to name it
            origin = _origin_of(origins, path)
            problems.append(ScenarioError(origin.file, origin.line, _dotted(path) or None,
                                          message, problem.suggestion, source=origin.source))
        problems.sort(key=lambda problem: (problem.line is None, problem.line or 0))
        raise ScenarioError.combine(problems) from None


# --- paths -------------------------------------------------------------------------------


def _anchored(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def anchor_paths(data: dict, base: Path) -> None:
    """Resolve the relative paths the scenario's ``target:`` names against ``base``
    (the scenario file's folder), in place: a python target's ``path``, a c-abi
    target's ``library`` or target file (whose own paths resolve against it).
    Pure path arithmetic: nothing named is read, loaded or imported."""
    target = data.get("target")
    if not isinstance(target, dict) or len(target) != 1:
        return
    (tag, settings), = target.items()
    spec = next((s for s in TARGET_SPECS if s.tag == tag), None)
    if spec is None:
        return
    if isinstance(settings, str) and getattr(spec, "file_setting", False):
        target[tag] = _anchored(settings, base)
    elif isinstance(settings, dict):
        for key in getattr(spec, "path_keys", ()):
            if isinstance(settings.get(key), str):
                settings[key] = _anchored(settings[key], base)


# --- public API ---------------------------------------------------------------------------


def load_scenario_text(text: str, filename: str = "<string>", overrides: Iterable[str] = (),
                       seed: int | None = None, base_dir: Path | None = None) -> Scenario:
    """Parse and validate a scenario; ``overrides`` are ``--set KEY=VALUE`` strings, ``seed`` wins over the file's.

    ``base_dir``: what relative paths in the text resolve against (the file's
    folder, ``anchor_paths``); None: the current directory, when they are used.
    A path given in an override is the user's, typed where they are: it
    resolves against the current directory."""
    data, origins = _read_yaml(text, filename)
    if data is None:
        raise ScenarioError(filename, 1, None, "the file is empty; a scenario needs at least "
                                               "name, description and steps")
    if not isinstance(data, dict):
        raise ScenarioError(filename, origins[()].line, None,
                            f"expected a mapping at the top level (name: ..., description: ..., "
                            f"steps: ...), got {show(data)}")
    if base_dir is not None:
        anchor_paths(data, base_dir)
    for override in overrides:
        apply_override(data, origins, override)
    if seed is not None:
        data["seed"] = seed
        _replace_origin(origins, ("seed",), Origin("--seed", None, f"--seed {seed}"))
    return _validate(data, origins)


def load_scenario(path: str | Path, overrides: Iterable[str] = (), seed: int | None = None) -> Scenario:
    """Read, parse and validate a scenario file; every problem is a ScenarioError naming its line."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(str(path), None, None, f"the file is {size:,} bytes; a scenario "
                                f"file may be at most {MAX_FILE_BYTES:,} bytes (1 MiB)")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(str(path), None, None,
                            f"cannot read the file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ScenarioError(str(path), None, None, "cannot read the file: it is not UTF-8 text") from None
    return load_scenario_text(text, str(path), overrides, seed,
                              base_dir=Path(path).resolve().parent)


class ScenarioEntry(NamedTuple):
    """A scenario file found by ``list_scenarios``; ``name`` is None when it does not load,
    and ``description`` then holds the error."""
    path: Path
    name: str | None
    description: str

    @property
    def failed(self) -> bool:
        return self.name is None


def list_scenarios(directory: str | Path) -> list[ScenarioEntry]:
    """Every ``*.yaml``/``*.yml`` below ``directory``, sorted by path; broken ones listed with their error."""
    paths = sorted(path for path in Path(directory).rglob("*")
                   if path.suffix in (".yaml", ".yml") and path.is_file())
    entries = []
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            entries.append(ScenarioEntry(path, None, error.format()))
        else:
            entries.append(ScenarioEntry(path, scenario.name, scenario.description))
    return entries
