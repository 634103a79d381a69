"""Scenario vocabulary of the ``c-abi`` and ``python`` targets: a user's own bus.

It lives in the scenario package so that ``schema.py`` can import it in its targets
section (after the Section/OneKey machinery it builds on) whatever is imported first.

A C ABI is described by calls; each names its ``symbol``, lists its arguments
by kind (``args``), says its C return type (``returns``) and which return
values mean what. Every argument travels in one integer register (a handle,
a pointer, a length, a count, a time in ms), so any order of the kinds a call
accepts is expressible; anything else (a float, a struct by value, a
NUL-terminated payload) is not, and is refused here, never met mid-run.

    target:
      c-abi:
        library: ./libcbus.so        # or {python_module: mypkg._native}
        shards: 4                    # sizes the sink's per-shard tallies (default: bus.shards)
        init:     {symbol: cbus_new, config: {shards: 4, capacity: 4096}}
        ingest:   {symbol: cbus_push, args: [handle, ptr, len], ok: 0, refused: [-5], closed: [-8]}
        ingest_batch: {symbol: cbus_push_many, args: [handle, ptrs, lens, n], returns: int64}
        flush:    {symbol: cbus_flush, args: [handle, timeout_ms], ok: 0}
        stats:    {symbol: cbus_stats, args: [handle, out], struct: [events_ingested, events_dropped]}
        shutdown: {symbol: cbus_shutdown, args: [handle, grace_ms]}
        sink:     {symbol: cbus_set_sink, args: [handle, callback, context]}

or ``c-abi: path/to/target.yaml`` naming a file that holds the same mapping
(its paths are relative to that file; errors name its lines).

    target:
      python: "mybus.bus:make_bus"   # or {factory: ..., path: dir/on/sys.path, config: {...}}

Validation never loads the library nor imports the module: ``run`` does, after
saying what it will load (``describe_native``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, model_validator

from .errors import InvalidValue, closest, show
from .sections import Count, OneKey, Section, keys_expected_in
from .yaml_source import origin_of, path_in_data, read_yaml
from ..native.arg_kinds import (CALLBACK, CONFIG, CONFIG_LEN, CONTEXT, GRACE_MS, HANDLE, LEN, LENS, N, OUT,
                                OUT_SIZE, PTR, PTRS, TIMEOUT_MS)

# --- argument kinds (their numbers live in native/arg_kinds.py, for the kernels) -------
ARG_KINDS = {"handle": HANDLE, "ptr": PTR, "len": LEN, "ptrs": PTRS, "lens": LENS, "n": N,
             "timeout_ms": TIMEOUT_MS, "grace_ms": GRACE_MS, "out": OUT, "out_size": OUT_SIZE,
             "config": CONFIG, "config_len": CONFIG_LEN, "callback": CALLBACK, "context": CONTEXT}
ARG_MEANING = {
    "handle": "the handle init returned",
    "ptr": "const uint8_t*: the payload's bytes (valid during the call only: copy them)",
    "len": "size_t: the payload's length",
    "ptrs": "const uint8_t *const *: n payload pointers",
    "lens": "const size_t*: n payload lengths",
    "n": "size_t: how many payloads",
    "timeout_ms": "int64: how long flush may wait",
    "grace_ms": "int64: how long shutdown may wait for in-flight pushes",
    "out": "a pointer to the stats struct, filled by the call",
    "out_size": "size_t: the struct's size in bytes",
    "config": "const char*: the config text, NUL-terminated",
    "config_len": "size_t: the config text's length",
    "callback": "busbench's sink, a C function pointer",
    "context": "void*: the pointer busbench wants back as the sink's first argument",
}
MAX_ARGS = 4
#: C return types a call may declare: (bits, signed); ``void`` means no code to read
RETURN_TYPES = {"int": 32, "int32": 32, "int64": 64, "long": 64, "ssize_t": 64, "void": 0}
#: struct field types: (ctypes name, size in bytes)
FIELD_TYPES = ("u64", "i64", "u32", "i32")
#: stats fields busbench reads as the bus's lossy flag
LOSSY_FLAG_FIELD = "shutdown_was_lossy"

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FACTORY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                      r"(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not _SYMBOL.fullmatch(value):
        raise InvalidValue(f"expected a C symbol name like mybus_push, got {show(value)}")
    return value


def _codes(value: Any) -> tuple[int, ...]:
    """``0`` or ``[-5, -11]`` -> a tuple of ints."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise InvalidValue(f"expected a return code or a list of them, like -5 or [-5, -11], "
                               f"got {show(item)}")
    return tuple(items)


