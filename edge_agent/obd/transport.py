"""The interface every OBD-II transport offers (ISO-TP on CAN, ELM327), and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EcuAnswer:
    """One ECU's complete answer to a request, at the source timestamp of its last frame.

    ``ecu`` names the sender by its response ID (``7E8``, ``18DAF110``); ``payload`` starts with
    the service byte (``0x41`` ..., or ``0x7F`` for a negative response).
    """

    ecu: str
    payload: bytes
    timestamp: float

    @property
    def is_negative(self) -> bool:
        """True for a negative response (``7F service code``)."""
        return len(self.payload) >= 3 and self.payload[0] == 0x7F


class ObdTransport(Protocol):
    """Sends one functional OBD request and collects every ECU's answer before a deadline.

    ``request`` returns the answers in arrival order, an empty list when no ECU answered in
    time, and raises ObdError (or a subclass) when the link or adapter itself fails. It never
    blocks past its deadline.
    """

    @property
    def protocol(self) -> str:
        """Human-readable name of the bus protocol in use (e.g. ``ISO 15765-4 CAN 11/500``)."""
        ...

    def request(self, payload: bytes, expect: frozenset[str] | None = None) -> list[EcuAnswer]:
        """Send ``payload`` (service + data, at most 7 bytes) and return the ECUs' answers.

        ``expect`` names the ECUs known to answer; the transport may return as soon as they
        all have, instead of waiting out the deadline for others.
        """
        ...

    def close(self) -> None:
        """Release the link; the transport is unusable afterwards."""
        ...
