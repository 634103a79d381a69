"""What every model of a scenario or target file is built from: value types and sections.

``Section`` (a mapping: unknown keys refused, frozen once built), ``OneKey`` and
``one_of`` (a family chosen by tag, with plain-words errors), the value types
(``Duration``, ``Rate``, ``Count``...) and ``keys_expected_in`` (the keys valid at
a place, for "unknown key" messages). The scenario's models (schema.py) and a
target file's (foreign.py) both build on it.
"""
from __future__ import annotations

import types
from functools import partial
from typing import Annotated, Any, Callable, ClassVar, Iterable, Union, get_args, get_origin

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, PlainSerializer, Tag,
                      model_serializer, model_validator)

from ..common.units import canonical_duration, canonical_rate, parse_count, parse_duration, parse_fraction, parse_rate
from .errors import InvalidValue, closest, show, unknown_key


# --- value types --------------------------------------------------------------


def _whole_number(value: Any) -> int:
    """An int as it is (range checks say "at least 1"), or a count with a suffix (``"64k"``)."""
    if isinstance(value, bool):
        raise InvalidValue(f"expected a whole number, got {show(value)}")
    if isinstance(value, int):
        return value
    return parse_count(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"expected a number, got {show(value)}")
    return float(value)


Duration = Annotated[int, BeforeValidator(parse_duration),
                     PlainSerializer(canonical_duration, when_used="json")]
DurationOrZero = Annotated[int, BeforeValidator(partial(parse_duration, allow_zero=True)),
                           PlainSerializer(canonical_duration, when_used="json")]
Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(canonical_rate, when_used="json")]
Count = Annotated[int, BeforeValidator(_whole_number)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Number = Annotated[float, BeforeValidator(_number)]


def _memory(value: Any) -> int:
    from ..common.units import UnitError, parse_memory
    if isinstance(value, bool):
        raise UnitError(f"expected a size like 2G or 256M, got {value!r}")
    return parse_memory(value)


#: a size in bytes: 2G, 256M (binary units), or a number of bytes
Memory = Annotated[int, BeforeValidator(_memory)]

# --- shared machinery -----------------------------------------------------------


def only_keys(mapping: dict, allowed: Iterable[str], *, owner: str = "", at: tuple = ()) -> None:
    """Refuse a key not in ``allowed`` in a mapping read by hand (a check's settings)."""
    for key in mapping:
        if key not in allowed:
            message, suggestion = unknown_key(key, list(allowed), owner)
            raise InvalidValue(message, path=at + (key,), suggestion=suggestion)


class Section(BaseModel):
    """A mapping in the scenario file: unknown keys refused (``keys_expected_at`` lists
    the valid ones for the message), frozen once built."""
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        return data if isinstance(data, BaseModel) else cls._expand(data)

    @classmethod
    def _expand(cls, data: Any) -> Any:
        """Hook: what the user wrote -> this model's fields. By default, a mapping of its keys."""
        return {} if data is None else data

    @classmethod
    def user_keys(cls) -> list[str]:
        """The keys a user may write, in declaration order (aliases such as ``for`` included)."""
        return [info.alias or name for name, info in cls.model_fields.items()]


class Choice(Section):
    """One of a family (a step, an adapter, a key distribution), named by ``tag``."""
    tag: ClassVar[str]

    @property
    def kind(self) -> str:
        return self.tag


class OneKey(Choice):
    """A choice written ``{tag: settings}``, or a bare ``tag`` when the defaults will do.

    ``_settings`` reads what follows the tag (subclasses add scalar shorthand such
    as ``run: 2s``); ``_compact`` writes the shortest form back for ``to_dict``.
    """

    @classmethod
    def _expand(cls, data: Any) -> Any:
        return cls._settings(data.get(cls.tag) if isinstance(data, dict) else None)

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if settings is None:
            return {}
        if isinstance(settings, dict):
            return settings
        raise InvalidValue(f"expected the settings of {cls.tag} as a mapping "
                           f"({', '.join(cls.user_keys())}), got {show(settings)}")

    def _compact(self, settings: dict) -> Any:
        return settings

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Callable) -> Any:
        if not type(self).model_fields:
            return self.tag
        return {self.tag: self._compact(handler(self))}


