"""DBC decoding: frames of mapped messages → canonical samples, bad frames counted not fatal."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import bitstruct  # type: ignore[import-untyped]  # cantools uses it (untyped)
import cantools
from cantools.database.conversion import (
    IdentityConversion,
    LinearConversion,
    LinearIntegerConversion,
)

from .frames import Frame
from .ratelimit import RateLimitedLog
from .samples import Sample, Value
from .signalmap import MessageRule, SignalMap
from .signals import CANONICAL

log = logging.getLogger(__name__)

#: How a field's unpacked value becomes the DBC's scaled value (what cantools returns).
_AS_IS, _LINEAR, _METHOD = 0, 1, 2
#: Conversions whose ``raw_to_scaled(raw, False)`` is exactly ``raw * scale + offset``.
_LINEAR_TYPES = (LinearConversion, LinearIntegerConversion)


class _Field(NamedTuple):
    """One mapped signal, compiled once: a tuple, unpacked in one step on the hot path."""

    signal: str
    how: int
    scale: float
    offset: float
    convert: Callable[[Any, bool], Any] | None
    #: ``values =`` of the map, or None
    values: dict[float, float] | None
    #: the canonical range in DBC units (the map's ``low``/``high``): outside is implausible
    low: float
    high: float
    #: the DBC's declared range (-inf/inf when it declares none): outside is only counted
    minimum: float
    maximum: float
    is_bool: bool
    invert: bool
    factor: float
    is_int: bool
    canonical: str
    #: the canonical signal's plausible range in its own unit, as scoring checks it
    plausible_low: float
    plausible_high: float
    #: ``MESSAGE.SIGNAL``, the key of :attr:`DbcDecoder.outside_dbc_range`
    key: str


class _Plan(NamedTuple):
    """A mapped message compiled once: how to unpack its bytes, and its mapped fields.

    ``big``/``little`` are the message's own cantools formats (those ``decode_simple``
    unpacks, so the bits read are the same), None where it has no signal of that byte order.
    ``fast`` is False for a message cantools must decode itself (multiplexed, a container,
    or a cantools without the codec this relies on): then its fields take cantools' values
    as they are.
    """

    rule: MessageRule
    length: int
    fast: bool
    big: Any
    little: Any
    fields: tuple[_Field, ...]


def _compile(entry: MessageRule) -> _Plan:
    """Compile ``entry`` for the fast path, or for cantools' own decode where it cannot be."""
    message = entry.message
    try:
        if message.is_multiplexed() or message.is_container:
            raise LookupError(message.name)
        codec: Any = message._codecs  # the very formats decode_simple unpacks
        formats, signals = codec["formats"], codec["signals"]
        conversions = {signal.name: signal.conversion for signal in signals}
        for rule in entry.rules:
            conversions[rule.signal]  # a KeyError: not a signal of this codec
        big_endian = any(s.byte_order == "big_endian" for s in signals)
        little_endian = any(s.byte_order != "big_endian" for s in signals)
        big = formats.big_endian if big_endian else None
        little = formats.little_endian if little_endian else None
    except (AttributeError, KeyError, TypeError, LookupError):
        return _Plan(entry, message.length, False, None, None, _fields(entry, {}))
    return _Plan(entry, message.length, True, big, little, _fields(entry, conversions))


def _fields(entry: MessageRule, conversions: dict[str, Any]) -> tuple[_Field, ...]:
    fields = []
    for rule in entry.rules:
        conversion = conversions.get(rule.signal)
        how, convert = _AS_IS, None
        if conversion is not None and type(conversion) is not IdentityConversion:
            how = _LINEAR if type(conversion) in _LINEAR_TYPES else _METHOD
            convert = conversion.raw_to_scaled
        plausible = CANONICAL[rule.canonical].plausible or (-math.inf, math.inf)
        fields.append(
            _Field(
                rule.signal,
                how,
                getattr(conversion, "scale", 1.0),
                getattr(conversion, "offset", 0.0),
                convert,
                rule.values,
                rule.low,
                rule.high,
                -math.inf if rule.minimum is None else rule.minimum,
                math.inf if rule.maximum is None else rule.maximum,
                rule.is_bool,
                rule.invert,
                rule.factor,
                rule.is_int,
                rule.canonical,
                plausible[0],
                plausible[1],
                f"{entry.message.name}.{rule.signal}",
            )
        )
    return tuple(fields)


