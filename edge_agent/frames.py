"""CAN frames as the agent sees them, and the interface every frame decoder offers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from .samples import Sample


@dataclass(slots=True)
class Frame:
    """One CAN frame with the source's own timestamp (seconds) and the name of its bus.

    Not frozen, by measurement (STYLE.md allows it on a hot path): a log source makes one
    frame per wanted CAN frame, hundreds of thousands a minute, and a frozen dataclass's
    ``__init__`` costs about four times a plain slotted one's. Nothing hashes a frame or
    relies on its immutability; treat it as read-only all the same.
    """

    timestamp: float
    arbitration_id: int
    data: bytes
    is_extended_id: bool = False
    bus: str = ""


class FrameDecoder(Protocol):
    """Turns frames of the IDs it wants into canonical samples (DBC map, passive OBD, ...).

    Ingest filters on :attr:`ids` before calling :meth:`decode`, so decode work is confined
    to frames a decoder asked for. ``decode`` never raises on bad frames: it counts them in
    :attr:`rejected` by reason (``bad_length``, ``decode_error``, ``implausible``, ...) and
    returns what it could decode.
    """

    @property
    def ids(self) -> frozenset[int]:
        """Arbitration IDs this decoder needs."""
        ...

    @property
    def rejected(self) -> Counter[str]:
        """Frames (or values) refused so far, by reason."""
        ...

    def decode(self, frame: Frame) -> list[Sample]:
        """Return the samples carried by ``frame`` (possibly none)."""
        ...
