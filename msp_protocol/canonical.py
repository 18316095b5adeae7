"""Canonical JSON for what we sign: the bytes are the same on every machine.

``canonical_json`` is RFC 8785 (JCS): what record format ``v: 2`` signs and what a fleet
operator's own JCS library reproduces. It takes JSON values and the protocol's dataclasses
(field names are the keys) and writes them in one pass: one walk puts every object's keys in
RFC 8785 order and every number in its RFC 8785 form, and the standard library's C encoder
writes the result. Numbers that walk does not spell the way RFC 8785 does (magnitudes below
1e-4 or from 2**53 up, NaN, infinities), keys that are not ASCII, and any value it does not
know go to the reference implementation, the ``rfc8785`` package, which also gives every
refusal. A property test checks the two write the same bytes.

``canonical_json_v1`` is the form format ``v: 1`` records were signed in (it wrote some
numbers differently, e.g. ``4.8e-06`` as ``0.000005``); it is kept, unchanged, only to check
those records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from typing import Any, Final

import rfc8785


class CanonicalJsonError(ValueError):
    """The value cannot be expressed in canonical JSON (NaN, infinity, a non-string key...)."""


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 JSON bytes of ``value``: dicts, lists, tuples, str,
    numbers, bool, None and dataclass instances (written as objects of their fields).

    Refused with ``CanonicalJsonError``: NaN and infinities, integers outside ±(2**53 - 1)
    (RFC 8785 numbers are IEEE 754 doubles), strings that are not valid Unicode (lone
    surrogates), non-string keys and anything that is not a JSON type.
    """
    try:
        write = _WRITERS.get(type(value))
        if write is not None:
            text = write(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            text = _writer(type(value))(value)
        else:
            text = _ENCODE(_prepare(value))
        return text.encode("utf-8")
    except (_Slow, TypeError, ValueError, AttributeError, RecursionError):
        pass  # the reference implementation writes it or says why it cannot be written
    try:
        return rfc8785.dumps(_plain(value))
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalJsonError(str(exc)) from None
    except UnicodeEncodeError:  # rfc8785 sorts keys by UTF-16 without surrogatepass
        raise CanonicalJsonError("a key is not valid Unicode (a lone surrogate)") from None
    except RecursionError:
        raise CanonicalJsonError("nested too deeply") from None


#: The C encoder of the standard library, writing objects in the order they come: the
#: separators, string escapes (only ``"``, ``\\`` and control characters, in lowercase hex)
#: and literals are RFC 8785's.
_ENCODE: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode
#: The C string writer of the same encoder (``"..."`` with those escapes).
_STRING: Final[Callable[[str], str]] = encode_basestring
#: Integers RFC 8785 can write (a double holds them exactly).
_SAFE: Final = 2**53 - 1
#: From this magnitude on Python writes a float without an exponent, as RFC 8785 does...
_SMALL: Final = 1e-4
#: ...up to here (every float beyond is an integer, written by RFC 8785 in shortest digits).
_LARGE: Final = 2.0**53


class _Slow(Exception):  # noqa: N818 - internal signal, never leaves this module
    """A value the fast walk leaves to the reference implementation."""


Writer = Callable[[Any], str]


def _number(value: float) -> float | int:
    """The float, or the int, that the C encoder writes as RFC 8785 writes ``value``.

    From 1e-4 to 2**53 Python's ``repr`` (the encoder's) and ECMAScript's number to string
    agree on the shortest digits and both write them without an exponent; an integral float
    is written as the integer (``100``, not ``100.0``). Everything else is the slow path's.
    """
    if _SMALL <= abs(value) < _LARGE:
        return int(value) if value.is_integer() else value
    if value == 0:
        return 0
    raise _Slow


def _prepare_dict(value: Mapping[Any, Any]) -> dict[str, Any]:
    keys = list(value)
    if not "".join(keys).isascii():  # TypeError for a non-string key: the slow path's
        raise _Slow  # UTF-16 order differs from code point order beyond the BMP
    keys.sort()
    return {key: _prepare(value[key]) for key in keys}


def _prepare_list(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [_prepare(item) for item in value]


def _prepare_int(value: int) -> int:
    if -_SAFE <= value <= _SAFE:
        return value
    raise _Slow


def _same_value(value: Any) -> Any:
    return value


#: How the walk treats each exact type (a subclass, e.g. an ``IntEnum``, is not in here).
_PREPARE: Final[dict[type, Callable[[Any], Any]]] = {
    str: _same_value, bool: _same_value, type(None): _same_value, float: _number,
    int: _prepare_int, dict: _prepare_dict, list: _prepare_list, tuple: _prepare_list,
}  # fmt: skip


def _prepare(value: Any) -> Any:
    """``value`` as the JSON value the C encoder writes in RFC 8785 form (see the module)."""
    step = _PREPARE.get(type(value))
    if step is not None:
        return step(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _prepare_dict({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return _prepare_dict(value)
    raise _Slow


def _any(value: Any) -> str:
    """Write any value (the writers' fallback for a type its field does not declare)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _writer(type(value))(value)
    return _ENCODE(_prepare(value))


def _float(value: Any) -> str:
    if type(value) is float:
        if _SMALL <= abs(value) < _LARGE:
            return str(int(value)) if value.is_integer() else repr(value)
        if value == 0:
            return "0"
        raise _Slow
    return _any(value)


def _int(value: Any) -> str:
    if type(value) is int and -_SAFE <= value <= _SAFE:
        return str(value)
    return _any(value)


def _str(value: Any) -> str:
    return _STRING(value) if type(value) is str else _any(value)


def _optional(inner: Writer) -> Writer:
    def write(value: Any) -> str:
        return "null" if value is None else inner(value)

    return write


def _one_of(classes: tuple[type, ...]) -> Writer:
    table = {cls: _writer(cls) for cls in classes}

    def write(value: Any) -> str:
        found = table.get(type(value))
        return found(value) if found is not None else _any(value)

    return write


def _array(inner: Writer) -> Writer:
    def write(value: Any) -> str:
        if type(value) is not tuple and type(value) is not list:
            return _any(value)
        return "[" + ",".join([inner(item) for item in value]) + "]"

    return write


def _object(inner: Writer) -> Writer:
    def write(value: Any) -> str:
        keys = list(value)
        if not "".join(keys).isascii():
            raise _Slow
        keys.sort()
        return "{" + ",".join([_STRING(key) + ":" + inner(value[key]) for key in keys]) + "}"

    return write


def _for_hint(hint: Any) -> Writer:
    """The writer of a field declared ``hint``; a value of another type goes to ``_any``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) == 1:
            inner = _for_hint(rest[0])
        elif all(dataclasses.is_dataclass(a) for a in rest):
            inner = _one_of(rest)
        else:
            inner = _any
        return _optional(inner) if len(rest) < len(args) else inner
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _writer(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _array(_for_hint(args[0]))
    if origin in (dict, Mapping) and args and args[0] is str:
        return _object(_for_hint(args[1]))
    return {float: _float, int: _int, str: _str}.get(hint, _any)


#: The writer of each dataclass met so far (see ``_writer``).
_WRITERS: Final[dict[type, Writer]] = {}


def _writer(cls: type) -> Writer:
    """The writer of dataclass ``cls``: its fields in RFC 8785 key order, each by the writer of
    its declared type, built once per class.

    The writer is generated source, as ``dataclasses`` makes ``__init__``: one expression
    concatenating the keys (constants) and each field's writer called on the attribute. The
    source holds only the field names (identifiers) and their keys as Python literals; it
    runs about a third faster than a loop over the fields.
    """
    found = _WRITERS.get(cls)
    if found is not None:
        return found
    names = sorted(f.name for f in dataclasses.fields(cls))
    if not all(name.isidentifier() and name.isascii() for name in names):
        _WRITERS[cls] = _any_dataclass  # UTF-16 key order: the slow path's
        return _any_dataclass
    namespace: dict[str, Any] = {"_cls": cls, "_any": _any}

    def placeholder(value: Any) -> str:  # until it is made: a class that contains itself
        return namespace["write"](value)  # type: ignore[no-any-return]

    _WRITERS[cls] = placeholder
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        hints = {}
    parts = []
    for i, name in enumerate(names):
        namespace[f"_w{i}"] = _for_hint(hints[name]) if name in hints else _any
        key = ("{" if i == 0 else ",") + _STRING(name) + ":"
        parts += [repr(key), f"_w{i}(value.{name})"]
    parts.append(repr("}" if names else "{}"))
    source = (
        "def write(value):\n"
        "    if type(value) is not _cls:\n"
        "        return _any(value)\n"
        f"    return ''.join(({', '.join(parts)},))\n"
    )
    exec(source, namespace)  # noqa: S102 - source made above from field names only
    _WRITERS[cls] = write = namespace["write"]
    return write  # type: ignore[no-any-return]


def _any_dataclass(value: Any) -> str:
    return _ENCODE(_prepare(value))


def _plain(value: Any) -> Any:
    """``value`` with dataclasses and mappings as dicts, for the reference encoder."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


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
    """Return the bytes record format ``v: 1`` signed for ``value`` (legacy: read, not write);
    a dataclass is written as the object of its fields.

    Differs from RFC 8785 only in numbers: a float of magnitude 1e-7..1e-4 is written with six
    decimals (``4.8e-06`` as ``0.000005``), an integral float from 2**53 to 1e21 with its exact
    digits instead of the shortest ones, and integers of any size are written.
    """
    out: list[str] = []
    try:
        _encode_v1(_plain(value), out)
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJsonError("a string is not valid Unicode (a lone surrogate)") from None
    except RecursionError:
        raise CanonicalJsonError("nested too deeply") from None
