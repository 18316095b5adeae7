"""Diagnostic answers: mode 03/07/0A trouble codes (``P0133``) and the mode 09 PID 02 VIN."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .errors import MalformedResponseError

log = logging.getLogger(__name__)

STORED_DTCS = 0x03
PENDING_DTCS = 0x07
PERMANENT_DTCS = 0x0A
VEHICLE_INFO = 0x09
VIN_PID = 0x02

_LETTERS = "PCBU"
_DTC_RE = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")


def decode_dtc(pair: bytes) -> str:
    """Return the code (``P0133``) of a 2-byte DTC: bits 15-14 letter, 13-12 digit, 3 hex."""
    if len(pair) != 2:
        raise ValueError(f"a DTC is 2 bytes, got {len(pair)}")
    word = int.from_bytes(pair, "big")
    return f"{_LETTERS[word >> 14]}{(word >> 12) & 0x3}{word & 0xFFF:03X}"


def encode_dtc(code: str) -> bytes:
    """Return the 2 bytes of a code such as ``P0133`` (ValueError for a malformed code)."""
    code = code.upper()
    if not _DTC_RE.match(code):
        raise ValueError(f"DTC {code!r} is not a letter P/C/B/U, a digit 0-3 and 3 hex digits")
    word = (_LETTERS.index(code[0]) << 14) | (int(code[1]) << 12) | int(code[2:], 16)
    return word.to_bytes(2, "big")


def parse_dtcs(payload: bytes, service: int, ecu: str = "?") -> list[str]:
    """Return the codes in a mode 03/07/0A answer on CAN: ``43|47|4A count (hi lo)*``.

    ``00 00`` pairs are padding and skipped. A count that disagrees with the pairs present is
    logged and the pairs present are kept (they are the data); an odd byte count or a wrong
    service byte raises MalformedResponseError naming ``ecu``.
    """
    if not payload or payload[0] != service + 0x40:
        raise MalformedResponseError(
            f"ECU {ecu}: expected a mode {service:02X} answer (0x{service + 0x40:02X}), "
            f"got {payload.hex()}"
        )
    if len(payload) < 2 or len(payload) % 2:
        raise MalformedResponseError(
            f"ECU {ecu}: mode {service:02X} answer {payload.hex()} is not count + 2-byte codes"
        )
    count, body = payload[1], payload[2:]
    if count != len(body) // 2:
        log.warning(
            "ECU %s: mode %02X answer says %d codes but carries %d; keeping those present",
            ecu,
            service,
            count,
            len(body) // 2,
        )
    return [
        decode_dtc(body[i : i + 2]) for i in range(0, len(body), 2) if body[i : i + 2] != b"\0\0"
    ]


def dtc_answer(service: int, codes: list[str]) -> bytes:
    """Return the mode 03/07/0A answer an ECU sends for ``codes`` (used by the simulators)."""
    return bytes([service + 0x40, len(codes)]) + b"".join(encode_dtc(c) for c in codes)


# ---- VIN (ISO 3779) ----------------------------------------------------------------------

_VIN_ALLOWED = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
#: World manufacturer identifiers whose region mandates the position-9 check digit:
#: North America (1-5) and China (L).
_CHECK_DIGIT_REGIONS = frozenset("12345L")


@dataclass(frozen=True, slots=True)
class Vin:
    """A VIN that passed length and character checks.

    ``check_digit_ok`` is True or False where the region (first character) mandates the
    position-9 check digit, None elsewhere; a failed check digit is reported, not rejected.
    """

    vin: str
    check_digit_ok: bool | None


def check_digit(vin: str) -> str:
    """Return the ISO 3779 / 49 CFR 565 check character (``0``-``9`` or ``X``) for ``vin``."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def validate_vin(text: str, ecu: str = "?") -> Vin:
    """Return ``text`` as a :class:`Vin`, or raise MalformedResponseError naming what is wrong."""
    if len(text) != 17:
        raise MalformedResponseError(f"ECU {ecu}: VIN {text!r} has {len(text)} characters, not 17")
    if not _VIN_ALLOWED.match(text):
        bad = sorted({c for c in text if not re.match(r"[A-HJ-NPR-Z0-9]", c)})
        raise MalformedResponseError(
            f"ECU {ecu}: VIN {text!r} has characters outside A-Z 0-9 without I O Q: {bad}"
        )
    if text[0] not in _CHECK_DIGIT_REGIONS:
        return Vin(text, None)
    ok = text[8] == check_digit(text)
    if not ok:
        log.warning(
            "ECU %s: VIN %s fails its check digit (expected %s)", ecu, text, check_digit(text)
        )
    return Vin(text, ok)


def parse_vin(payload: bytes, ecu: str = "?") -> Vin:
    """Return the VIN from a mode 09 PID 02 answer on CAN: ``49 02 01`` + 17 ASCII characters.

    NUL padding some ECUs add is dropped; anything else that is not a valid VIN raises
    MalformedResponseError naming ``ecu``.
    """
    if payload[:2] != bytes([0x49, VIN_PID]) or len(payload) < 3:
        raise MalformedResponseError(
            f"ECU {ecu}: expected a VIN answer (49 02), got {payload.hex()}"
        )
    raw = payload[3:].replace(b"\0", b"")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedResponseError(f"ECU {ecu}: VIN bytes {raw.hex()} are not ASCII") from None
    return validate_vin(text, ecu)


def vin_answer(vin: str) -> bytes:
    """Return the mode 09 PID 02 answer an ECU sends for ``vin`` (used by the simulators)."""
    return bytes([0x49, VIN_PID, 0x01]) + vin.encode("ascii")
