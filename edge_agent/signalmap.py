"""Signal maps: the TOML file that turns a vehicle's DBC signals into canonical samples.

Format (DESIGN.md, "Signal map")::

    dbc = "msp_demo.dbc"            # or a list; paths relative to the map
    [signals."Vehicle.Speed"]
    message = "VEHICLE_SPEED"
    signal = "VehicleSpeed"
    unit = "km/h"
    invert = false

Real DBC files are often not strictly valid in messages we never use, so DBCs load leniently
and only what the map uses is validated strictly; the rest is reported as warnings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Database, Message, Signal
from cantools.database.errors import UnsupportedDatabaseFormatError

from .errors import ConfigError
from .scoring.config import CLASS_DEFAULTS
from .signals import CANONICAL
from .tomlfile import load_toml, show
from .units import dimension, factor

log = logging.getLogger(__name__)

#: The keys a map may have at its top level.
_TOP_KEYS = frozenset({"dbc", "vehicle_class", "signals"})


@dataclass(frozen=True, slots=True)
class SignalRule:
    """How one DBC signal becomes one canonical signal."""

    canonical: str
    signal: str
    factor: float
    invert: bool
    is_bool: bool
    is_int: bool
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True, slots=True)
class MessageRule:
    """A DBC message the map uses and the canonical signals it carries."""

    message: Message
    rules: tuple[SignalRule, ...]


@dataclass(frozen=True, slots=True)
class SignalMap:
    """A loaded, validated signal map: arbitration ID → what to decode from it."""

    path: Path
    messages: dict[int, MessageRule]
    vehicle_class: str | None
    warnings: tuple[str, ...]

    @property
    def canonical_names(self) -> frozenset[str]:
        """Every canonical signal this map can produce."""
        return frozenset(r.canonical for m in self.messages.values() for r in m.rules)


def _load_dbc(map_path: Path, path: Path, warnings: list[str]) -> Database:
    try:
        found = path.is_file()  # not a directory, a FIFO or /dev/zero
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it
        raise ConfigError(f"{map_path}: DBC file {show(str(path))}: {exc}") from None
    if not found:
        raise ConfigError(f"{map_path}: DBC file {path} not found")
    try:
        db = cantools.database.load_file(str(path), strict=False)
    except FileNotFoundError:
        raise ConfigError(f"{map_path}: DBC file {path} not found") from None
    except (UnsupportedDatabaseFormatError, ValueError, OSError) as exc:
        raise ConfigError(f"{map_path}: cannot parse DBC {path}: {exc}") from exc
    if not isinstance(db, Database):
        raise ConfigError(f"{map_path}: {path} is not a CAN database")
    try:
        cantools.database.load_file(str(path), strict=True)
    except (UnsupportedDatabaseFormatError, ValueError) as exc:
        warnings.append(f"{path}: not strictly valid (only mapped messages are checked): {exc}")
    return db


def _bits(signal: Signal) -> set[int]:
    """Bit positions (byte*8 + bit, LSB 0) a signal occupies."""
    if signal.byte_order == "little_endian":
        return set(range(signal.start, signal.start + signal.length))
    bits, pos = set(), signal.start
    for _ in range(signal.length):
        bits.add(pos)
        pos = pos - 1 if pos % 8 else pos + 15
    return bits


def _check_message(message: Message, used: set[str], where: str) -> None:
    """Strict checks on a message the map uses: used signals fit and do not overlap."""
    seen: dict[int, str] = {}
    for signal in message.signals:
        bits = _bits(signal)
        if signal.name in used and (min(bits) < 0 or max(bits) >= 8 * message.length):
            raise ConfigError(
                f"{where}: signal {signal.name!r} does not fit in message "
                f"{message.name!r} ({message.length} bytes)"
            )
        if signal.multiplexer_ids:
            continue  # multiplexed signals legitimately share bits
        for bit in bits:
            other = seen.setdefault(bit, signal.name)
            if other != signal.name and (signal.name in used or other in used):
                raise ConfigError(
                    f"{where}: signals {other!r} and {signal.name!r} of message "
                    f"{message.name!r} overlap"
                )


def load_signal_map(path: str | Path) -> SignalMap:
    """Load and validate a signal map and its DBC file(s).

    Raises ConfigError naming the file and the entry for: unreadable TOML, a DBC that is
    missing or does not parse, a canonical name we do not know, a message or signal absent
    from the DBCs, a unit we do not know or that does not fit the canonical signal.
    """
    path = Path(path)
    doc = load_toml(path, "signal map")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {show(unknown[0])[1:-1]}: unknown key (known at the top: "
                          f"{', '.join(sorted(_TOP_KEYS))}; see docs/signal-maps.md)")  # fmt: skip

    dbc_entry = doc.get("dbc")
    dbc_names = [dbc_entry] if isinstance(dbc_entry, str) else dbc_entry
    if not dbc_names or not all(isinstance(n, str) for n in dbc_names):
        raise ConfigError(f"{path}: 'dbc' must name a DBC file or a list of them")
    dbc_names = list(dict.fromkeys(dbc_names))
    warnings: list[str] = []
    by_name: dict[str, Message] = {}
    for name in dbc_names:
        for message in _load_dbc(path, path.parent / name, warnings).messages:
            by_name.setdefault(message.name, message)

    signals = doc.get("signals")
    if not isinstance(signals, dict) or not signals:
        raise ConfigError(f'{path}: no [signals."..."] entries')
    grouped: dict[str, list[SignalRule]] = {}
    for canonical, entry in signals.items():
        where = f"{path}: [signals.{show(canonical)}]"
        message_name, rule = _rule(canonical, entry, by_name, where, dbc_names)
        grouped.setdefault(message_name, []).append(rule)

    messages: dict[int, MessageRule] = {}
    for message_name, rules in grouped.items():
        message = by_name[message_name]
        _check_message(message, {r.signal for r in rules}, f"{path}: message {message_name!r}")
        messages[message.frame_id] = MessageRule(message, tuple(rules))
    vehicle_class = doc.get("vehicle_class")
    if vehicle_class is not None and vehicle_class not in CLASS_DEFAULTS:
        raise ConfigError(f"{path}: vehicle_class: expected one of {', '.join(CLASS_DEFAULTS)}, "
                          f"got {show(vehicle_class)}")  # fmt: skip
    for warning in warnings:
        log.warning("%s", warning)
    return SignalMap(path, messages, vehicle_class, tuple(warnings))


def _rule(
    canonical: str, entry: object, by_name: dict[str, Message], where: str, dbcs: list[str]
) -> tuple[str, SignalRule]:
    """Validate one map entry; return its message name and its rule."""
    spec = CANONICAL.get(canonical)
    if spec is None:
        raise ConfigError(f"{where}: not a canonical signal name (see docs/signal-maps.md)")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table with message, signal and unit")
    for key in ("message", "signal", "unit"):
        if not isinstance(entry.get(key), str):
            raise ConfigError(f"{where}: '{key}' is missing or not a string")
    unknown = set(entry) - {"message", "signal", "unit", "invert"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    message = by_name.get(entry["message"])
    if message is None:
        raise ConfigError(f"{where}: message {show(entry['message'])} is not in {', '.join(dbcs)}")
    try:
        signal = message.get_signal_by_name(entry["signal"])
    except KeyError:
        raise ConfigError(
            f"{where}: signal {show(entry['signal'])} is not in message {show(entry['message'])}"
        ) from None
    invert = entry.get("invert", False)
    if not isinstance(invert, bool):
        raise ConfigError(f"{where}: 'invert' must be true or false")
    try:
        dimension(entry["unit"])
        scale = factor(entry["unit"], spec.unit)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    rule = SignalRule(
        canonical=canonical,
        signal=signal.name,
        factor=scale,
        invert=invert,
        is_bool=spec.kind == "bool",
        is_int=spec.kind == "int",
        minimum=None if signal.minimum is None else float(signal.minimum),
        maximum=None if signal.maximum is None else float(signal.maximum),
    )
    return message.name, rule
