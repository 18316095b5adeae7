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
from .tomlfile import show

#: A value parser: (key as the user gave it, raw value) → typed value.
Parser = Callable[[str, Any], Any]


def text(key: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty string, got {show(value)}")
    return value


def opt_text(key: str, value: Any) -> str | None:
    """A non-empty string, or None for an empty or absent value."""
    return None if value in (None, "") else text(key, value)


def path(key: str, value: Any) -> Path:
    """A path (not checked for existence here) without NUL characters."""
    if "\0" in text(key, value):
        raise ConfigError(f"{key}: a path cannot contain NUL characters, got {show(value)}")
    return Path(value)


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
    raise ConfigError(f"{key}: expected true or false, got {show(value)}")


def number(key: str, value: Any) -> float:
    """A finite number (a TOML number or its text)."""
    raw = value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {show(raw)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {show(raw)}")
    try:
        result = float(value)
    except OverflowError:  # an integer beyond any float
        result = math.inf
    if not math.isfinite(result):
        raise ConfigError(f"{key}: expected a finite number, got {show(raw)}")
    return result


def positive(key: str, value: Any) -> float:
    """A finite number above zero."""
    result = number(key, value)
    if result <= 0:
        raise ConfigError(f"{key}: expected a positive number, got {show(value)}")
    return result


def opt_positive(key: str, value: Any) -> float | None:
    """A positive number, or None for empty, absent or 0."""
    return None if value in (None, "", 0) else positive(key, value)


def count(key: str, value: Any) -> int:
    """A whole number above zero."""
    result = positive(key, value)
    if result != int(result):
        raise ConfigError(f"{key}: expected a whole number, got {show(value)}")
    return int(result)


def baud(key: str, value: Any) -> int | None:
    """A serial speed in baud, or ``"auto"`` (None: detect it)."""
    if value == "auto":
        return None
    return count(key, value)


def choice(choices: tuple[str, ...]) -> Parser:
    """A parser accepting exactly one of ``choices``."""
    def parse(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {show(value)}")
        return str(value)

    return parse


def pattern(regex: re.Pattern[str], what: str) -> Parser:
    """A parser accepting strings ``regex`` matches whole (a trailing newline included);
    errors say ``what`` was expected."""
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise ConfigError(f"{key}: expected {what}, got {show(value)}")
        return value

    return parse


def broker(key: str, value: Any) -> str:
    """An ``mqtts://HOST:PORT`` or ``mqtt://HOST:PORT`` URL (the port may be left out)."""
    try:
        url = urlsplit(text(key, value))
        ok = url.scheme in ("mqtt", "mqtts") and bool(url.hostname)
        url.port  # noqa: B018 - raises for a port that is not a number in 0-65535
    except ValueError as exc:  # e.g. "Invalid IPv6 URL", "Port out of range 0-65535"
        raise ConfigError(f"{key}: expected mqtts://HOST:PORT, got {show(value)} ({exc})") from None
    if not ok or url.port == 0:
        raise ConfigError(f"{key}: expected mqtts://HOST:PORT (or mqtt:// on loopback), "
                          f"got {show(value)}")  # fmt: skip
    return str(value)


def brokers(key: str, value: Any) -> tuple[str, ...]:
    """One broker URL (see :func:`broker`) or several: a TOML array, or one string with the
    URLs separated by commas (environment, ``--set``); the first is preferred, the others are
    failed over to, all with the same scheme."""
    if isinstance(value, str) and "," not in value:
        return (broker(key, value),)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"{key}: expected a broker URL or a list of them, got {show(value)}")
    urls = tuple(broker(f"{key}[{i}]", item.strip() if isinstance(item, str) else item)
                 for i, item in enumerate(items))  # fmt: skip
    if len({urlsplit(url).scheme for url in urls}) > 1:
        raise ConfigError(f"{key}: mixes mqtt:// and mqtts://, got {show(value)}")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{key}: names a broker twice, got {show(value)}")
    return urls


#: Every scalar key: its parser and default (``...`` = required). Tables and arrays
