"""Signal maps: the TOML file that turns a vehicle's DBC signals into canonical samples.

Format (DESIGN.md, "Signal map")::

    dbc = "msp_demo.dbc"            # or a list; paths relative to the map
    [signals."Vehicle.Speed"]
    message = "VEHICLE_SPEED"
    signal = "VehicleSpeed"
    unit = "km/h"
    invert = false
    values = { P = 0, R = -1 }      # optional: DBC value (VAL_ name or raw number) -> value

``dbc = "opendbc:NAME"`` names a DBC of the opendbc package, read at run time
(:mod:`edge_agent.vehicles.opendbc`).

Real DBC files are often not strictly valid in messages we never use, so DBCs load leniently
and only what the map uses is validated strictly; the rest is reported as warnings.
"""

from __future__ import annotations

import logging
import math
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
_TOP_KEYS = frozenset({"dbc", "vehicle_class", "bus", "signals"})


@dataclass(frozen=True, slots=True)
class SignalRule:
    """How one DBC signal becomes one canonical signal.

    All bounds are in the DBC's scaled units (before ``factor`` and ``invert``) and already
    widened by half a DBC step, so a rounding error is never out of bounds: ``minimum`` and
    ``maximum`` are the DBC's declared range (None when it declares none, or ``[0|0]``), a hint
    only; ``low`` and ``high`` are the canonical signal's physical range (DESIGN.md,
    "Plausibility"; infinite for bools).
    """

    canonical: str
    signal: str
    factor: float
    invert: bool
    is_bool: bool
    is_int: bool
    minimum: float | None
    maximum: float | None
    low: float = -math.inf
    high: float = math.inf
    #: ``values =``: DBC value (after scaling) → value in the map's unit; others are refused.
    values: dict[float, float] | None = None


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
    #: The bus (log channel or [[bus]] name) the map is for; None: every channel.
    bus: str | None = None

    @property
    def canonical_names(self) -> frozenset[str]:
        """Every canonical signal this map can produce."""
        return frozenset(r.canonical for m in self.messages.values() for r in m.rules)


def _load_dbc(map_path: Path, name: str, warnings: list[str]) -> Database:
    path: Path | str = map_path.parent / name
    text = None
    if name.startswith("opendbc:"):
        from .vehicles.opendbc import dbc_text  # noqa: PLC0415 (optional, read at run time)

        try:
            path, text = dbc_text(name)
        except ConfigError as exc:
            raise ConfigError(f"{map_path}: {exc}") from exc

    def load(strict: bool) -> object:
        if text is not None:
            return cantools.database.load_string(text, database_format="dbc", strict=strict)
        return cantools.database.load_file(str(path), strict=strict)

    try:
        found = text is not None or Path(path).is_file()  # not a directory, FIFO, /dev/zero
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it
        raise ConfigError(f"{map_path}: DBC file {show(str(path))}: {exc}") from None
    if not found:
        raise ConfigError(f"{map_path}: DBC file {path} not found")
    try:
        db = load(strict=False)
    except FileNotFoundError:
        raise ConfigError(f"{map_path}: DBC file {path} not found") from None
    except (UnsupportedDatabaseFormatError, ValueError, OSError) as exc:
        raise ConfigError(f"{map_path}: cannot parse DBC {path}: {exc}") from exc
    if not isinstance(db, Database):
        raise ConfigError(f"{map_path}: {path} is not a CAN database")
    try:
        load(strict=True)
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
        for message in _load_dbc(path, name, warnings).messages:
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
    bus = doc.get("bus")
    if bus is not None and (not isinstance(bus, str) or not bus.strip()):
        raise ConfigError(f"{path}: bus: expected the name of a bus or log channel, "
                          f"got {show(bus)}")  # fmt: skip
    for warning in warnings:
        log.warning("%s", warning)
    return SignalMap(path, messages, vehicle_class, tuple(warnings), bus)


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
    unknown = set(entry) - {"message", "signal", "unit", "invert", "values"}
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
    tolerance = abs(signal.scale) / 2
    declared = _declared_range(signal, tolerance)
    low, high = -math.inf, math.inf
    values = None
    if "values" in entry:
        if invert:
            raise ConfigError(f"{where}: 'values' and 'invert' do not go together")
        values = _values(entry["values"], signal, scale, spec.plausible, where)
    elif spec.plausible is not None:
        # value = raw * scale (negated when inverted): the canonical bounds in raw DBC units
        ends = [bound / (-scale if invert else scale) for bound in spec.plausible]
        low, high = min(ends) - tolerance, max(ends) + tolerance
        _warn_if_range_cannot_hold(where, message, signal, declared, tolerance)
    rule = SignalRule(
        canonical=canonical,
        signal=signal.name,
        factor=scale,
        invert=invert,
        is_bool=spec.kind == "bool",
        is_int=spec.kind == "int",
        minimum=None if declared is None else declared[0],
        maximum=None if declared is None else declared[1],
        low=low,
        high=high,
        values=values,
    )
    return message.name, rule


