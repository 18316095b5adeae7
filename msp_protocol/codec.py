"""Convert between the protocol's frozen dataclasses and plain JSON values, both directions.

``from_json`` trusts its input's shape: callers validate against the shipped schema first
(``msp_protocol.records`` does), so this module only maps names and containers.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner, value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_json(tp, value)
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        return tuple(_convert(inner, item) for item in value)
    if origin in (dict, Mapping):
        (_, inner) = typing.get_args(tp)
        return {key: _convert(inner, item) for key, item in value.items()}
    if tp is float:
        return float(value)
    if tp is int:
        return int(value)
    return value


def from_json(cls: type[T], value: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from a schema-valid JSON object (field names = JSON keys)."""
    hints = _hints(cls)  # type: ignore[arg-type]  # a class is hashable; mypy reads type[T] as not
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    return cls(**{f.name: _convert(hints[f.name], value[f.name]) for f in fields})


def to_json(value: Any) -> Any:
    """Return the plain JSON value (dicts, lists, str, numbers, bool, None) of ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value
