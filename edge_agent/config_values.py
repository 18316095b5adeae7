"""Value parsers of the agent configuration: each takes the key (as the user wrote it:
file key, ``MSP_`` variable or ``--set``) and a raw value, and returns the typed value or
raises ConfigError naming the key and what was expected.

File values arrive typed by TOML; environment and command-line values arrive as strings,
so every parser accepts both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

#: A value parser: (key as the user gave it, raw value) → typed value.
Parser = Callable[[str, Any], Any]


def text(key: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def opt_text(key: str, value: Any) -> str | None:
    """A non-empty string, or None for an empty or absent value."""
    return None if value in (None, "") else text(key, value)


def path(key: str, value: Any) -> Path:
    """A path (not checked for existence here)."""
    return Path(text(key, value))


def opt_path(key: str, value: Any) -> Path | None:
    """A path, or None for an empty or absent value."""
    return None if value in (None, "") else path(key, value)


def flag(key: str, value: Any) -> bool:
    """true/false (TOML), or true|yes|1|on / false|no|0|off (strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def number(key: str, value: Any) -> float:
    """A finite number (a TOML number or its text)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def positive(key: str, value: Any) -> float:
    """A finite number above zero."""
    result = number(key, value)
    if result <= 0:
        raise ConfigError(f"{key}: expected a positive number, got {value!r}")
    return result


def opt_positive(key: str, value: Any) -> float | None:
    """A positive number, or None for empty, absent or 0."""
    return None if value in (None, "", 0) else positive(key, value)


def count(key: str, value: Any) -> int:
    """A whole number above zero."""
    result = positive(key, value)
    if result != int(result):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    return int(result)


def choice(choices: tuple[str, ...]) -> Parser:
    """A parser accepting exactly one of ``choices``."""
    def parse(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def pattern(regex: re.Pattern[str], what: str) -> Parser:
    """A parser accepting strings ``regex`` matches; errors say ``what`` was expected."""
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise ConfigError(f"{key}: expected {what}, got {value!r}")
        return value

    return parse


def broker(key: str, value: Any) -> str:
    """An ``mqtts://HOST:PORT`` or ``mqtt://HOST:PORT`` URL."""
    url = urlsplit(text(key, value))
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(f"{key}: expected mqtts://HOST:PORT (or mqtt:// on loopback), "
                          f"got {value!r}")  # fmt: skip
    return str(value)


#: Every scalar key: its parser and default (``...`` = required). Tables and arrays
