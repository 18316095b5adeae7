"""Total, bounded JSON parsing of untrusted bytes: whatever arrives, a value or a ProtocolError.

``json.loads`` alone is not total: deep nesting raises ``RecursionError``, a 5,000-digit
integer ``ValueError`` (Python's int digit limit), ``1e999`` becomes infinity, duplicate keys
silently keep the last value and bytes may be read as UTF-16 or UTF-32. ``loads_strict``
refuses each of these explicitly, before or while parsing, and raises only the
``ProtocolError`` subclass its caller names (``RecordError`` for payloads, ``SignatureError``
for JWS headers), with ``field`` set to what the caller says is being parsed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from .errors import ProtocolError

#: Deepest nesting of arrays and objects accepted (a record needs 6).
MAX_JSON_DEPTH: Final = 32
#: Longest number literal accepted, in characters (sign, digits, point and exponent included).
MAX_NUMBER_CHARS: Final = 40
#: Largest integer magnitude kept as an ``int``: JSON numbers are IEEE 754 doubles (RFC 8785,
#: I-JSON), which hold every integer up to this exactly.
MAX_SAFE_INTEGER: Final = 2**53 - 1

# One JSON string (or an unterminated one, up to the end: the parser refuses it later) or one
# bracket. Unrolled so that it runs in linear time on any input, terminated or not.
_TOKENS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPENERS: Final = frozenset("[{")
_CLOSERS: Final = frozenset("]}")


class _RefusedError(Exception):
    """Raised inside the json hooks; turned into the caller's error class at the boundary."""


def nesting_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Return the bracket nesting depth of JSON ``text`` (strings skipped), stopping past
    ``limit``: a result above ``limit`` means "too deep", whatever the rest holds."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        lexeme = match.group()
        if lexeme in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif lexeme in _CLOSERS:
            depth -= 1
    return deepest


def _int(literal: str) -> int | float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RefusedError(f"a {len(literal)}-character number, at most {MAX_NUMBER_CHARS}")
    value = int(literal)
    if abs(value) <= MAX_SAFE_INTEGER:
        return value
    # Beyond 2**53 an integer literal is a double written without a point (RFC 8785 writes
    # 1e20 as 100000000000000000000): read it as the nearest double, as JSON parsers do.
    return float(value)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RefusedError(f"a {len(literal)}-character number, at most {MAX_NUMBER_CHARS}")
    value = float(literal)
    if not math.isfinite(value):
        raise _RefusedError(f"{literal} is out of the range of a double")
    return value


def _constant(name: str) -> Any:
    raise _RefusedError(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RefusedError(f"duplicate key {key[:80]!r}")
            seen.add(key)
    return result


def loads_strict(data: bytes | str, field: str, error: type[ProtocolError]) -> Any:
    """Parse UTF-8 JSON strictly; raise ``error(message, field)`` for anything refused.

    Refused: bytes that are not UTF-8 (no BOM, no UTF-16/32 guessing), text that is not one
    JSON value, nesting deeper than ``MAX_JSON_DEPTH``, number literals longer than
    ``MAX_NUMBER_CHARS`` or outside a double's range, ``NaN``/``Infinity``, duplicate keys.
    An integer literal beyond ``MAX_SAFE_INTEGER`` comes back as the nearest ``float`` (what
    it means in RFC 8785), so a canonical payload re-encodes to its own bytes.
    Size is the caller's bound (check it before calling: parsing is linear in it).
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"not UTF-8 (byte {exc.start})", field) from None
    elif isinstance(data, str):
        text = data
    else:
        raise error(f"{type(data).__name__} is not JSON text", field)
    # Fewer opening brackets than the limit cannot nest past it: skip the scan (most records).
    few = text.count("[") + text.count("{") <= MAX_JSON_DEPTH
    if not few and nesting_depth(text) > MAX_JSON_DEPTH:
        raise error(f"nested deeper than {MAX_JSON_DEPTH} levels", field)
    try:
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
        )
    except _RefusedError as exc:
        raise error(str(exc), field) from None
    except json.JSONDecodeError as exc:
        raise error(f"not JSON: {exc.msg} at character {exc.pos}", field) from None
    except (RecursionError, ValueError) as exc:
        # Not reachable with the bounds above; kept so that a parser change cannot make a
        # hostile payload escape as anything but a refusal.
        raise error(f"not JSON: {type(exc).__name__}", field) from None
