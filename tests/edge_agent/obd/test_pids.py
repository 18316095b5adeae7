"""Mode 01 PID decoders against hand-computed bytes, and decoder/encoder round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import signals
from edge_agent.obd.errors import MalformedResponseError
from edge_agent.obd.pids import (
    PIDS,
    decode_monitor_status,
    decode_supported,
    encode_monitor_status,
    encode_supported,
    mode01_request,
    split_mode01,
)

# (pid, data, expected value), worked by hand from SAE J1979 formulas.
EXAMPLES = [
    (0x04, b"\xff", 100.0),  # 255 * 100/255
    (0x04, b"\x33", 20.0),  # 51 * 100/255
    (0x05, b"\x7b", 83.0),  # 123 - 40
    (0x05, b"\x00", -40.0),
    (0x0C, b"\x1a\xf8", 1726.0),  # (26*256 + 248) / 4 = 6904 / 4
    (0x0C, b"\xff\xff", 16383.75),
    (0x0D, b"\x12", 18.0),  # csselectronics example 03 41 0D 12
    (0x0F, b"\x41", 25.0),  # 65 - 40
    (0x10, b"\x01\xf4", 5.0),  # 500 / 100
    (0x11, b"\x80", 50.19607843137255),  # 128 * 100/255
    (0x1F, b"\x01\x2c", 300.0),  # 256 + 44
    (0x2F, b"\x66", 40.0),  # 102 * 100/255
    (0x46, b"\x3c", 20.0),  # 60 - 40
    (0x49, b"\x26", 14.901960784313726),  # 38 * 100/255
    (0x4A, b"\x13", 7.450980392156863),
    (0x5A, b"\xcc", 80.0),  # 204 * 100/255
    (0x5E, b"\x00\x79", 6.05),  # 121 * 0.05
    (0xA6, b"\x00\x01\xe2\x40", 12345.6),  # 0x1E240 = 123456, / 10
]


@pytest.mark.parametrize(("pid", "data", "value"), EXAMPLES)
def test_decoder_matches_hand_computed_value(pid: int, data: bytes, value: float) -> None:
    assert PIDS[pid].decode(data) == pytest.approx(value, abs=1e-8)


def test_required_pids_map_to_canonical_signals() -> None:
    assert PIDS[0x0C].signal == signals.ENGINE_SPEED
    assert PIDS[0x0D].signal == signals.SPEED
    assert PIDS[0x10].signal == signals.MAF
    assert PIDS[0x5E].signal == signals.FUEL_RATE
    assert PIDS[0xA6].signal == signals.ODOMETER
    assert PIDS[0x5A].signal == signals.ACCEL_PEDAL
    for pid in PIDS.values():
        spec = signals.CANONICAL.get(pid.signal)
        if spec is not None:
            assert spec.unit == pid.unit
        else:
            assert pid.signal.startswith("Vehicle.OBD.")


def test_decoder_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="PID 0x0C needs 2 data bytes, got 1"):
        PIDS[0x0C].decode(b"\x01")


@pytest.mark.parametrize("pid", sorted(p for p, spec in PIDS.items() if spec.length <= 2))
def test_every_raw_value_round_trips(pid: int) -> None:
    spec = PIDS[pid]
    for raw in range(1 << (8 * spec.length)):
        data = raw.to_bytes(spec.length, "big")
        assert spec.encode(spec.decode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=4))
def test_odometer_round_trips(data: bytes) -> None:
    assert PIDS[0xA6].encode(PIDS[0xA6].decode(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(PIDS)), st.floats(allow_nan=False, allow_infinity=False))
def test_encode_clamps_to_the_pid_range(pid: int, value: float) -> None:
    spec = PIDS[pid]
    decoded = spec.decode(spec.encode(value))
    assert spec.minimum <= decoded <= spec.maximum


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([0x00, 0x20, 0x40, 0xA0]), st.binary(min_size=4, max_size=4))
def test_supported_bitmap_round_trips(base: int, data: bytes) -> None:
    assert encode_supported(base, decode_supported(base, data)) == data


def test_supported_bitmap_by_hand() -> None:
    # BE 1F A8 13: the classic example answer to 01 00
    pids = decode_supported(0x00, bytes.fromhex("BE1FA813"))
    assert sorted(pids) == [
        0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x13, 0x15,
        0x1C, 0x1F, 0x20,
    ]  # fmt: skip


def test_split_mode01_reads_several_pids() -> None:
    pairs = split_mode01(bytes.fromhex("410C1AF80D12A60001E240"))
    assert pairs == [(0x0C, b"\x1a\xf8"), (0x0D, b"\x12"), (0xA6, b"\x00\x01\xe2\x40")]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("420D12", "expected a mode 01 answer"),
        ("410C1A", "PID 0x0C needs 2 bytes"),
        ("41FF00", "unknown PID 0xFF"),
        ("41", "without a PID"),
    ],
)
def test_split_mode01_names_the_problem(payload: str, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=f"ECU 7E8: .*{message}"):
        split_mode01(bytes.fromhex(payload), "7E8")


def test_request_carries_at_most_six_pids() -> None:
    assert mode01_request([0x0C, 0x0D]) == b"\x01\x0c\x0d"
    with pytest.raises(ValueError, match="1 to 6 PIDs, got 7"):
        mode01_request(list(range(1, 8)))


def test_monitor_status_by_hand_and_round_trip() -> None:
    assert decode_monitor_status(bytes.fromhex("83076500")) == (True, 3)  # A = 1000 0011
    assert decode_monitor_status(bytes.fromhex("00076500")) == (False, 0)
    for mil in (False, True):
        for count in range(0x80):
            assert decode_monitor_status(encode_monitor_status(mil, count)) == (mil, count)
    assert split_mode01(bytes.fromhex("410183076500"))[0] == (0x01, bytes.fromhex("83076500"))