Symbol = Annotated[str, AfterValidator(_symbol)]
Codes = Annotated[tuple[int, ...], BeforeValidator(_codes)]
ReturnType = Literal["int", "int32", "int64", "long", "ssize_t", "void"]


class Call(Section):
    """One C function of the bus: its symbol, its arguments by kind, its return convention."""
    accepts: ClassVar[tuple[str, ...]] = ()           # argument kinds this call may take
    requires: ClassVar[tuple[str, ...]] = ()          # ... and must take
    default_args: ClassVar[tuple[str, ...]] = ()
    returns_allowed: ClassVar[tuple[str, ...]] = tuple(RETURN_TYPES)

    symbol: Symbol
    args: tuple[str, ...] = ()
    returns: ReturnType = "int"

    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, str):                    # `flush: mybus_flush`
            data = {"symbol": data}
        data = super()._expand(data)
        if isinstance(data, dict) and "args" not in data:
            data = {**data, "args": list(cls.default_args)}
        return data

    @model_validator(mode="after")
    def _signature(self) -> Call:
        if len(self.args) > MAX_ARGS:
            raise InvalidValue(f"expected at most {MAX_ARGS} arguments, got {len(self.args)}",
                               path=("args",))
        for index, kind in enumerate(self.args):
            if kind not in self.accepts:
                raise InvalidValue(f"this call cannot take an argument {show(kind)}; it may take: "
                                   f"{', '.join(f'{k} ({ARG_MEANING[k]})' for k in self.accepts)}",
                                   path=("args", index), suggestion=closest(kind, self.accepts))
            if kind in self.args[:index]:
                raise InvalidValue(f"argument {kind} is listed twice", path=("args", index))
        for kind in self.requires:
            if kind not in self.args:
                raise InvalidValue(f"expected {kind} among the arguments ({ARG_MEANING[kind]}), "
                                   f"got [{', '.join(self.args)}]", path=("args",))
        if self.returns not in self.returns_allowed:
            raise InvalidValue(f"this call must return one of: {', '.join(self.returns_allowed)}",
                               path=("returns",))
        return self

    @property
    def return_bits(self) -> int:
        return RETURN_TYPES[self.returns]

    @property
    def arg_codes(self) -> tuple[int, ...]:
        return tuple(ARG_KINDS[kind] for kind in self.args)


class InitCall(Call):
    """``void *init(const char *config)``: returns the handle, NULL on failure."""
    accepts: ClassVar = ("config", "config_len")
    requires: ClassVar = ("config",)
    default_args: ClassVar = ("config",)
    returns_allowed: ClassVar = ("int64",)
    config: str = ""
    returns: Literal["int64"] = "int64"          # a pointer

    @classmethod
    def _expand(cls, data: Any) -> Any:
        data = super()._expand(data)
        if isinstance(data, dict) and isinstance(data.get("config"), (dict, list)):
            data = {**data, "config": json.dumps(data["config"], separators=(",", ":"))}
        return data


class VersionCall(Call):
    """``const char *version(void)``: checked against ``expect`` at load."""
    accepts: ClassVar = ("handle",)
    returns_allowed: ClassVar = ("int64",)
    expect: str
    returns: Literal["int64"] = "int64"          # a pointer to text