class DbcDecoder:
    """A :class:`~edge_agent.frames.FrameDecoder` for one signal map.

    Rejections are counted by reason: ``bad_length`` (DLC differs from the DBC message),
    ``decode_error`` (cantools could not decode), ``implausible`` (one value outside the
    physical range of its canonical signal, DESIGN.md "Plausibility"; the frame's other
    values are kept), ``unlisted_value`` (a value the map's ``values =`` table does not
    list). A value outside the DBC's declared ``[min|max]`` is kept: real DBCs
    declare nonsense ranges, so it is only counted per signal in :attr:`outside_dbc_range`.

    Samples whose value is within its canonical signal's plausible range (and whose frame
    has a finite timestamp) are marked ``checked`` (see :class:`~edge_agent.samples.Sample`).
    Each mapped message is compiled once; non-multiplexed ones are unpacked with the
    message's own cantools formats without cantools' per-call overhead.
    """

    def __init__(self, signal_map: SignalMap) -> None:
        self._messages: dict[int, MessageRule] = dict(signal_map.messages)
        self._plans = {can_id: _compile(entry) for can_id, entry in self._messages.items()}
        self._ids = frozenset(self._messages)
        self._rejected: Counter[str] = Counter()
        self._outside: Counter[str] = Counter()
        self._warn = RateLimitedLog(log)

    @property
    def ids(self) -> frozenset[int]:
        """Arbitration IDs of the mapped messages."""
        return self._ids

    @property
    def rejected(self) -> Counter[str]:
        """Frames or values refused so far, by reason."""
        return self._rejected

    @property
    def outside_dbc_range(self) -> Counter[str]:
        """Values kept although outside their DBC's declared range, by ``MESSAGE.SIGNAL``."""
        return self._outside

    def decode(self, frame: Frame) -> list[Sample]:
        """Return the canonical samples in ``frame``; count and log what cannot be decoded."""
        plan = self._plans.get(frame.arbitration_id)
        if plan is None:
            return []
        data = frame.data
        if len(data) != plan.length:
            message = plan.rule.message
            self._reject(
                "bad_length",
                "%s (0x%X): %d bytes, DBC says %d",
                message.name,
                frame.arbitration_id,
                len(data),
                message.length,
            )
            return []
        values: dict[str, Any]
        try:
            if plan.fast:
                values = plan.big.unpack(data) if plan.big is not None else {}
                if plan.little is not None:
                    values.update(plan.little.unpack(data[::-1]))
            else:
                values = plan.rule.message.decode_simple(data, decode_choices=False, scaling=True)
        except (bitstruct.Error, ValueError, cantools.database.DecodeError) as exc:
            # cantools' own words for an unpack failure, so both paths say the same
            text = exc if isinstance(exc, cantools.database.DecodeError) else "unpacking failed"
            message = plan.rule.message
            self._reject("decode_error", "%s (0x%X): %s", message.name, frame.arbitration_id, text)
            return []
        timestamp, bus = frame.timestamp, frame.bus
        finite = math.isfinite(timestamp)
        samples = []
        value: Value
        for (
            signal, how, scale, offset, convert, table, low, high, minimum, maximum,
            is_bool, invert, factor, is_int, canonical, plausible_low, plausible_high, key,
        ) in plan.fields:  # fmt: skip
            raw = values.get(signal)
            if not isinstance(raw, (int, float)):  # a tuple: faster than int | float
                continue  # a multiplexed signal this frame's page does not carry
            if how == _LINEAR:
                raw = raw * scale + offset
            elif how == _METHOD:
                assert convert is not None
                raw = convert(raw, False)
            if table is not None:
                mapped = table.get(raw)
                if mapped is None:
                    self._reject(
                        "unlisted_value",
                        "%s.%s = %s: not in the map's values",
                        plan.rule.message.name,
                        signal,
                        raw,
                    )
                    continue
                raw = mapped
            if not low <= raw <= high:
                self._reject(
                    "implausible",
                    "%s.%s = %s: not a plausible %s",
                    plan.rule.message.name,
                    signal,
                    raw,
                    canonical,
                )
                continue
            if not minimum <= raw <= maximum:
                self._outside[key] += 1
            if is_bool:
                value = (raw != 0) != invert
                checked = finite
            else:
                value = -raw * factor if invert else raw * factor
                if is_int:
                    value = round(value)
                checked = finite and plausible_low <= value <= plausible_high
            samples.append(Sample(canonical, value, timestamp, bus, checked))
        return samples

    def _reject(self, reason: str, msg: str, *args: object) -> None:
        self._rejected[reason] += 1
        self._warn(reason, msg, *args)