class FaultSpec(OneKey):
    """A fault a ``fault:`` step arms: it starts ``after`` into the next run."""

    @property
    def planned_ns(self) -> int:
        """How far into the next run it reaches in the planned time (the run deadline's
        estimate): its start, for a fault with no end of its own."""
        return self.after


class TimedFaultSpec(FaultSpec):
    """A fault that ends ``duration`` after it starts (when it says so)."""

    @property
    def planned_ns(self) -> int:
        return self.after + (self.duration or 0)


def tag_of_one_key(value: Any, what: str, example: str) -> tuple[Any, tuple]:
    """``"flush"`` or ``{"flush": {...}}`` -> ``("flush", path of the tag)``."""
    if isinstance(value, str):
        return value, ()
    if isinstance(value, dict) and len(value) == 1:
        tag = next(iter(value))
        return tag, (tag,)
    if isinstance(value, dict):
        raise InvalidValue(f"expected one key naming the {what} (like {example}), got "
                           f"{len(value)} keys: {', '.join(map(str, value)) or 'none'}")
    raise InvalidValue(f"expected a {what} like {example}, got {show(value)}")


def tag_of_kind(value: Any, what: str, example: str) -> tuple[Any, tuple]:
    """``"verify"`` or ``{"kind": "slow", ...}`` -> ``("slow", ("kind",))``."""
    if isinstance(value, str):
        return value, ()
    if isinstance(value, dict) and "kind" in value:
        return value["kind"], ("kind",)
    if isinstance(value, dict):
        raise InvalidValue(f"required key is missing: which {what}? (like {example})",
                           path=("kind",), missing=True)
    raise InvalidValue(f"expected an {what} like {example}, got {show(value)}")


def one_of(what: str, members: tuple[type[Choice], ...], read_tag: Callable, example: str) -> Any:
    """A union of ``members`` chosen by tag, with plain-words errors for a missing or unknown tag."""
    by_tag = {member.tag: member for member in members}

    def check_tag(value: Any) -> Any:
        tag, path = read_tag(value, what, example)
        if not isinstance(tag, str) or tag not in by_tag:
            raise InvalidValue(f"unknown {what} {show(tag)}; expected one of: {', '.join(by_tag)}",
                               path=path, suggestion=closest(tag, by_tag))
        return value

    def discriminate(value: Any) -> Any:
        if isinstance(value, Choice):      # serializing
            return value.tag
        try:
            return read_tag(value, what, example)[0]
        except InvalidValue:
            return None

    tagged = tuple(Annotated[member, Tag(tag)] for tag, member in by_tag.items())
    return Annotated[Union[tagged], Discriminator(discriminate), BeforeValidator(check_tag)]


def keys_expected_in(loc: tuple, model: Any) -> list[str] | None:
    """The keys a user may write in the mapping at pydantic's ``loc``, for "unknown key" errors.

    Follows fields, list indices and union tags down from ``model`` (a scenario,
    a c-abi target file's own model); None where ``loc`` leads to something
    that is not a section.
    """
    current: Any = model
    for part in loc:
        current = _inside(_unwrapped(current), part)
    current = _unwrapped(current)
    return current.user_keys() if isinstance(current, type) and issubclass(current, Section) else None


def _unwrapped(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X, and ``X | None`` -> X."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return _unwrapped(members[0])
    return annotation


def _inside(annotation: Any, part: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return next((info.annotation for name, info in annotation.model_fields.items()
                     if part in (name, info.alias)), None)
    if get_origin(annotation) is tuple and isinstance(part, int):
        return get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return next((member for member in map(_unwrapped, get_args(annotation))
                     if getattr(member, "tag", None) == part), None)
    return None