class IngestCall(Call):
    """``int ingest(handle, const uint8_t *ptr, size_t len)``: one event."""
    accepts: ClassVar = ("handle", "ptr", "len")
    requires: ClassVar = ("ptr", "len")
    default_args: ClassVar = ("handle", "ptr", "len")
    returns_allowed: ClassVar = ("int", "int32", "int64", "long", "ssize_t")
    ok: Codes = (0,)
    refused: Codes = ()
    closed: Codes = ()

    @model_validator(mode="after")
    def _codes_distinct(self) -> IngestCall:
        seen: dict[int, str] = {}
        for name in ("ok", "refused", "closed"):
            for code in getattr(self, name):
                if code in seen:
                    raise InvalidValue(f"return code {code} is both {seen[code]} and {name}",
                                       path=(name,))
                seen[code] = name
        if not self.ok:
            raise InvalidValue("expected at least one code meaning the event was taken, like ok: 0",
                               path=("ok",))
        return self


class IngestBatchCall(Call):
    """``ssize_t ingest_batch(handle, ptrs, lens, n)``: returns how many were taken (the first
    ones, up to the first refusal), or one of ``closed``."""
    accepts: ClassVar = ("handle", "ptrs", "lens", "n")
    requires: ClassVar = ("ptrs", "lens", "n")
    default_args: ClassVar = ("handle", "ptrs", "lens", "n")
    returns_allowed: ClassVar = ("int", "int32", "int64", "long", "ssize_t")
    closed: Codes = ()

    @model_validator(mode="after")
    def _closed_negative(self) -> IngestBatchCall:
        for code in self.closed:
            if code >= 0:
                raise InvalidValue(f"closed codes must be negative (0 and above are accepted "
                                   f"counts), got {code}", path=("closed",))
        return self


class FlushCall(Call):
    """``int flush(handle, int64 timeout_ms)``: ``ok`` codes mean the barrier was reached."""
    accepts: ClassVar = ("handle", "timeout_ms")
    default_args: ClassVar = ("handle", "timeout_ms")
    ok: Codes = (0,)


class StatsField(Section):
    """A stats struct field: a name and a C type."""
    name: str
    type: Literal["u64", "i64", "u32", "i32"] = "u64"


def _fields(value: Any) -> Any:
    """``[events_ingested, {shards: u32}]`` -> field mappings."""
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(f"expected the struct's fields in order, like [events_ingested, "
                           f"events_dropped], got {show(value)}")
    out = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            item = {"name": item}
        elif isinstance(item, dict) and len(item) == 1 and "name" not in item:
            name, kind = next(iter(item.items()))
            item = {"name": name, "type": kind}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not _SYMBOL.fullmatch(item["name"]):
            raise InvalidValue(f"expected a field name, or {{name: type}} with type one of "
                               f"{', '.join(FIELD_TYPES)}, got {show(item)}", path=(index,))
        out.append(item)
    return out


class StatsCall(Call):
    """``int stats(handle, struct *out)``: fills a struct of integer fields, in order.

    Fields named like busbench's counters (events_ingested, events_dropped,
    batches_dispatched, events_dispatched) are read as those counters, and
    ``shutdown_was_lossy`` as the bus's lossy flag; others are shown as the bus's
    own figures. A name starting with ``_`` is padding.
    """
    accepts: ClassVar = ("handle", "out", "out_size")
    requires: ClassVar = ("out",)
    default_args: ClassVar = ("handle", "out")
    struct: Annotated[tuple[StatsField, ...], BeforeValidator(_fields)]
    ok: Codes = (0,)

    @model_validator(mode="after")
    def _unique(self) -> StatsCall:
        if not self.struct:
            raise InvalidValue("expected at least one field", path=("struct",))
        names = [f.name for f in self.struct]
        for index, name in enumerate(names):
            if name in names[:index] and not name.startswith("_"):
                raise InvalidValue(f"field {name} is listed twice", path=("struct", index))
        return self


class ShutdownCall(Call):
    """``int shutdown(handle, int64 grace_ms)``: ``ok`` codes mean a clean shutdown, ``lossy``
    codes a lossy one; any other code is an error. With neither declared (or ``returns:
    void``) the bus says nothing of how its shutdown went. ``frees_handle: true``: the
    handle is freed, so busbench calls nothing with it afterwards (the counters are then
    those read just before shutdown, and producers still running are turned away
    without a call)."""
    accepts: ClassVar = ("handle", "grace_ms")
    default_args: ClassVar = ("handle", "grace_ms")
    ok: Codes = ()
    lossy: Codes = ()
    frees_handle: StrictBool = False     # true: no call may use the handle afterwards


