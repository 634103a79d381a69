"""Reading scenario files: YAML with line numbers, ``--set`` overrides, validation.

``yaml.safe_load`` forgets where each value came from and silently keeps the
last of two duplicate keys. So the file is composed into PyYAML's node tree,
each value's line is noted under its path (``("steps", 2, "run")``), duplicate
keys are refused, and every validation error is traced back through that map to
a file line, or to the ``--set`` option that supplied the value.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import yaml
from pydantic import ValidationError

from .errors import ScenarioError, closest, describe, show
from .schema import TARGET_SPECS, Scenario, keys_expected_at

__all__ = ["load_scenario", "load_scenario_text", "list_scenarios", "ScenarioEntry"]


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a line of a file, or a command-line option (``source``)."""
    file: str
    line: int | None = None
    source: str | None = None


Origins = dict[tuple, Origin]

# Limits on what a scenario file may be, far above any real scenario (a few kB,
# nesting 6 deep), so that a malformed or hostile file gets a message instead
# of a RecursionError traceback (PyYAML composes nodes recursively) or minutes
# of expanding aliases.
MAX_FILE_BYTES = 1 << 20        # 1 MiB
MAX_DEPTH = 50                  # nested mappings and lists
MAX_VALUES = 100_000            # values read, aliases expanded


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


# --- YAML with line numbers -------------------------------------------------------


class _SourceMap:
    """Builds plain Python data from PyYAML's node tree, noting each path's line on the way."""

    def __init__(self, loader: yaml.SafeLoader, filename: str):
        self.loader = loader
        self.filename = filename
        self.origins: Origins = {}
        self.problems: list[ScenarioError] = []
        self._open: set[int] = set()    # nodes being read, to stop on a recursive alias
        self._values = 0                # values read so far, aliases expanded (MAX_VALUES)

    def note(self, path: tuple, node: yaml.Node) -> None:
        self.origins[path] = Origin(self.filename, node.start_mark.line + 1)

    def problem(self, path: tuple, node: yaml.Node, message: str) -> None:
        self.problems.append(ScenarioError(self.filename, node.start_mark.line + 1,
                                           _dotted(path) or None, message))

    def read(self, node: yaml.Node, path: tuple) -> Any:
        if id(node) in self._open:
            self.problem(path, node, "an alias refers to itself; a scenario cannot be recursive")
            return None
        self._values += 1
        if self._values > MAX_VALUES:
            if self._values == MAX_VALUES + 1:
                self.problem(path, node, f"the file expands to more than {MAX_VALUES:,} values "
                                         f"(aliases repeated inside aliases?); a scenario is far "
                                         f"smaller")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self._child(item, path + (index,), item) for index, item in enumerate(node.value)]
            return self.loader.construct_object(node)
        finally:
            self._open.discard(id(node))

    def _child(self, node: yaml.Node, path: tuple, noted_at: yaml.Node) -> Any:
        self.note(path, noted_at)
        return self.read(node, path)

    def _key(self, key_node: yaml.Node, path: tuple) -> Any:
        key = self.loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            self.problem(path, key_node, f"a key must be a plain name, got {show(key)}")
            return None
        return key

    def _mapping(self, node: yaml.MappingNode, path: tuple) -> dict:
        self._refuse_duplicates(node, path)
        self.loader.flatten_mapping(node)     # resolves "<<: *defaults" merge keys
        result = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is not None:               # merged keys come first, so the file's own win
                result[key] = self._child(value_node, path + (key,), key_node)
        return result

    def _refuse_duplicates(self, node: yaml.MappingNode, path: tuple) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_line:
                self.problem(path + (key,), key_node,
                             f"duplicate key {key!r}; it is already set on line {first_line[key]} "
                             f"(YAML would silently keep only the last)")
            else:
                first_line[key] = key_node.start_mark.line + 1


def _yaml_problem(error: yaml.YAMLError) -> tuple[int | None, str]:
    """A PyYAML exception -> (line, what is wrong), with the usual cause named where it is known."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    if context and problem.startswith("but "):        # "expected a single document..., but found another"
        message = f"{context}, {problem}"
    elif context and context_mark is not None:
        message = f"{problem} ({context} on line {context_mark.line + 1})"
    else:
        message = problem
    if "'\\t'" in problem:
        message += "; indent with spaces, not tabs"
    return (mark.line + 1 if mark is not None else None), message


def _nesting_problem(text: str) -> tuple[int, int] | None:
    """(line, depth) where mappings and lists nest deeper than MAX_DEPTH, else None.
    Reads PyYAML's event stream, which (unlike composing) does not recurse.
    A YAML error is left for the composer to report with its own message."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1, depth
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _too_deep() -> str:
    return (f"mappings and lists nest more than {MAX_DEPTH} levels deep here; a scenario nests "
            f"a few levels (steps: - fault: stall_producer: ...)")


def _read_yaml(text: str, filename: str) -> tuple[Any, Origins]:
    if len(text) > MAX_FILE_BYTES:
        raise ScenarioError(filename, None, None, f"the file has {len(text):,} characters; a "
                            f"scenario file may have at most {MAX_FILE_BYTES:,} (1 MiB)")
    deep = _nesting_problem(text)
    if deep is not None:
        raise ScenarioError(filename, deep[0], None, _too_deep())
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {(): Origin(filename, 1)}
        source_map = _SourceMap(loader, filename)
        source_map.note((), root)
        data = source_map.read(root, ())
    except yaml.YAMLError as error:
        line, message = _yaml_problem(error)
        raise ScenarioError(filename, line, None, f"invalid YAML: {message}") from None
    except RecursionError:      # a nesting the event scan did not measure: still a message
        raise ScenarioError(filename, None, None, _too_deep()) from None
    finally:
        loader.dispose()
    if source_map.problems:
        raise ScenarioError.combine(source_map.problems)
    return data, source_map.origins


# --- --set overrides ------------------------------------------------------------------


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


def _path_in_data(data: Any, loc: tuple, missing: bool) -> tuple:
    """The path in the user's data that a pydantic ``loc`` points at.

    ``loc`` also holds names the user never wrote: union tags (``adapter.slow``)
    and fields behind shorthand (``run: 2s`` is read as ``duration``). Those are
    skipped; a ``missing`` key at the end (``bus.adapter.for``) is kept.
    """
    node, path, last_found = data, [], True
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            last_found = False
            continue
        path.append(part)
        last_found = True
    if missing and not last_found and isinstance(node, dict):
        path.append(loc[-1])
    return tuple(path)


def _origin_of(origins: Origins, path: tuple) -> Origin:
    """The origin of ``path`` or of its nearest noted parent (a missing key: its mapping)."""
    for length in range(len(path), -1, -1):
        if path[:length] in origins:
            return origins[path[:length]]
    raise AssertionError("the root of every scenario has an origin")


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