def _values(
    table: object, signal: Signal, scale: float, plausible: tuple[float, float] | None, where: str
) -> dict[float, float]:
    """``values = { NAME-or-number = value }`` → {DBC value: value in the map's unit}."""
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: 'values' must be a table such as {{ P = 0, R = -1 }}")
    names: dict[str, list[int]] = {}
    for raw_value, name in (signal.choices or {}).items():
        names.setdefault(str(name), []).append(raw_value)
    out: dict[float, float] = {}
    for key, value in table.items():
        if key in names:
            if len(names[key]) > 1:
                raise ConfigError(f"{where}: values.{key}: {signal.name} gives that name to "
                                  f"several values {names[key]}: use the numbers")
            raw = float(names[key][0])
        else:
            try:
                raw = float(key)
            except ValueError:
                known = ", ".join(sorted(names)) or "none"
                raise ConfigError(f"{where}: values.{key}: not a value name of "
                                  f"{signal.name} (known: {known}) nor a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: values.{key}: expected a number, got {value!r}")
        if plausible is not None and not plausible[0] <= value * scale <= plausible[1]:
            raise ConfigError(f"{where}: values.{key} = {value} is not plausible "
                              f"({plausible[0]:g}..{plausible[1]:g})")
        out[raw * signal.scale + signal.offset if key in names else raw] = float(value)
    return out


def _declared_range(signal: Signal, tolerance: float) -> tuple[float, float] | None:
    """The DBC's ``[min|max]`` widened by ``tolerance``; None for none or ``[0|0]``."""
    low = -math.inf if signal.minimum is None else float(signal.minimum)
    high = math.inf if signal.maximum is None else float(signal.maximum)
    if (low, high) in ((-math.inf, math.inf), (0.0, 0.0)):
        return None
    return low - tolerance, high + tolerance


def _layout_range(signal: Signal) -> tuple[float, float] | None:
    """The scaled values the signal's bit layout and offset can produce; None for floats."""
    if signal.is_float:
        return None
    if signal.is_signed:
        raws = (-(2 ** (signal.length - 1)), 2 ** (signal.length - 1) - 1)
    else:
        raws = (0, 2**signal.length - 1)
    ends = [raw * signal.scale + signal.offset for raw in raws]
    return min(ends), max(ends)


def _warn_if_range_cannot_hold(
    where: str,
    message: Message,
    signal: Signal,
    declared: tuple[float, float] | None,
    tolerance: float,
) -> None:
    """Warn when the declared range shuts out a sign (or all) of what the layout produces.

    Real DBCs declare ``[0|65535]`` on signed, offset signals: every negative value would
    look out of range. Such values are kept (the range is a hint); the warning says why the
    report's ``outside_dbc_range`` counter will climb.
    """
    layout = _layout_range(signal)
    if declared is None or layout is None:
        return
    (d_low, d_high), (l_low, l_high) = declared, layout
    no_overlap = d_high < l_low or d_low > l_high
    no_negatives = l_low < -tolerance and d_low >= -tolerance
    no_positives = l_high > tolerance and d_high <= tolerance
    if no_overlap or no_negatives or no_positives:
        log.warning(
            "%s: DBC declares %s.%s [%s|%s] but its layout gives %s..%s; values outside the "
            "declared range are kept and counted as outside_dbc_range",
            where,
            message.name,
            signal.name,
            signal.minimum,
            signal.maximum,
            f"{l_low:g}",
            f"{l_high:g}",
        )
