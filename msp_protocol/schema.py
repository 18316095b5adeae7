"""The shipped JSON Schemas and a strict validator for the subset of JSON Schema they use.

The schema files under ``msp_protocol/schemas/`` are the contract fleet operators can load into
any Draft 2020-12 validator; this module checks records against the very same files, so the
files and the code cannot drift apart. Every rejection is a ``RecordError`` naming the JSON
path of the offending value (``body.events.speeding``, ``body.codes[2].code``).

Each schema is compiled once (``validator(name)`` is cached) into nested checks, one per
schema node, that do only what the node says.

Patterns are ECMA-262 regular expressions, as JSON Schema specifies: a pattern must match the
whole string (``fullmatch``: Python's ``$`` would also match before a final newline) and
``\\d`` means an ASCII digit only.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from .errors import RecordError

#: Keywords this validator understands; a schema using anything else is a bug in the package.
KEYWORDS = frozenset(
    {
        "$schema", "$id", "title", "description", "type", "properties",
        "required", "additionalProperties", "enum", "const", "minimum", "maximum",
        "exclusiveMinimum", "minLength", "maxLength", "pattern", "format", "items",
        "minItems", "maxItems", "propertyNames", "maxProperties",
    }
)  # fmt: skip

_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source, re.ASCII)


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    raise ValueError(f"unknown JSON Schema type {name!r}")


def _check_format(value: str, fmt: str, path: str) -> None:
    try:
        if fmt == "date-time":
            if not _TS.fullmatch(value):
                raise ValueError("not YYYY-MM-DDTHH:MM:SS[.ffffff]Z")
            datetime.fromisoformat(value)  # the fields' ranges (3.11 reads the Z)
        elif fmt == "date":
            if not _DATE.fullmatch(value):
                raise ValueError("not YYYY-MM-DD")
            date.fromisoformat(value)
        else:
            raise RecordError(f"schema uses unknown format {fmt!r}", path)
    except ValueError as exc:
        raise RecordError(f"{value!r} is not a valid {fmt} ({exc})", path) from None


#: A compiled check: ``(value, path, found)``; raises ``RecordError`` naming the first path
#: where ``value`` breaks its schema node, and appends ``(format, path, string)`` of every
#: string with a ``format`` to ``found`` (unless it is ``None``).
_Check = Callable[[Any, str, list[tuple[str, str, str]] | None], None]


class Validator:
    """Checks JSON values against one schema document, compiled once into nested checks (one
    per schema node, each doing only what its node says)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._check = _compile(schema)
        props: dict[str, Any] = schema.get("properties", {})
        self._fields = {name: _compile(sub) for name, sub in props.items()}

    def validate(self, value: Any, path: str = "") -> None:
        """Raise ``RecordError`` naming the first path where ``value`` breaks the schema."""
        self._check(value, path, None)

    def validate_collecting(self, value: Any, fmt: str, path: str = "") -> list[tuple[str, str]]:
        """``validate``, and return ``(path, string)`` for every string of ``value`` the schema
        gives format ``fmt`` (``formatted`` in the same pass)."""
        found: list[tuple[str, str, str]] = []
        self._check(value, path, found)
        return [(where, text) for kind, where, text in found if kind == fmt]

    def validate_fields(self, fields: dict[str, Any], fmt: str) -> list[tuple[str, str]]:
        """Check each of ``fields`` against its property of this (object) schema, not the
        object's own keywords (required or unknown fields); return ``(name, string)`` of those
        the schema gives format ``fmt``. Raises ``RecordError`` for a name it does not know."""
        found: list[tuple[str, str, str]] = []
        for name, value in fields.items():
            check = self._fields.get(name)
            if check is None:
                raise RecordError("unknown field", name)
            check(value, name, found)
        return [(where, text) for kind, where, text in found if kind == fmt]

    def validate_field(self, name: str, value: Any) -> None:
        """``validate_fields`` of one field, without collecting."""
        self._fields[name](value, name, None)

    def formatted(self, value: Any, fmt: str, path: str = "") -> Iterator[tuple[str, str]]:
        """Yield ``(path, string)`` for every string of ``value`` the schema gives format
        ``fmt`` (e.g. every ``date-time``); ``value`` must have passed ``validate``."""
        yield from _formatted(self.schema, value, fmt, path)


#: The JSON Schema type names.
_TYPE_NAMES = frozenset({"null", "boolean", "string", "integer", "number", "object", "array"})


