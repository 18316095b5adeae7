"""The text an ELM327 adapter prints: error replies, header lines and ``0:``/``1:`` segments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import AdapterError

#: Replies that mean "no ECU answered": a result, not a failure.
NO_ANSWER = ("NO DATA",)

#: Replies that mean the adapter or the bus failed, with what to tell the user.
ADAPTER_ERRORS: tuple[tuple[str, str], ...] = (
    ("?", "the adapter did not understand the command"),
    ("STOPPED", "the adapter stopped the request (it received a character mid-request)"),
    ("BUS INIT", "the adapter could not initialise the vehicle bus"),
    ("UNABLE TO CONNECT", "the adapter found no OBD protocol (ignition off or no OBD bus?)"),
    ("CAN ERROR", "the adapter sees CAN errors (wrong bit rate or bus wiring)"),
    ("BUS ERROR", "the adapter reports a bus error"),
    ("BUS BUSY", "the bus was too busy to send the request"),
    ("BUFFER FULL", "the adapter's receive buffer overflowed"),
    ("FB ERROR", "the adapter's feedback check failed"),
    ("DATA ERROR", "the adapter received a malformed answer"),
    ("LV RESET", "the adapter reset on low voltage"),
    ("ACT ALERT", "the adapter went idle (activity alert)"),
    ("ERR", "the adapter reported an internal error"),
)

_HEX = re.compile(r"^[0-9A-F]+$")
_SEGMENT = re.compile(r"^([0-9A-F]):([0-9A-F]*)$")

#: ELM327 protocol numbers (ATDPN) and names.
PROTOCOLS: dict[str, str] = {
    "1": "SAE J1850 PWM",
    "2": "SAE J1850 VPW",
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 KWP (5 baud init)",
    "5": "ISO 14230-4 KWP (fast init)",
    "6": "ISO 15765-4 CAN (11 bit ID, 500 kbaud)",
    "7": "ISO 15765-4 CAN (29 bit ID, 500 kbaud)",
    "8": "ISO 15765-4 CAN (11 bit ID, 250 kbaud)",
    "9": "ISO 15765-4 CAN (29 bit ID, 250 kbaud)",
    "A": "SAE J1939 CAN",
}
#: Protocols whose header lines this agent reads, and their header width in hex digits.
CAN_HEADER_DIGITS: dict[str, int] = {"6": 3, "7": 8, "8": 3, "9": 8}


def adapter_error(lines: list[str], command: str) -> AdapterError | None:
    """Return the AdapterError an error reply stands for, or None when the reply is data."""
    for line in lines:
        for marker, meaning in ADAPTER_ERRORS:
            if (line == "?") if marker == "?" else (marker in line):
                return AdapterError(f"{command}: {meaning} (adapter said {line!r})")
    return None


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """An adapter's reply split up: CAN frames by header, and whole headerless messages.

    ``frames`` are ``(header, frame data with PCI)`` for the ISO-TP reassembler; ``messages``
    are complete payloads the adapter already reassembled (headers off); ``garbage`` counts
    lines that were neither.
    """

    frames: tuple[tuple[str, bytes], ...]
    messages: tuple[bytes, ...]
    garbage: tuple[str, ...]


def parse_reply(lines: list[str], header_digits: int | None) -> ParsedReply:
    """Split data lines (spaces removed, upper case) into frames, messages and garbage.

    ``header_digits`` is 3 or 8 when headers are on (CAN 11/29-bit). A line whose length
    disagrees with that width is read with the width its parity implies (an odd count of
    hex digits means a 3-digit header), since a header-on line is always header + bytes.
    """
    frames: list[tuple[str, bytes]] = []
    messages: list[bytes] = []
    garbage: list[str] = []
    group: list[str] | None = None  # 0: 1: ... segments after a byte-count line
    expected = 0

    def close_group() -> None:
        if group is None:
            return
        data = bytes.fromhex("".join(group))
        if group and len(data) >= expected:
            messages.append(data[:expected])
        else:
            garbage.append(f"{expected:03X} then {len(group)} segments of {len(data)} bytes")

    for raw in lines:
        line = raw.replace(" ", "").upper()
        seg = _SEGMENT.match(line)
        if seg and group is not None and len(seg.group(2)) % 2 == 0:
            group.append(seg.group(2))
        elif not _HEX.match(line):
            garbage.append(raw)
        elif header_digits is None and len(line) == 3:
            close_group()
            group, expected = [], int(line, 16)
        elif header_digits is None:
            if len(line) % 2:
                garbage.append(raw)
            else:
                messages.append(bytes.fromhex(line))
        else:
            width = 3 if len(line) % 2 else 8
            if len(line) <= width:
                garbage.append(raw)
            else:
                frames.append((line[:width], bytes.fromhex(line[width:])))
    close_group()
    return ParsedReply(tuple(frames), tuple(messages), tuple(garbage))
