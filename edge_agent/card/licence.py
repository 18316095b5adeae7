"""Licence AP client (マイナ免許証): PIN, then the licence's expiry and categories.

Confirmed by public sources: the AID, the EF layout, VERIFY P2 86, and the expiry tag C5
(era digit + YYMMDD). ASSUMED, ours until checked against the police specification: the
categories, one TLV with tag D0 per category holding its name in UTF-8 (see docs/identity.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from .apdu import ApduChannel
from .errors import CardDataError
from .layout import (
    LICENCE_AID,
    LICENCE_EF_DATA,
    LICENCE_PIN_RULE,
    LICENCE_TAG_CATEGORY,
    LICENCE_TAG_EXPIRY,
    LICENCE_VERIFY_P2,
)
from .pin import tries_left, verify_once

log = logging.getLogger(__name__)

#: Japanese era digit → Gregorian year of that era's year 0 (JIS X 0301 era codes).
ERA_BASE_YEAR = {"1": 1867, "2": 1911, "3": 1925, "4": 1988, "5": 2018}
_REIWA = "5"

#: The licence categories (種類) this project knows, as printed on the licence.
KNOWN_CATEGORIES: tuple[str, ...] = (
    "大型", "中型", "準中型", "普通", "大特", "大自二", "普自二", "小特", "原付", "け引",
    "大二", "中二", "普二", "大特二", "け引二",
)


@dataclass(frozen=True, slots=True)
class LicenceData:
    """What the agent uses from the licence: its expiry and its categories, nothing else."""

    expiry: date
    categories: tuple[str, ...]


def _tlvs(raw: bytes, what: str) -> list[tuple[int, bytes]]:
    """Split simple TLVs (one-byte tags, BER lengths up to 2 bytes); 00/FF padding ends it."""
    items: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(raw):
        tag = raw[pos]
        if tag in (0x00, 0xFF):
            break
        if pos + 1 >= len(raw):
            raise CardDataError(f"{what}: tag {tag:02X} at offset {pos} has no length")
        length = raw[pos + 1]
        head = 2
        if length & 0x80:
            count = length & 0x7F
            if count not in (1, 2) or pos + 2 + count > len(raw):
                raise CardDataError(
                    f"{what}: tag {tag:02X} at offset {pos}: bad length byte {length:02X}"
                )
            length = int.from_bytes(raw[pos + 2 : pos + 2 + count], "big")
            head += count
        end = pos + head + length
        if end > len(raw):
            raise CardDataError(
                f"{what}: tag {tag:02X} at offset {pos} claims {length} bytes, "
                f"only {len(raw) - pos - head} follow"
            )
        items.append((tag, raw[pos + head : end]))
        pos = end
    return items


def parse_japanese_date(value: bytes, what: str) -> date:
    """Decode era digit + YYMMDD (JIS X 0201 digits), e.g. b"5090131" → 2027-01-31."""
    text = value.decode("ascii", errors="replace")
    if len(text) != 7 or not text.isdigit() or text[0] not in ERA_BASE_YEAR:
        raise CardDataError(f"{what}: {text!r} is not era digit + YYMMDD")
    year = ERA_BASE_YEAR[text[0]] + int(text[1:3])
    try:
        return date(year, int(text[3:5]), int(text[5:7]))
    except ValueError as exc:
        raise CardDataError(f"{what}: {text!r} is not a calendar date: {exc}") from exc


def encode_japanese_date(day: date) -> bytes:
    """Encode a date in the Reiwa era as era digit + YYMMDD (dates from 2019-05-01)."""
    year = day.year - ERA_BASE_YEAR[_REIWA]
    if day < date(2019, 5, 1) or year > 99:
        raise ValueError(f"{day} is outside the Reiwa dates this encoder writes")
    return f"{_REIWA}{year:02d}{day.month:02d}{day.day:02d}".encode("ascii")


def parse_licence_data(raw: bytes) -> LicenceData:
    """Parse WEF02; raises CardDataError naming the tag and offset of anything malformed."""
    what = "licence data EF 001B"
    expiry: date | None = None
    categories: list[str] = []
    for tag, value in _tlvs(raw, what):
        if tag == LICENCE_TAG_EXPIRY:
            expiry = parse_japanese_date(value, f"{what} tag C5 (expiry)")
        elif tag == LICENCE_TAG_CATEGORY:
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CardDataError(f"{what} tag D0 (category): not UTF-8: {exc}") from exc
            if name not in KNOWN_CATEGORIES:
                log.warning("%s: unknown licence category %r kept as is", what, name)
            categories.append(name)
    if expiry is None:
        raise CardDataError(f"{what}: no expiry (tag C5)")
    return LicenceData(expiry, tuple(categories))


def encode_licence_data(licence: LicenceData) -> bytes:
    """The WEF02 bytes for ``licence`` in the layout ``parse_licence_data`` reads."""
    def tlv(tag: int, value: bytes) -> bytes:
        if len(value) > 127:
            raise ValueError(f"tag {tag:02X} value of {len(value)} bytes is too long")
        return bytes((tag, len(value))) + value

    out = tlv(LICENCE_TAG_EXPIRY, encode_japanese_date(licence.expiry))
    for name in licence.categories:
        out += tlv(LICENCE_TAG_CATEGORY, name.encode("utf-8"))
    return out


class LicenceClient:
    """Talks to the licence AP: PIN tries, VERIFY once, read expiry and categories."""

    def __init__(self, channel: ApduChannel) -> None:
        self.channel = channel

    def select(self) -> None:
        """SELECT the licence AP; CardFileNotFoundError means the card carries no licence."""
        self.channel.select_aid(LICENCE_AID, "SELECT licence AP")

    def pin_tries_left(self) -> int:
        """Return how many tries the licence PIN has left (0: locked)."""
        self.select()
        return tries_left(self.channel, LICENCE_VERIFY_P2, LICENCE_PIN_RULE)

    def verify_pin(self, pin: str) -> None:
        """VERIFY the licence PIN once (see ``edge_agent.card.pin`` for the refusals)."""
        self.select()
        verify_once(self.channel, LICENCE_VERIFY_P2, LICENCE_PIN_RULE, pin)

    def read(self) -> LicenceData:
        """Read and parse the licence data (needs ``verify_pin`` first)."""
        self.channel.select_ef(LICENCE_EF_DATA, "SELECT licence data EF 001B")
        return parse_licence_data(self.channel.read_whole_file("READ licence data EF 001B"))
