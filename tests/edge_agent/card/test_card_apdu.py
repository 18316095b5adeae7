"""APDU encoding, status-word mapping, and the channel's 61xx / 6Cxx / chained-read handling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.card.apdu import (
    ApduChannel,
    CommandApdu,
    ResponseApdu,
    raise_for_status,
    tlv_total_length,
)
from edge_agent.card.errors import (
    CardDataError,
    CardFileNotFoundError,
    SecurityStatusError,
    StatusWordError,
    UnsupportedInstructionError,
)
from edge_agent.card.transport import InProcessTransport


@settings(max_examples=100)
@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=255),
    st.none() | st.integers(1, 256),
)
def test_command_apdu_round_trips(
    cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None
) -> None:
    command = CommandApdu(cla, ins, p1, p2, data, le)
    assert CommandApdu.parse(command.encode()) == command


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_parse_of_arbitrary_bytes_is_a_command_or_a_value_error(raw: bytes) -> None:
    try:
        command = CommandApdu.parse(raw)
    except ValueError:
        return
    assert command.encode() == raw


def test_jpki_select_bytes_match_the_notes() -> None:
    command = CommandApdu(0x00, 0xA4, 0x04, 0x0C, bytes.fromhex("D392F000260100000001"))
    assert command.encode().hex(" ").upper() == "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"


def test_verify_is_described_without_the_pin() -> None:
    text = CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234").describe()
    assert "31 32 33 34" not in text and "withheld" in text


@pytest.mark.parametrize(
    ("sw", "error"),
    [
        (0x6A82, CardFileNotFoundError),
        (0x6982, SecurityStatusError),
        (0x6D00, UnsupportedInstructionError),
        (0x6E00, UnsupportedInstructionError),
        (0x6A80, StatusWordError),
    ],
)
def test_status_words_map_to_their_errors(sw: int, error: type[StatusWordError]) -> None:
    with pytest.raises(error) as caught:
        raise_for_status(ResponseApdu(b"", sw), "step")
    assert caught.value.sw == sw and f"{sw:04X}" in str(caught.value)


def test_response_parse_needs_two_bytes() -> None:
    with pytest.raises(ValueError, match="at least 2 bytes"):
        ResponseApdu.parse(b"\x90")


class ScriptedCard:
    """Answers with a fixed list of responses, recording the commands (for 61xx/6Cxx paths
    the virtual card never takes)."""

    def __init__(self, responses: list[bytes]) -> None:
        self.responses = responses
        self.commands: list[bytes] = []

    def power_on(self) -> bytes:
        return b"\x3b\x00"

    def atr(self) -> bytes:
        return b"\x3b\x00"

    def process(self, apdu: bytes) -> bytes:
        self.commands.append(apdu)
        return self.responses.pop(0)


def _channel(card: ScriptedCard) -> ApduChannel:
    transport = InProcessTransport(card)
    transport.connect()
    return ApduChannel(transport)


def test_61xx_is_followed_by_get_response() -> None:
    card = ScriptedCard([b"\xaa\x61\x02", b"\xbb\xcc\x90\x00"])
    response = _channel(card).transmit(CommandApdu(0, 0xB0, 0, 0, le=3))
    assert response == ResponseApdu(b"\xaa\xbb\xcc", 0x9000)
    assert card.commands[1] == bytes.fromhex("00C0000002")


def test_6cxx_resends_with_the_length_the_card_names() -> None:
    card = ScriptedCard([b"\x6c\x05", b"12345\x90\x00"])
    response = _channel(card).transmit(CommandApdu(0, 0xB0, 0, 0, le=7))
    assert response.data == b"12345"
    assert card.commands[1] == bytes.fromhex("00B0000005")


def test_tlv_file_shorter_than_its_header_says_is_a_data_error() -> None:
    # header announces 0x0100 bytes of value but the file ends after the first 7
    card = ScriptedCard([b"\x30\x82\x01\x00abc\x90\x00", b"\x62\x82"])
    with pytest.raises(CardDataError, match="ended at byte 7 of the 260"):
        _channel(card).read_tlv_file("READ test EF")


@pytest.mark.parametrize(
    ("head", "total"),
    [(b"\x30\x05", 7), (b"\x30\x81\x80", 131), (b"\x30\x82\x03\x5a", 862), (b"\x5f\x1f\x02", 5)],
)
def test_tlv_total_length(head: bytes, total: int) -> None:
    assert tlv_total_length(head + b"\x00" * 4, "x") == total


@pytest.mark.parametrize("head", [b"\x30", b"\x30\x80\x00", b"\x30\x85\x00\x00\x00\x00\x00"])
def test_tlv_total_length_rejects_what_it_cannot_size(head: bytes) -> None:
    with pytest.raises(CardDataError, match="EF 000A"):
        tlv_total_length(head, "READ EF 000A")
