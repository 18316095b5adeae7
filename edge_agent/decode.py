"""DBC decoding: frames of mapped messages → canonical samples, bad frames counted not fatal."""

from __future__ import annotations

import logging
from collections import Counter

import cantools

from .frames import Frame
from .ratelimit import RateLimitedLog
from .samples import Sample, Value
from .signalmap import MessageRule, SignalMap

log = logging.getLogger(__name__)


class DbcDecoder:
    """A :class:`~edge_agent.frames.FrameDecoder` for one signal map.

    Rejections are counted by reason: ``bad_length`` (DLC differs from the DBC message),
    ``decode_error`` (cantools could not decode), ``implausible`` (one value outside the
    physical range of its canonical signal, DESIGN.md "Plausibility"; the frame's other
    values are kept), ``unlisted_value`` (a value the map's ``values =`` table does not
    list). A value outside the DBC's declared ``[min|max]`` is kept: real DBCs
    declare nonsense ranges, so it is only counted per signal in :attr:`outside_dbc_range`.
    """

    def __init__(self, signal_map: SignalMap) -> None:
        self._messages: dict[int, MessageRule] = dict(signal_map.messages)
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
        entry = self._messages.get(frame.arbitration_id)
        if entry is None:
            return []
        message = entry.message
        if len(frame.data) != message.length:
            self._reject(
                "bad_length",
                "%s (0x%X): %d bytes, DBC says %d",
                message.name,
                frame.arbitration_id,
                len(frame.data),
                message.length,
            )
            return []
        try:
            values = message.decode_simple(frame.data, decode_choices=False, scaling=True)
        except (cantools.database.DecodeError, ValueError) as exc:
            self._reject("decode_error", "%s (0x%X): %s", message.name, frame.arbitration_id, exc)
            return []
        samples = []
        for rule in entry.rules:
            raw = values.get(rule.signal)
            if not isinstance(raw, int | float):
                continue  # a multiplexed signal this frame's page does not carry
            if rule.values is not None:
                mapped = rule.values.get(raw)
                if mapped is None:
                    self._reject(
                        "unlisted_value",
                        "%s.%s = %s: not in the map's values",
                        message.name,
                        rule.signal,
                        raw,
                    )
                    continue
                raw = mapped
            if not rule.low <= raw <= rule.high:
                self._reject(
                    "implausible",
                    "%s.%s = %s: not a plausible %s",
                    message.name,
                    rule.signal,
                    raw,
                    rule.canonical,
                )
                continue
            if (rule.minimum is not None and raw < rule.minimum) or (
                rule.maximum is not None and raw > rule.maximum
            ):
                self._outside[f"{message.name}.{rule.signal}"] += 1
            value: Value
            if rule.is_bool:
                value = (raw != 0) != rule.invert
            else:
                value = -raw * rule.factor if rule.invert else raw * rule.factor
                if rule.is_int:
                    value = round(value)
            samples.append(Sample(rule.canonical, value, frame.timestamp, frame.bus))
        return samples

    def _reject(self, reason: str, msg: str, *args: object) -> None:
        self._rejected[reason] += 1
        self._warn(reason, msg, *args)
