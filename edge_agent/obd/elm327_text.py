"""The text an ELM327 adapter prints: error replies, header lines and ``0:``/``1:`` segments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import AdapterReplyError

#: Replies that mean "no ECU answered": a result, not a failure.
NO_ANSWER = ("NO DATA",)

#: Replies that mean the adapter or the bus failed: (marker, kind, what to tell the user,
#: transient). A transient one may go away when the request is repeated (bus noise, a busy bus,
#: a request interrupted, a protocol search that met a sleeping ECU); the others will not.
ADAPTER_ERRORS: tuple[tuple[str, str, str, bool], ...] = (
    ("?", "refused", "the adapter did not understand the command", False),
    (
        "STOPPED",
        "stopped",
        "the adapter stopped the request (it received a character mid-request)",
        True,
    ),
    ("BUS INIT", "bus_init", "the adapter could not initialise the vehicle bus", False),
    (
        "UNABLE TO CONNECT",
        "unable_to_connect",
        "the adapter found no OBD protocol (ignition off or no OBD bus?)",
        True,
    ),
    ("CAN ERROR", "can_error", "the adapter sees CAN errors (wrong bit rate or bus wiring)", True),
    ("BUS ERROR", "bus_error", "the adapter reports a bus error", True),
    ("BUS BUSY", "bus_busy", "the bus was too busy to send the request", True),
    ("BUFFER FULL", "buffer_full", "the adapter's receive buffer overflowed", True),
    ("FB ERROR", "fb_error", "the adapter's feedback check failed", True),
    ("DATA ERROR", "data_error", "the adapter received a malformed answer", True),
    ("LV RESET", "lv_reset", "the adapter reset on low voltage", False),
    ("ACT ALERT", "act_alert", "the adapter went idle (activity alert)", False),
    ("ERR", "internal_error", "the adapter reported an internal error", False),
)

_HEX = re.compile(r"^[0-9A-F]+$")
_SEGMENT = re.compile(r"^([0-9A-F]):([0-9A-F]*)$")
_HEADER_LINE = re.compile(r"^(7E[8-F]([0-9A-F]{2})+|18DA[0-9A-F]+)$")

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


def adapter_error(lines: list[str], command: str) -> AdapterReplyError | None:
    """Return the error an error reply stands for, or None when the reply is data."""
    for line in lines:
        upper = line.upper()
        for marker, kind, meaning, transient in ADAPTER_ERRORS:
            if (line == "?") if marker == "?" else (marker in upper):
                return AdapterReplyError(
                    f"{command}: {meaning} (adapter said {line!r})", kind, transient
                )
    return None


def is_garbled(data: bytes | bytearray) -> bool:
    """True when ``data`` holds bytes no ELM327 prints: what a wrong serial speed produces.

    An adapter writes printable ASCII, CR, LF and the odd NUL; anything else (bytes with the
    high bit set, other control characters) comes from reading at the wrong baud rate.
    """
    return any(b >= 0x7F or (b < 0x20 and b not in (0x00, 0x09, 0x0A, 0x0D)) for b in data)


def looks_headerless(lines: list[str]) -> bool:
    """True when data lines that should start with a CAN header do not: headers are off.

    Some clones answer ``ATH1`` with ``OK`` and keep headers off. OBD answers come from
    0x7E8-0x7EF (11-bit) or 0x18DAF1xx (29-bit), so a header line starts with ``7E8``-``7EF``
    (and has an odd digit count) or with ``18DA``; a headerless one starts with the service
    byte (``41``, ``49``, ``7F``...), a byte count or a ``0:`` segment. Lines that are not hex
    do not count either way; with no data line at all the answer is False.
    """
    data = [line.replace(" ", "").upper() for line in lines]
    data = [line for line in data if _HEX.match(line) or _SEGMENT.match(line)]
    return bool(data) and not any(_HEADER_LINE.match(line) for line in data)


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
