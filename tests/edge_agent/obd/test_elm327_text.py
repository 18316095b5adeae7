"""ELM327 reply text: every error reply maps to a clear AdapterError; data lines parse."""

from __future__ import annotations

import pytest

from edge_agent.obd.elm327_text import adapter_error, parse_reply


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
