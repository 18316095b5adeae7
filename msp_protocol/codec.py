"""Convert between the protocol's frozen dataclasses and plain JSON values, both directions.

``from_json`` trusts its input's shape: callers validate against the shipped schema first
(``msp_protocol.records`` does), so this module only maps names and containers.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any) -> Any:
    return _converter(tp)(value)


def _identity(value: Any) -> Any:
    return value


@cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """The function turning a JSON value into a value of type ``tp``, made once per type (the
    typing introspection is the expensive part; ingest converts every record body)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        convert = _converter(inner)
        return lambda value: None if value is None else convert(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        cls = tp
        return lambda value: from_json(cls, value)
    if origin is tuple:
        (item_type, _) = typing.get_args(tp)
        item = _converter(item_type)
        return lambda value: tuple(item(v) for v in value)
    if origin in (dict, Mapping):
        (_, item_type) = typing.get_args(tp)
        item = _converter(item_type)
        return lambda value: {key: item(v) for key, v in value.items()}
    if tp is float:
        return float
    if tp is int:
        return int
    return _identity


@cache
def _plan(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = _hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def from_json(cls: type[T], value: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from a schema-valid JSON object (field names = JSON keys)."""
    plan = _plan(cls)  # type: ignore[arg-type]  # a class is hashable; mypy reads type[T] as not
    return cls(**{name: convert(value[name]) for name, convert in plan})


_SCALARS = frozenset({str, int, float, bool, type(None)})


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, ``None`` for any other type (made once a type)."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return None


def to_json(value: Any) -> Any:
    """Return the plain JSON value (dicts, lists, str, numbers, bool, None) of ``value``."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _field_names(kind)  # type: ignore[arg-type]  # a class is hashable
    if names is not None:
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value