def _type_test(names: list[str]) -> Callable[[Any], bool]:
    """The test of a ``type`` keyword, as ``_is_type`` (direct for the common single types)."""
    unknown = set(names) - _TYPE_NAMES
    if unknown:
        raise ValueError(f"unknown JSON Schema type {sorted(unknown)[0]!r}")
    if names == ["string"]:
        return lambda v: isinstance(v, str)
    if names == ["number"]:
        return lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if names == ["object"]:
        return lambda v: isinstance(v, dict)
    if names == ["integer"]:
        return lambda v: _is_type(v, "integer")
    if names == ["string", "null"]:
        return lambda v: v is None or isinstance(v, str)
    kinds = tuple(names)
    return lambda v: any(_is_type(v, name) for name in kinds)


def _compile(schema: dict[str, Any]) -> _Check:
    """One schema node as a check, in the order of the keywords' checks: type, const, enum,
    then by the value's type the string, number, object or array keywords."""
    names: list[str] | None = None
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    type_ok = _type_test(names) if names is not None else None
    has_const, const = "const" in schema, schema.get("const")
    options: list[Any] | None = schema.get("enum")
    strings = (
        frozenset(options) if options is not None and all(isinstance(o, str) for o in options)
        else None
    )  # fmt: skip
    string = _string_check(schema)
    low, above, high = schema.get("minimum"), schema.get("exclusiveMinimum"), schema.get("maximum")
    number = low is not None or above is not None or high is not None
    obj = _object_check(schema)
    array = _array_check(schema)

    def check(value: Any, path: str, found: list[tuple[str, str, str]] | None) -> None:
        if type_ok is not None and not type_ok(value):
            assert names is not None
            raise RecordError(
                f"expected {' or '.join(names)}, got {_describe(value)}", path or "(record)"
            )
        if has_const and not _same(value, const):
            raise RecordError(f"must be {const!r}, got {_short(value)}", path or "(record)")
        if options is not None:
            if strings is not None:
                ok = isinstance(value, str) and value in strings
            else:
                ok = any(_same(value, option) for option in options)
            if not ok:
                raise RecordError(f"{_short(value)} is not one of {options}", path or "(record)")
        if isinstance(value, str):
            if string is not None:
                string(value, path, found)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            where = path or "(record)"
            if isinstance(value, float) and not math.isfinite(value):
                raise RecordError(f"{value} is not a JSON number", where)
            if number:
                if low is not None and value < low:
                    raise RecordError(f"{value} is below the minimum {low}", where)
                if above is not None and value <= above:
                    raise RecordError(f"{value} must exceed {above}", where)
                if high is not None and value > high:
                    raise RecordError(f"{value} is above the maximum {high}", where)
        elif isinstance(value, dict):
            if obj is not None:
                obj(value, path, found)
        elif isinstance(value, list) and array is not None:
            array(value, path, found)

    return _fast_leaf(schema, names, check) or check


#: The keywords of a leaf that ``_fast_leaf`` takes; any other keyword keeps the general check.
_LEAF_KEYWORDS = frozenset({
    "type", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern",
    "format", "enum", "description", "title",
})  # fmt: skip


def _fast_leaf(schema: dict[str, Any], names: list[str] | None, general: _Check) -> _Check | None:
    """A check of a common leaf (a number in a range, a string of a pattern, an enum of
    strings) that accepts what it can tell valid in a few operations and gives everything else
    to ``general``, which accepts or refuses it as before; None for any other node."""
    if not set(schema) <= _LEAF_KEYWORDS:
        return None
    kinds = set(names or ())
    nullable = "null" in kinds
    kinds.discard("null")
    options = schema.get("enum")
    if options is not None:
        if names is not None or not all(isinstance(o, str) for o in options):
            return None
        strings = frozenset(options)

        def enum(value: Any, path: str, found: list[tuple[str, str, str]] | None) -> None:
            if type(value) is not str or value not in strings:
                general(value, path, found)

        return enum
    if kinds in ({"number"}, {"integer"}):
        # default bounds are the largest finite floats, so that infinities (and NaN, which no
        # comparison admits) fall through to the general check, which refuses them
        biggest = sys.float_info.max
        low, high = schema.get("minimum", -biggest), schema.get("maximum", biggest)
        above = schema.get("exclusiveMinimum", -math.inf)
        floats = kinds == {"number"}  # an integral float is an integer: the general check's

        def number(value: Any, path: str, found: list[tuple[str, str, str]] | None) -> None:
            kind = type(value)
            if kind is int or (floats and kind is float):
                if low <= value <= high and value > above:
                    return
            elif value is None and nullable:
                return
            general(value, path, found)

        return number
    if kinds == {"string"}:
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength", math.inf)
        source = schema.get("pattern")
        match = _pattern(source).fullmatch if source is not None else None
        fmt: str | None = schema.get("format")

        def string(value: Any, path: str, found: list[tuple[str, str, str]] | None) -> None:
            if type(value) is str:
                if shortest <= len(value) <= longest and (match is None or match(value)):
                    if fmt is not None:
                        _check_format(value, fmt, path or "(record)")
                        if found is not None:
                            found.append((fmt, path, value))
                    return
            elif value is None and nullable:
                return
            general(value, path, found)

        return string
    return None


