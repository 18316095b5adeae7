"""Canonical JSON (RFC 8785, JCS) for what we sign: the bytes are the same on every machine."""

from __future__ import annotations

import math
from json.encoder import encode_basestring
from typing import Any


class CanonicalJsonError(ValueError):
    """The value cannot be expressed in canonical JSON (NaN, infinity, a non-string key...)."""


def _number(value: float) -> str:
    # RFC 8785 §3.2.2.3: ECMAScript Number.prototype.toString.
    if not math.isfinite(value):
        raise CanonicalJsonError(f"{value!r} has no JSON form")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    exp = int(exponent)
    if -7 < exp < 21:
        return format(value, "f").rstrip("0").rstrip(".")
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _encode(value: Any, out: list[str]) -> None:
    # encode_basestring is what json.dumps(ensure_ascii=False) uses for strings, minus its
    # per-call overhead; its escapes are RFC 8785's (\", \\, \b\f\n\r\t, \u00xx).
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise CanonicalJsonError("object keys must be strings")
        # Keys sort by their UTF-16 code units (RFC 8785 §3.2.3).
        # For ASCII keys (all of ours) UTF-16 order is plain string order: skip the encoding.
        if all(key.isascii() for key in value):
            keys = sorted(value)
        else:
            keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(encode_basestring(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise CanonicalJsonError(f"{type(value).__name__} is not a JSON type")


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 JSON bytes of ``value`` (dicts, lists, str, numbers)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
