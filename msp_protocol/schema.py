"""The shipped JSON Schemas and a strict validator for the subset of JSON Schema they use.

The schema files under ``msp_protocol/schemas/`` are the contract fleet operators can load into
any Draft 2020-12 validator; this module checks records against the very same files, so the
files and the code cannot drift apart. Every rejection is a ``RecordError`` naming the JSON
path of the offending value (``body.events.speeding``, ``body.codes[2].code``).

Patterns are ECMA-262 regular expressions, as JSON Schema specifies: a pattern must match the
whole string (``fullmatch``: Python's ``$`` would also match before a final newline) and
``\\d`` means an ASCII digit only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "date":
            if not _DATE.fullmatch(value):
                raise ValueError("not YYYY-MM-DD")
            date.fromisoformat(value)
        else:
            raise RecordError(f"schema uses unknown format {fmt!r}", path)
    except ValueError as exc:
        raise RecordError(f"{value!r} is not a valid {fmt} ({exc})", path) from None


class Validator:
    """Checks JSON values against one schema document."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def validate(self, value: Any, path: str = "") -> None:
        """Raise ``RecordError`` naming the first path where ``value`` breaks the schema."""
        self._check(self.schema, value, path)

    def formatted(self, value: Any, fmt: str, path: str = "") -> Iterator[tuple[str, str]]:
        """Yield ``(path, string)`` for every string of ``value`` the schema gives format
        ``fmt`` (e.g. every ``date-time``); ``value`` must have passed ``validate``."""
        yield from _formatted(self.schema, value, fmt, path)

    def _check(self, schema: dict[str, Any], value: Any, path: str) -> None:
        where = path or "(record)"
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_is_type(value, t) for t in types):
                raise RecordError(f"expected {' or '.join(types)}, got {_describe(value)}", where)
        if "const" in schema and not _same(value, schema["const"]):
            raise RecordError(f"must be {schema['const']!r}, got {_short(value)}", where)
        if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
            raise RecordError(f"{_short(value)} is not one of {schema['enum']}", where)
        if isinstance(value, str):
            self._check_string(schema, value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                raise RecordError(f"{value} is below the minimum {schema['minimum']}", where)
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                raise RecordError(f"{value} must exceed {schema['exclusiveMinimum']}", where)
            if "maximum" in schema and value > schema["maximum"]:
                raise RecordError(f"{value} is above the maximum {schema['maximum']}", where)
        elif isinstance(value, dict):
            self._check_object(schema, value, path)
        elif isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                raise RecordError(f"needs at least {schema['minItems']} items", where)
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                raise RecordError(f"has {len(value)} items, at most {schema['maxItems']}", where)
            if "items" in schema:
                for i, item in enumerate(value):
                    self._check(schema["items"], item, f"{path}[{i}]")

    def _check_string(self, schema: dict[str, Any], value: str, where: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise RecordError(f"shorter than {schema['minLength']} characters", where)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise RecordError(f"{len(value)} characters, longer than {schema['maxLength']}", where)
        if "pattern" in schema and not _pattern(schema["pattern"]).fullmatch(value):
            raise RecordError(f"{value[:80]!r} does not match {schema['pattern']}", where)
        if "format" in schema:
            _check_format(value, schema["format"], where)

    def _check_object(self, schema: dict[str, Any], value: dict[str, Any], path: str) -> None:
        prefix = f"{path}." if path else ""
        props: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise RecordError("required field is missing", prefix + name)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise RecordError(
                f"{len(value)} entries, at most {schema['maxProperties']}", path or "(record)"
            )
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if "propertyNames" in schema:
                self._check(schema["propertyNames"], name, f"{prefix}{name} (name)")
            if name in props:
                self._check(props[name], item, prefix + name)
            elif extra is False:
                raise RecordError("unknown field", prefix + name)
            elif isinstance(extra, dict):
                self._check(extra, item, prefix + name)


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
