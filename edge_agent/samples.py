"""The unit of data between stages: one canonical signal value at one instant."""

from __future__ import annotations

from dataclasses import dataclass

#: A canonical value: numbers in the canonical unit; booleans for ``bool`` signals.
Value = float | bool


@dataclass(frozen=True, slots=True)
class Sample:
    """One canonical signal value (see ``edge_agent.signals``) at the source's own timestamp.

    ``timestamp`` is seconds on the source clock (the CAN frame's timestamp, live or replayed),
    never the host's wall clock, so live and replayed data take the same path.
    """

    name: str
    value: Value
    timestamp: float
    source: str = ""
