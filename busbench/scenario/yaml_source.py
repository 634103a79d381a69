"""Scenario and target files as YAML that remembers where each value came from.

``yaml.safe_load`` forgets where each value came from and silently keeps the
last of two duplicate keys. So the file is composed into PyYAML's node tree,
each value's line is noted under its path (``("steps", 2, "run")``), duplicate
keys are refused, and a validation error's pydantic ``loc`` is traced back
through that map to a file line (``path_in_data``, ``origin_of``). Used by the
scenario loader (loader.py) and by target files (foreign.py); knows no model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from .errors import ScenarioError, show

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


def dotted(path: tuple) -> str:
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
                                           dotted(path) or None, message))

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


def yaml_problem(error: yaml.YAMLError) -> tuple[int | None, str]:
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


def nesting_problem(text: str) -> tuple[int, int] | None:
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


def read_yaml(text: str, filename: str) -> tuple[Any, Origins]:
    if len(text) > MAX_FILE_BYTES:
        raise ScenarioError(filename, None, None, f"the file has {len(text):,} characters; a "
                            f"scenario file may have at most {MAX_FILE_BYTES:,} (1 MiB)")
    deep = nesting_problem(text)
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
        line, message = yaml_problem(error)
        raise ScenarioError(filename, line, None, f"invalid YAML: {message}") from None
    except RecursionError:      # a nesting the event scan did not measure: still a message
        raise ScenarioError(filename, None, None, _too_deep()) from None
    finally:
        loader.dispose()
    if source_map.problems:
        raise ScenarioError.combine(source_map.problems)
    return data, source_map.origins


# --- --set overrides ------------------------------------------------------------------


def path_in_data(data: Any, loc: tuple, missing: bool) -> tuple:
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


def origin_of(origins: Origins, path: tuple) -> Origin:
    """The origin of ``path`` or of its nearest noted parent (a missing key: its mapping)."""
    for length in range(len(path), -1, -1):
        if path[:length] in origins:
            return origins[path[:length]]
    raise AssertionError("the root of every scenario has an origin")
