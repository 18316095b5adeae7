"""Canonical JSON for what we sign: the bytes are the same on every machine.

``canonical_json`` is RFC 8785 (JCS), through the ``rfc8785`` package: what record format
``v: 2`` signs and what a fleet operator's own JCS library reproduces. ``canonical_json_v1``
is the form format ``v: 1`` records were signed in (it wrote some numbers differently, e.g.
``4.8e-06`` as ``0.000005``); it is kept, unchanged, only to check those records.
"""

from __future__ import annotations

import math
from json.encoder import encode_basestring
from typing import Any

import rfc8785


class CanonicalJsonError(ValueError):
    """The value cannot be expressed in canonical JSON (NaN, infinity, a non-string key...)."""


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 JSON bytes of ``value`` (dicts, lists, str, numbers).

    Refused with ``CanonicalJsonError``: NaN and infinities, integers outside ±(2**53 - 1)
    (RFC 8785 numbers are IEEE 754 doubles), strings that are not valid Unicode (lone
    surrogates), non-string keys and anything that is not a JSON type.
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalJsonError(str(exc)) from None
    except RecursionError:
        raise CanonicalJsonError("nested too deeply") from None


def _number_v1(value: float) -> str:
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


def _encode_v1(value: Any, out: list[str]) -> None:
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
        out.append(_number_v1(value))
    elif isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise CanonicalJsonError("object keys must be strings")
        if all(key.isascii() for key in value):
            keys = sorted(value)
        else:
            keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(encode_basestring(key))
            out.append(":")
            _encode_v1(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode_v1(item, out)
        out.append("]")
    else:
        raise CanonicalJsonError(f"{type(value).__name__} is not a JSON type")


def canonical_json_v1(value: Any) -> bytes:
    """Return the bytes record format ``v: 1`` signed for ``value`` (legacy: read, not write).

    Differs from RFC 8785 only in numbers: a float of magnitude 1e-7..1e-4 is written with six
    decimals (``4.8e-06`` as ``0.000005``), an integral float from 2**53 to 1e21 with its exact
    digits instead of the shortest ones, and integers of any size are written.
    """
    out: list[str] = []
    try:
        _encode_v1(value, out)
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJsonError("a string is not valid Unicode (a lone surrogate)") from None
    except RecursionError:
        raise CanonicalJsonError("nested too deeply") from None
