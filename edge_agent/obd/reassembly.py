"""Listen-only ISO 15765-2 reassembly of messages from observed frames, per sender."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: ISO 15765-2 N_Cr: a receiver gives up on a message when a consecutive frame is this late.
CONSECUTIVE_FRAME_TIMEOUT_S = 1.0

#: Functional request IDs and the response ID ranges of ISO 15765-4.
FUNCTIONAL_11BIT = 0x7DF
FUNCTIONAL_29BIT = 0x18DB33F1
RESPONSE_11BIT = range(0x7E8, 0x7F0)
RESPONSE_29BIT_BASE = 0x18DAF100


def ecu_name(arbitration_id: int, is_extended_id: bool) -> str:
    """Return the name of the ECU sending on ``arbitration_id``: ``7E8`` or ``18DAF110``."""
    return f"{arbitration_id:08X}" if is_extended_id else f"{arbitration_id:03X}"


def is_response_id(arbitration_id: int, is_extended_id: bool) -> bool:
    """Return True for an OBD response ID: 0x7E8-0x7EF (11-bit) or 0x18DAF1xx (29-bit)."""
    if is_extended_id:
        return arbitration_id & 0xFFFFFF00 == RESPONSE_29BIT_BASE
    return arbitration_id in RESPONSE_11BIT


def physical_request_id(response_id: int, is_extended_id: bool) -> int:
    """Return the ID a tester uses to reach (and flow-control) the ECU on ``response_id``."""
    if is_extended_id:
        return 0x18DA00F1 | ((response_id & 0xFF) << 8)
    return response_id - 8


def single_frame(payload: bytes, padding: int = 0x00) -> bytes:
    """Return a classic-CAN single frame (PCI + payload, padded to 8) for up to 7 bytes."""
    if not 1 <= len(payload) <= 7:
        raise ValueError(f"a single frame carries 1 to 7 bytes, got {len(payload)}")
    return (bytes([len(payload)]) + payload).ljust(8, bytes([padding]))


def segment(payload: bytes, padding: int = 0x00) -> list[bytes]:
    """Return the classic-CAN frames (8 bytes each) that carry ``payload`` (1 to 4095 bytes)."""
    if len(payload) <= 7:
        return [single_frame(payload, padding)]
    if len(payload) > 0xFFF:
        raise ValueError(f"classic ISO-TP carries at most 4095 bytes, got {len(payload)}")
    frames = [bytes([0x10 | (len(payload) >> 8), len(payload) & 0xFF]) + payload[:6]]
    for seq, start in enumerate(range(6, len(payload), 7), start=1):
        chunk = bytes([0x20 | (seq & 0x0F)]) + payload[start : start + 7]
        frames.append(chunk.ljust(8, bytes([padding])))
    return frames


@dataclass(slots=True)
class _Partial:
    expected: int
    data: bytearray
    next_seq: int
    last_timestamp: float


@dataclass(slots=True)
class Reassembler:
    """Rebuilds ISO-TP messages from the frames of each sender, without ever transmitting.

    :meth:`feed` returns a complete message payload or None. Frames that cannot belong to a
    message are counted in :attr:`rejected` by reason (``bad_length``, ``bad_pci``,
    ``unexpected_consecutive``, ``sequence_error``, ``interrupted``, ``timeout``,
    ``truncated``) and logged.
    """

    timeout_s: float = CONSECUTIVE_FRAME_TIMEOUT_S
    rejected: Counter[str] = field(default_factory=Counter)
    _partial: dict[str, _Partial] = field(default_factory=dict)

    def _reject(self, sender: str, reason: str, data: bytes) -> None:
        self.rejected[reason] += 1
        log.debug("ISO-TP from %s: %s in frame %s", sender, reason, data.hex())

    def in_progress(self, sender: str) -> bool:
        """Return True while a multi-frame message from ``sender`` is incomplete."""
        return sender in self._partial

    def abandon(self) -> list[str]:
        """Drop every incomplete message (counted as ``truncated``); return their senders."""
        senders = sorted(self._partial)
        if senders:
            self.rejected["truncated"] += len(senders)
        self._partial.clear()
        return senders

    def feed(self, sender: str, data: bytes, timestamp: float) -> bytes | None:
        """Take one frame's data from ``sender``; return the message it completes, if any."""
        if not data:
            self._reject(sender, "bad_length", data)
            return None
        kind = data[0] >> 4
        partial = self._partial.get(sender)
        if partial is not None and kind in (0, 1):
            del self._partial[sender]
            self._reject(sender, "interrupted", data)
        if kind == 0:
            return self._single(sender, data)
        if kind == 1:
            self._first(sender, data, timestamp)
            return None
        if kind == 2:
            return self._consecutive(sender, data, timestamp)
        if kind == 3:
            return None  # flow control: the tester's business, no payload
        self._reject(sender, "bad_pci", data)
        return None

    def _single(self, sender: str, data: bytes) -> bytes | None:
        length, start = data[0] & 0x0F, 1
        if length == 0 and len(data) > 8:  # CAN FD escape: length in the second byte
            length, start = data[1], 2
        if length == 0 or start + length > len(data):
            self._reject(sender, "bad_length", data)
            return None
        return bytes(data[start : start + length])

    def _first(self, sender: str, data: bytes, timestamp: float) -> None:
        if len(data) < 3:
            self._reject(sender, "bad_length", data)
            return
        length, start = ((data[0] & 0x0F) << 8) | data[1], 2
        if length == 0:  # 32-bit length escape
            length, start = int.from_bytes(data[2:6], "big"), 6
        body = data[start:]
        if length <= len(body):  # a first frame announces more than it carries
            self._reject(sender, "bad_length", data)
            return
        self._partial[sender] = _Partial(length, bytearray(body), 1, timestamp)

    def _consecutive(self, sender: str, data: bytes, timestamp: float) -> bytes | None:
        partial = self._partial.get(sender)
        if partial is None:
            self._reject(sender, "unexpected_consecutive", data)
            return None
        if timestamp - partial.last_timestamp > self.timeout_s:
            del self._partial[sender]
            self._reject(sender, "timeout", data)
            return None
        if data[0] & 0x0F != partial.next_seq:
            del self._partial[sender]
            self._reject(sender, "sequence_error", data)
            return None
        partial.data += data[1:]
        partial.next_seq = (partial.next_seq + 1) & 0x0F
        partial.last_timestamp = timestamp
        if len(partial.data) < partial.expected:
            return None
        del self._partial[sender]
        return bytes(partial.data[: partial.expected])
