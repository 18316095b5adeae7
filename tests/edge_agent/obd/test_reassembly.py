"""Listen-only ISO-TP reassembly: whole messages back, every broken sequence counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.obd.reassembly import (
    Reassembler,
    ecu_name,
    is_response_id,
    physical_request_id,
    segment,
    single_frame,
)

VIN_FRAMES = [
    bytes.fromhex("1014490201314847"),
    bytes.fromhex("21434D3832363333"),
    bytes.fromhex("2241303034333532"),
]


def feed_all(r: Reassembler, frames: list[bytes], sender: str = "7E8") -> list[bytes]:
    out = []
    for i, frame in enumerate(frames):
        message = r.feed(sender, frame, float(i) * 0.01)
        if message is not None:
            out.append(message)
    return out


def test_vin_first_and_consecutive_frames() -> None:
    r = Reassembler()
    assert feed_all(r, VIN_FRAMES) == [b"\x49\x02\x01" + b"1HGCM82633A004352"]
    assert not r.rejected


def test_single_frame_drops_padding() -> None:
    assert Reassembler().feed("7E8", bytes.fromhex("03410D12AAAAAAAA"), 0.0) == b"\x41\x0d\x12"


def test_senders_are_reassembled_independently() -> None:
    r = Reassembler()
    assert r.feed("7E8", VIN_FRAMES[0], 0.0) is None
    assert r.feed("7E9", bytes.fromhex("03410D12"), 0.0) == b"\x41\x0d\x12"
    assert r.in_progress("7E8")
    assert feed_all(r, VIN_FRAMES[1:]) == [b"\x49\x02\x01" + b"1HGCM82633A004352"]


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b""], "bad_length"),
        ([bytes.fromhex("00410D")], "bad_length"),
        ([bytes.fromhex("07410D12")], "bad_length"),
        ([bytes.fromhex("100349020131")], "bad_length"),  # first frame announcing what it holds
        ([bytes.fromhex("4001020304")], "bad_pci"),
        ([VIN_FRAMES[1]], "unexpected_consecutive"),
        ([VIN_FRAMES[0], VIN_FRAMES[2]], "sequence_error"),
        ([VIN_FRAMES[0], bytes.fromhex("03410D12")], "interrupted"),
    ],
)
def test_broken_sequences_are_counted(frames: list[bytes], reason: str) -> None:
    r = Reassembler()
    messages = feed_all(r, frames)
    assert r.rejected[reason] == 1
    assert all(m == b"\x41\x0d\x12" for m in messages)


def test_late_consecutive_frame_times_out() -> None:
    r = Reassembler(timeout_s=1.0)
    assert r.feed("7E8", VIN_FRAMES[0], 10.0) is None
    assert r.feed("7E8", VIN_FRAMES[1], 11.5) is None
    assert r.rejected["timeout"] == 1
    assert not r.in_progress("7E8")


def test_abandon_counts_truncated_messages() -> None:
    r = Reassembler()
    feed_all(r, VIN_FRAMES[:2])
    assert r.abandon() == ["7E8"]
    assert r.rejected["truncated"] == 1
    assert r.abandon() == []


def test_flow_control_frames_carry_nothing() -> None:
    r = Reassembler()
    assert r.feed("7E8", bytes.fromhex("3000000000000000"), 0.0) is None
    assert not r.rejected


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_segmented_payload_reassembles(payload: bytes) -> None:
    frames = segment(payload)
    assert all(len(f) == 8 for f in frames)
    r = Reassembler()
    assert feed_all(r, frames) == [payload]
    assert not r.rejected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=40))
def test_arbitrary_frames_never_raise(frames: list[bytes]) -> None:
    r = Reassembler()
    for message in feed_all(r, frames):
        assert len(message) >= 1


def test_id_helpers() -> None:
    assert ecu_name(0x7E8, False) == "7E8"
    assert ecu_name(0x18DAF110, True) == "18DAF110"
    assert is_response_id(0x7EF, False) and not is_response_id(0x7F0, False)
    assert is_response_id(0x18DAF110, True) and not is_response_id(0x18DA10F1, True)
    assert physical_request_id(0x7E9, False) == 0x7E1
    assert physical_request_id(0x18DAF110, True) == 0x18DA10F1
    assert single_frame(b"\x01\x0d") == bytes.fromhex("02010D0000000000")
    with pytest.raises(ValueError, match="1 to 7 bytes"):
        single_frame(bytes(8))