def _string_check(schema: dict[str, Any]) -> _Check | None:
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    source: str | None = schema.get("pattern")
    match = _pattern(source).fullmatch if source is not None else None
    fmt: str | None = schema.get("format")
    if shortest is None and longest is None and match is None and fmt is None:
        return None

    def check(value: str, path: str, found: list[tuple[str, str, str]] | None) -> None:
        where = path or "(record)"
        if shortest is not None and len(value) < shortest:
            raise RecordError(f"shorter than {shortest} characters", where)
        if longest is not None and len(value) > longest:
            raise RecordError(f"{len(value)} characters, longer than {longest}", where)
        if match is not None and not match(value):
            raise RecordError(f"{value[:80]!r} does not match {source}", where)
        if fmt is not None:
            _check_format(value, fmt, where)
            if found is not None:
                found.append((fmt, path, value))

    return check


def _object_check(schema: dict[str, Any]) -> _Check | None:
    props = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
    required: tuple[str, ...] = tuple(schema.get("required", ()))
    most: int | None = schema.get("maxProperties")
    names = _compile(schema["propertyNames"]) if "propertyNames" in schema else None
    extra_schema = schema.get("additionalProperties", True)
    closed = extra_schema is False
    extra = _compile(extra_schema) if isinstance(extra_schema, dict) else None
    if not (props or required or closed) and most is None and names is None and extra is None:
        return None

    def check(value: dict[str, Any], path: str, found: list[tuple[str, str, str]] | None) -> None:
        prefix = f"{path}." if path else ""
        for name in required:
            if name not in value:
                raise RecordError("required field is missing", prefix + name)
        if most is not None and len(value) > most:
            raise RecordError(f"{len(value)} entries, at most {most}", path or "(record)")
        for name, item in value.items():
            if names is not None:
                names(name, f"{prefix}{name} (name)", None)
            sub = props.get(name)
            if sub is not None:
                sub(item, prefix + name, found)
            elif closed:
                raise RecordError("unknown field", prefix + name)
            elif extra is not None:
                extra(item, prefix + name, found)

    return check


def _array_check(schema: dict[str, Any]) -> _Check | None:
    fewest, most = schema.get("minItems"), schema.get("maxItems")
    items = _compile(schema["items"]) if "items" in schema else None
    if fewest is None and most is None and items is None:
        return None

    def check(value: list[Any], path: str, found: list[tuple[str, str, str]] | None) -> None:
        where = path or "(record)"
        if fewest is not None and len(value) < fewest:
            raise RecordError(f"needs at least {fewest} items", where)
        if most is not None and len(value) > most:
            raise RecordError(f"has {len(value)} items, at most {most}", where)
        if items is not None:
            for i, item in enumerate(value):
                items(item, f"{path}[{i}]", found)

    return check


def _formatted(
    schema: dict[str, Any], value: Any, fmt: str, path: str
) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if schema.get("format") == fmt:
            yield path, value
    elif isinstance(value, dict):
        prefix = f"{path}." if path else ""
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            sub = props.get(name, extra)
            if isinstance(sub, dict):
                yield from _formatted(sub, item, fmt, prefix + name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _formatted(schema["items"], item, fmt, f"{path}[{i}]")


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the shipped schema ``name`` (``envelope``, ``trip``, ``session.start``, ...)."""
    text = resources.files(__package__).joinpath("schemas", f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def validator(name: str) -> Validator:
    """Return the validator for the shipped schema ``name``."""
    return Validator(load_schema(name))
