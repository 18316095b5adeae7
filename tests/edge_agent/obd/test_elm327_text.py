"""ELM327 reply text: every error reply maps to a clear AdapterError; data lines parse."""

from __future__ import annotations

import pytest

from edge_agent.obd.elm327_text import adapter_error, is_garbled, looks_headerless, parse_reply


@pytest.mark.parametrize(
    ("reply", "meaning"),
    [
        ("?", "did not understand the command"),
        ("STOPPED", "stopped the request"),
        ("BUS INIT: ...ERROR", "could not initialise the vehicle bus"),
        ("UNABLE TO CONNECT", "found no OBD protocol"),
        ("CAN ERROR", "sees CAN errors"),
        ("BUFFER FULL", "receive buffer overflowed"),
        ("7E8064100BE3F <DATA ERROR", "malformed answer"),
        ("ERR94", "internal error"),
        ("LV RESET", "low voltage"),
    ],
)
def test_error_replies_map_to_adapter_errors(reply: str, meaning: str) -> None:
    error = adapter_error(["SEARCHING...", reply], "0100")
    assert error is not None
    assert meaning in str(error)
    assert str(error).startswith("0100: ")


def test_data_is_not_an_error() -> None:
    assert adapter_error(["7E8064100BE3FA813"], "0100") is None
    assert adapter_error(["41 0D 12"], "010D") is None


def test_header_lines_11_and_29_bit() -> None:
    reply = parse_reply(["7E8 06 41 00 BE 3F A8 13 00", "18DAF11003410D12"], 3)
    assert reply.frames == (
        ("7E8", bytes.fromhex("064100BE3FA81300")),
        ("18DAF110", bytes.fromhex("03410D12")),
    )
    assert not reply.garbage and not reply.messages


def test_segmented_answers_with_headers_off() -> None:
    lines = [
        "014",
        "0: 49 02 01 31 48 47",
        "1: 43 4D 38 32 36 33 33",
        "2: 41 30 30 34 33 35 32",
        "008",
        "0:4303013340",
        "1:35000000000000",
    ]
    reply = parse_reply(lines, None)
    assert reply.messages == (
        b"\x49\x02\x01" + b"1HGCM82633A004352",
        bytes.fromhex("4303013340350000"),
    )
    assert not reply.garbage


def test_headerless_single_line_and_garbage() -> None:
    reply = parse_reply(["41 0D 12", "\ufffdJUNK", "1: 4142", "410"], None)
    assert reply.messages == (b"\x41\x0d\x12",)
    assert reply.garbage == ("\ufffdJUNK", "1: 4142", "410 then 0 segments of 0 bytes")


def test_short_segment_group_is_garbage() -> None:
    reply = parse_reply(["014", "0: 49 02 01 31 48 47"], None)
    assert reply.messages == ()
    assert reply.garbage == ("014 then 1 segments of 6 bytes",)


def test_header_line_without_data_is_garbage() -> None:
    assert parse_reply(["7E8"], 3).garbage == ("7E8",)


@pytest.mark.parametrize(
    ("lines", "headerless"),
    [
        (["7E8 06 41 00 BE 3F A8 13 00", "7E9064100881800 00"], False),
        (["7e8064100be3fa81300"], False),
        (["18 DA F1 10 06 41 00 BE 3F A8 13"], False),  # 29-bit, whatever ATDPN said
        (["41 00 BE 3F A8 13"], True),
        (["014", "0: 49 02 01 31 48 47", "1: 43 4D 38 32 36 33 33"], True),
        (["7F 01 11"], True),
        (["SEARCHING...", "NOISE"], False),  # no data line: cannot tell
        ([], False),
    ],
)
def test_headerless_answers_are_told_from_header_lines(lines: list[str], headerless: bool) -> None:
    assert looks_headerless(lines) is headerless


def test_garbled_bytes_are_what_no_elm327_prints() -> None:
    assert not is_garbled(b"ELM327 v1.5\r\n\r\n>\x00")
    assert is_garbled(b"\xf8\x00\xe6")
    assert is_garbled(b"41 0D\x1b")
