"""Reading the agent's TOML files (the configuration, signal maps) so that no content can
crash the reader: every refusal is a ConfigError naming the file, the line and, where the
line has one, the key.

Beyond :mod:`tomllib`, it refuses what TOML itself does not allow or the agent cannot use:
text that is not UTF-8, integers outside 64 bits (TOML's range; Python would take 5,000
digits, then fail converting them), arrays or tables nested deeper than :data:`MAX_DEPTH`
(Python's recursion limit would end the parse with a traceback), files over :data:`MAX_BYTES`.
"""

from __future__ import annotations

import re
import reprlib
import tomllib
from pathlib import Path
from typing import Any, Final

from .errors import ConfigError

#: Largest file read: configurations and signal maps are a few kilobytes.
MAX_BYTES: Final = 1 << 20
#: Deepest nesting of arrays and tables accepted (the agent's files use three).
MAX_DEPTH: Final = 32
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 63) - 1
_KEY = re.compile(r"\s*([^=#\[\s][^=#]*?)\s*=")
_TABLE = re.compile(r"\s*\[\[?\s*([^\]#]+?)\s*\]\]?\s*(#.*)?$")
_LONG_INT = re.compile(r"[0-9][0-9_]{4299,}")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlong = 40


def show(value: object) -> str:
    """``repr(value)`` cut to a readable length (error messages quote what the user wrote)."""
    try:
        return _short.repr(value)
    except ValueError:  # an integer beyond Python's digit limit for str()
        return f"<an integer of {value.bit_length() if isinstance(value, int) else '?'} bits>"


def load_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML document in ``path``; ``what`` names the file's role in messages
    ("configuration", "signal map"). Raises ConfigError naming the file and the place."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:  # a directory, no permission, a name too long
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the name
        raise ConfigError(f"{show(str(path))}: cannot read {what}: {exc}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // 1024} KiB: not a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = _where(data.decode("utf-8", "replace").splitlines(), line)
        raise ConfigError(f"{path}: {where}: not UTF-8 text (byte {data[exc.start]:#04x}); "
                          "TOML files are UTF-8") from None  # fmt: skip
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        where = _where(text.splitlines(), _deep_line(text))
        raise ConfigError(f"{path}: {where}: arrays or tables nested too deeply (at most "
                          f"{MAX_DEPTH} levels)") from None  # fmt: skip
    except ValueError as exc:  # Python's limit on integer digits
        long_int = _LONG_INT.search(text)
        if long_int is None:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        where = _where(text.splitlines(), text.count("\n", 0, long_int.start()) + 1)
        raise ConfigError(f"{path}: {where}: an integer of {len(long_int.group())} digits; "
                          "TOML integers are 64-bit") from None  # fmt: skip
    _check_values(path, document)
    return document


def _check_values(path: Path, document: dict[str, Any]) -> None:
    """Refuse integers outside 64 bits and nesting beyond :data:`MAX_DEPTH`, naming the key."""
    stack: list[tuple[object, str, int]] = [(document, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: {key}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{key}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
            raise ConfigError(f"{path}: {key}: integer out of range ({value.bit_length()} "
                              "bits; TOML integers are 64-bit)")  # fmt: skip


def _where(lines: list[str], line: int | None) -> str:
    """``line N (table.key)``: the line, and the key it sets under the table it is in."""
    if line is None:
        return "somewhere"
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    key = _KEY.match(text)
    table = next((m.group(1) for m in map(_TABLE.match, reversed(lines[: line - 1])) if m), "")
    if key is None:
        return f"line {line}"
    name = f"{table}.{key.group(1)}" if table else key.group(1)
    return f"line {line} ({show(name)[1:-1]})"


def _deep_line(text: str) -> int | None:
    """The line where brackets first nest deeper than :data:`MAX_DEPTH` (strings and comments
    skipped roughly: this only points at the place)."""
    depth, quote, comment = 0, "", False
    for pos, char in enumerate(text):
        if comment:
            comment = char != "\n"
        elif quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, pos) + 1
        elif char in "]}":
            depth -= 1
    return None
