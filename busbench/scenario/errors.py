"""Scenario errors a user can act on: where (file, line, key), what was expected, a likely fix.

Pydantic's messages ("Input should be a valid integer", a URL, a type name) are
written for programmers; ``describe`` turns each of its errors into plain words
about the scenario file. The validators in ``schema`` raise ``InvalidValue``,
which carries the extra path below the field it was raised on and a suggestion,
so that cross-field and shape errors point at the exact key too.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable, NamedTuple, Sequence

__all__ = ["ScenarioError", "InvalidValue", "Problem", "closest", "describe", "unknown_key"]


class ScenarioError(Exception):
    """One or more problems with a scenario; ``format()`` gives one line per problem.

    ``source`` replaces ``file:line`` when the value came from the command line
    (``--set bus.shards=8``, ``--seed 3``) rather than from the file.
    """

    def __init__(self, file: str, line: int | None, key: str | None, message: str,
                 suggestion: str | None = None, *, source: str | None = None):
        super().__init__(message)
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        self.suggestion = suggestion
        self.source = source
        self.errors: list[ScenarioError] = [self]

    @classmethod
    def combine(cls, errors: Sequence["ScenarioError"]) -> "ScenarioError":
        """One exception for several problems: the first one's fields, all of them in ``errors``."""
        first = errors[0]
        combined = cls(first.file, first.line, first.key, first.message, first.suggestion,
                       source=first.source)
        combined.errors = list(errors)
        return combined

    def _format_one(self) -> str:
        if self.source:
            where = self.source
        elif self.line is not None:
            where = f"{self.file}:{self.line}"
        else:
            where = self.file
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return f"{text}; did you mean {self.suggestion!r}?" if self.suggestion else text

    def format(self) -> str:
        return "\n".join(error._format_one() for error in self.errors)

    def __str__(self) -> str:
        return self.format()


class InvalidValue(ValueError):
    """Raised inside schema validators: a plain-words message, the path below the
    validated object that it concerns (``missing``: a key the user did not write),
    and the nearest valid choice, if any."""

    def __init__(self, message: str, *, path: tuple = (), suggestion: str | None = None,
                 missing: bool = False):
        super().__init__(message)
        self.path = tuple(path)
        self.suggestion = suggestion
        self.missing = missing


class Problem(NamedTuple):
    """One pydantic error in plain words; ``missing``: ``loc`` ends in a key the user did not write."""
    loc: tuple
    message: str
    suggestion: str | None = None
    missing: bool = False


def closest(word: Any, choices: Iterable[str]) -> str | None:
    """The valid choice nearest to a misspelt ``word``, or None when none is near."""
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, list(choices), n=1)
    return matches[0] if matches else None


def unknown_key(key: Any, allowed: Sequence[str] | None, owner: str = "") -> tuple[str, str | None]:
    """``(message, suggestion)`` for a key that is not one of ``allowed`` (None: not known here)."""
    head, _, rest = str(key).partition(".")
    if rest and allowed and head in allowed:
        return (f"unknown key; dotted keys are for --set only: in a file, nest it "
                f"(e.g. {head}: {{{rest}: ...}})"), None
    where = f" for {owner}" if owner else ""
    if allowed is None:
        return f"unknown key{where}", None
    expected = ", ".join(allowed) if allowed else "none (it takes no settings)"
    return f"unknown key{where}; expected one of: {expected}", closest(str(key), allowed)


def show(value: Any) -> str:
    """A value as the user wrote it, shortened: ``'drop_newst'``, ``2000``, ``a mapping``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _literal_options(expected: str) -> list[str]:
    """pydantic's ``"'a', 'b' or 'c'"`` -> ``['a', 'b', 'c']``."""
    return re.findall(r"'([^']*)'", expected)


def describe(error: dict, keys_at: Callable[[tuple], Sequence[str] | None] = lambda loc: None
             ) -> Problem:
    """One pydantic error dict -> a Problem in plain words.

    ``keys_at(loc)`` lists the keys valid in the mapping at ``loc``, for unknown keys.
    """
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        return Problem(loc, *unknown_key(loc[-1], keys_at(loc[:-1])))
    if kind in ("value_error", "assertion_error") and isinstance(ctx.get("error"), Exception):
        raised = ctx["error"]
        return Problem(loc + tuple(getattr(raised, "path", ())), str(raised),
                       getattr(raised, "suggestion", None), getattr(raised, "missing", False))
    if kind == "literal_error":
        options = _literal_options(ctx.get("expected", ""))
        return Problem(loc, f"expected one of: {', '.join(options)}; got {show(value)}",
                       closest(value, options))
    bound = next((ctx[name] for name in ("ge", "gt", "le", "lt") if name in ctx), None)
    messages = {
        "missing": "required key is missing",
        "int_type": f"expected a whole number, got {show(value)}",
        "int_parsing": f"expected a whole number, got {show(value)}",
        "int_from_float": f"expected a whole number, got {show(value)}",
        "float_type": f"expected a number, got {show(value)}",
        "float_parsing": f"expected a number, got {show(value)}",
        "bool_type": f"expected true or false, got {show(value)}",
        "bool_parsing": f"expected true or false, got {show(value)}",
        "string_type": f"expected text, got {show(value)}",
        "invalid_key": f"expected keys to be names (text), got {show(loc[-1] if loc else value)}",
        "tuple_type": f"expected a list, got {show(value)}",
        "list_type": f"expected a list, got {show(value)}",
        "model_type": f"expected a mapping (key: value lines), got {show(value)}",
        "model_attributes_type": f"expected a mapping (key: value lines), got {show(value)}",
        "dict_type": f"expected a mapping (key: value lines), got {show(value)}",
        "greater_than": f"expected a value greater than {bound}, got {show(value)}",
        "greater_than_equal": f"expected at least {bound}, got {show(value)}",
        "less_than": f"expected a value less than {bound}, got {show(value)}",
        "less_than_equal": f"expected at most {bound}, got {show(value)}",
    }
    if kind in messages:
        return Problem(loc, messages[kind], missing=kind == "missing")
    # Anything not translated above: pydantic's one-line message without its prefix.
    return Problem(loc, re.sub(r"^(Value|Assertion) error, ", "", error.get("msg", "invalid value")))
