"""The unit of data between stages: one canonical signal value at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field

#: A canonical value: numbers in the canonical unit; booleans for ``bool`` signals.
Value = float | bool


@dataclass(slots=True)
class Sample:
    """One canonical signal value (see ``edge_agent.signals``) at the source's own timestamp.

    ``timestamp`` is seconds on the source clock (the CAN frame's timestamp, live or replayed),
    never the host's wall clock, so live and replayed data take the same path.

    ``checked`` is set by a producer that has already verified what scoring would check of
    the value alone: a canonical name, a finite timestamp, a value of the signal's kind
    (``bool`` for bool signals, a finite number otherwise) within its plausible range
    (``signals.CANONICAL``). Scoring then checks only what depends on earlier samples (time
    order, the odometer). Every other sample (``checked`` False, the default) is checked in
    full. It takes no part in equality.

    Not frozen, by measurement (STYLE.md allows it on a hot path): a replay makes one sample
    per decoded signal value, hundreds of thousands a minute, and a frozen dataclass's
    ``__init__`` costs about four times a plain slotted one's. Nothing hashes a sample or
    relies on its immutability; treat it as read-only all the same.
    """

    name: str
    value: Value
    timestamp: float
    source: str = ""
    checked: bool = field(default=False, compare=False, repr=False)