class SinkCall(Call):
    """``int set_sink(handle, void (*callback)(...), void *context)``: called once, before any
    ingest; the bus then calls the callback for every batch it delivers."""
    accepts: ClassVar = ("handle", "callback", "context")
    requires: ClassVar = ("callback", "context")
    default_args: ClassVar = ("handle", "callback", "context")
    ok: Codes = (0,)


class PythonModuleLibrary(Section):
    """The shared library of an extension module (``{python_module: net._net}``): found by
    importing its package at run time, never at validation."""
    python_module: Annotated[str, AfterValidator(lambda v: _module_name(v))]


def _module_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", value):
        raise InvalidValue(f"expected a dotted module name like mypkg._native, got {show(value)}")
    return value


def _library(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidValue("expected the path of a shared library, like ./libmybus.so")
        return value
    if isinstance(value, dict):
        return PythonModuleLibrary.model_validate(value)
    raise InvalidValue(f"expected a path like ./libmybus.so or {{python_module: mypkg._native}}, "
                       f"got {show(value)}")


class CAbiSettings(Section):
    """A bus with a C ABI, driven by busbench's Numba producer kernels (GIL-free)."""
    library: Annotated[str | PythonModuleLibrary, BeforeValidator(_library)]
    shards: Annotated[Count, Field(ge=1, le=4096)] | None = None
    init: InitCall
    version: VersionCall | None = None
    ingest: IngestCall | None = None
    ingest_batch: IngestBatchCall | None = None
    flush: FlushCall
    stats: StatsCall | None = None
    shutdown: ShutdownCall
    sink: SinkCall | None = None

    @model_validator(mode="after")
    def _some_ingest(self) -> CAbiSettings:
        if self.ingest is None and self.ingest_batch is None:
            raise InvalidValue("expected ingest or ingest_batch (or both): how producers hand "
                               "the bus an event", path=("ingest",), missing=True)
        return self

    @property
    def symbols(self) -> dict[str, str]:
        """``{"ingest": "cbus_push", ...}`` for every call declared."""
        return {name: call.symbol for name in ("init", "version", "ingest", "ingest_batch", "flush",
                                               "stats", "shutdown", "sink")
                if (call := getattr(self, name)) is not None}


class CAbiTargetSpec(OneKey, CAbiSettings):
    """``target: {c-abi: {...}}`` or ``target: {c-abi: path/to/target.yaml}``."""
    tag: ClassVar[str] = "c-abi"
    #: settings that name a file (``library``), and a bare string setting is a
    #: target file: both resolved against the file that names them
    path_keys: ClassVar[tuple] = ("library",)
    file_setting: ClassVar[bool] = True

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        if isinstance(settings, str):
            return read_target_file(settings)
        return super()._settings(settings)


def read_target_file(path: str) -> dict:
    """A target file's mapping, validated with errors naming that file's lines; its relative
    library path made relative to the file's folder."""
    from .errors import ScenarioError

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidValue(f"cannot read the target file {file.resolve()}: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    try:
        data, origins = read_yaml(text, str(file))
    except ScenarioError as error:
        raise InvalidValue(f"in the target file: {error.format()}") from None
    if isinstance(data, dict) and list(data) == ["c-abi"]:
        data = data["c-abi"]
    if not isinstance(data, dict):
        raise InvalidValue(f"the target file {file.resolve()} must hold a mapping "
                           "(library: ..., init: ..., ...)")
    _, problems = validate_in_file(CAbiSettings, data, origins, str(file))
    if problems:
        raise InvalidValue("in the target file: " + "; ".join(p.format() for p in problems))
    library = data.get("library")
    if isinstance(library, str) and not Path(library).is_absolute():
        data = {**data, "library": str((file.parent / library).resolve())}
    return data


def validate_in_file(model: type[Section], data: Any, origins: dict, filename: str,
                     prefix: tuple = ()) -> tuple:
    """Validate ``data`` as ``model``: ``(model, [])``, or ``(None, [ScenarioError naming
    file, line and key, ...])``."""
    from pydantic import ValidationError

    from .errors import ScenarioError, describe

    try:
        return model.model_validate(data), []
    except ValidationError as invalid:
        problems = []
        for error in invalid.errors(include_url=False):
            problem = describe(error, lambda loc: _keys_at(model, loc))
            path = path_in_data(data, prefix + problem.loc, problem.missing)
            message = problem.message
            if problem.missing and path[-1:] != problem.loc[-1:]:
                message += f": {problem.loc[-1]}"
            origin = origin_of(origins, path)
            problems.append(ScenarioError(origin.file, origin.line, ".".join(map(str, path)) or None,
                                          message, problem.suggestion))
        return None, problems


def load_target_text(text: str, filename: str = "<string>"):
    """A target as a scenario's ``target:`` would hold it (``{c-abi: {...}}`` or ``{python: ...}``),
    from YAML text: the typed spec, or a ScenarioError naming file, line and key."""
    from .errors import ScenarioError

    data, origins = read_yaml(text, filename)
    by_tag = {spec.tag: spec for spec in (CAbiTargetSpec, PythonTargetSpec)}
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in by_tag:
        tag = next(iter(data)) if isinstance(data, dict) and data else None
        raise ScenarioError(filename, 1, None, f"expected one key naming the target: "
                            f"{' or '.join(by_tag)}", closest(tag, by_tag))
    tag = next(iter(data))
    spec, problems = validate_in_file(by_tag[tag], data, origins, filename, prefix=(tag,))
    if problems:
        raise ScenarioError.combine(problems)
    return spec


def _keys_at(model: type[Section], loc: tuple) -> list[str] | None:
    return keys_expected_in(loc, model)


# --- python -------------------------------------------------------------------------


def _factory(value: Any) -> str:
    if not isinstance(value, str) or not _FACTORY.fullmatch(value):
        raise InvalidValue(f"expected module:callable, like mybus.bus:make_bus, got {show(value)}")
    return value


class PythonTargetSpec(OneKey):
    """``target: {python: "mybus.bus:make_bus"}``: a bus with a Python API (protocol.py),
    driven from Python threads, so its figures include the GIL."""
    tag: ClassVar[str] = "python"
    #: settings that name a folder or file: resolved against the file that names them
    path_keys: ClassVar[tuple] = ("path",)
    factory: Annotated[str, AfterValidator(_factory)]
    path: str | None = None              # a folder put first on sys.path before the import
    config: dict[str, Any] = Field(default_factory=dict)   # keyword arguments of the factory

    @classmethod
    def _settings(cls, settings: Any) -> Any:
        return {"factory": settings} if isinstance(settings, str) else super()._settings(settings)

    def _compact(self, settings: dict) -> Any:
        return self.factory if self.path is None and not self.config else settings

    @property
    def module(self) -> str:
        return self.factory.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.factory.partition(":")[2]


#: scenario keys a c-abi or python target cannot honour, and why: refused at validation,
#: never ignored (as NET_MESH_REFUSES in scenario/schema.py). ``bus.shards`` is honoured:
#: it sizes the sink when the target does not say. Faults are refused too (none applies).
FOREIGN_REFUSES = {
    ("bus", "capacity"): "the bus's own configuration sets its capacity (target init config)",
    ("bus", "backpressure"): "the bus decides what to do when full; declare its codes "
                             "(ingest.refused)",
    ("bus", "block_timeout"): "the bus decides what to do when full",
    ("bus", "batch"): "the bus batches as it likes",
    ("bus", "counters"): "the bus's counter layout is compiled into it",
    ("bus", "workers"): "the bus runs its own threads",
    ("bus", "latency"): "busbench cannot stamp dispatch times inside a foreign bus",
    ("bus", "adapter"): "the bus's downstream is its own; a sink is declared under target",
    ("bus", "mutations"): "mutations are faults of the reference bus",
    ("load", "keys"): "the C ABI and the Python protocol take no key: the bus chooses shards",
}
