"""DBC decoding: conversions, byte orders, extended IDs, multiplexing and bad frames."""

from __future__ import annotations

import math

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.decode import DbcDecoder
from edge_agent.frames import Frame
from edge_agent.signalmap import load_signal_map
from edge_agent.signals import CANONICAL
from tests.conftest import DATA, DEMO_DBC, DEMO_MAP

TEST_DB = cantools.database.load_file(DATA / "test_vehicle.dbc", strict=False)
DEMO_DB = cantools.database.load_file(DEMO_DBC)
DEMO_MAP_LOADED = load_signal_map(DEMO_MAP)


def _by_name(samples: list) -> dict[str, object]:  # type: ignore[type-arg]
    return {s.name: s.value for s in samples}


@pytest.fixture
def decoder() -> DbcDecoder:
    return DbcDecoder(load_signal_map(DATA / "maps" / "good.toml"))


def test_big_endian_signals_with_unit_conversion_and_invert(decoder: DbcDecoder) -> None:
    message = TEST_DB.get_message_by_name("MOTION_BE")
    data = message.encode({"LongAccel": -3.5, "YawRad": 0.5, "SpeedMph": 62.5, "PedalRatio": 0.5})
    samples = decoder.decode(Frame(12.5, message.frame_id, data, bus="chassis"))
    values = _by_name(samples)
    assert values["Vehicle.Speed"] == pytest.approx(62.5 * 1.609344)
    assert values["Vehicle.Acceleration.Longitudinal"] == pytest.approx(3.5)  # inverted
    assert values["Vehicle.AngularVelocity.Yaw"] == pytest.approx(math.degrees(0.5))
    assert values["Vehicle.Chassis.Accelerator.PedalPosition"] == pytest.approx(50.0)
    assert {s.timestamp for s in samples} == {12.5}
    assert {s.source for s in samples} == {"chassis"}


def test_extended_id_message(decoder: DbcDecoder) -> None:
    message = TEST_DB.get_message_by_name("J1939_SPEED")
    assert message.is_extended_frame
    assert message.frame_id in decoder.ids
    data = message.encode({"WheelSpeed": 50.0, "BrakeSwitch": 1})
    samples = decoder.decode(Frame(1.0, message.frame_id, data, is_extended_id=True))
    assert _by_name(samples) == {"Vehicle.Chassis.Brake.PedalPosition": 1.0}


def test_bool_invert_is_logical_not(decoder: DbcDecoder) -> None:
    message = DEMO_DB.get_message_by_name("BODY")
    on = message.encode({"DriverBelted": 1, "IgnitionOn": 1, "CrashDetected": 0})
    assert _by_name(decoder.decode(Frame(1.0, message.frame_id, on))) == {
        "Vehicle.IsIgnitionOn": False
    }


def test_multiplexed_pages(decoder: DbcDecoder) -> None:
    message = TEST_DB.get_message_by_name("MUXED")
    page1 = decoder.decode(Frame(1.0, message.frame_id, bytes([1, 0xFF, 0, 0, 0, 0, 0, 0])))
    assert _by_name(page1) == {"Vehicle.Powertrain.Transmission.CurrentGear": -1}
    page2 = decoder.decode(Frame(1.0, message.frame_id, bytes([2, 3, 0, 0, 0, 0, 0, 0])))
    assert page2 == []
    assert sum(decoder.rejected.values()) == 0


def test_bad_frames_are_counted_by_reason_and_decoding_continues(decoder: DbcDecoder) -> None:
    motion = TEST_DB.get_message_by_name("MOTION_BE")
    muxed = TEST_DB.get_message_by_name("MUXED")
    good = motion.encode({"LongAccel": 1.0, "YawRad": 0.0, "SpeedMph": 10.0, "PedalRatio": 0.1})
    assert decoder.decode(Frame(1.0, motion.frame_id, good[:6])) == []
    assert decoder.decode(Frame(1.0, muxed.frame_id, bytes([7, 0, 0, 0, 0, 0, 0, 0]))) == []
    # PedalRatio raw 0xFF = 1.02 > DBC max 1: a plausible 102 %, kept and counted.
    over_dbc = bytearray(good)
    over_dbc[6] = 0xFF
    values = _by_name(decoder.decode(Frame(1.0, motion.frame_id, bytes(over_dbc))))
    assert values["Vehicle.Chassis.Accelerator.PedalPosition"] == pytest.approx(102.0)
    assert decoder.outside_dbc_range == {"MOTION_BE.PedalRatio": 1}
    # SpeedMph raw 0xFFFF = 655.35 mph (1,055 km/h): implausible, refused, the others kept.
    too_fast = bytearray(good)
    too_fast[4:6] = b"\xff\xff"
    values = _by_name(decoder.decode(Frame(1.5, motion.frame_id, bytes(too_fast))))
    assert "Vehicle.Speed" not in values
    assert values["Vehicle.Chassis.Accelerator.PedalPosition"] == pytest.approx(10.0, abs=0.4)
    assert decoder.rejected == {"bad_length": 1, "decode_error": 1, "implausible": 1}
    assert len(decoder.decode(Frame(2.0, motion.frame_id, good))) == 4


def _signal_values(message: cantools.database.can.Message) -> st.SearchStrategy[dict[str, float]]:
    fields = {}
    for signal in message.signals:
        lo, hi = float(signal.minimum), float(signal.maximum)
        steps = round((hi - lo) / signal.scale)
        fields[signal.name] = st.integers(0, steps).map(
            lambda k, lo=lo, scale=signal.scale: lo + k * scale
        )
    return st.fixed_dictionaries(fields)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_encode_decode_round_trip_through_the_demo_map(data: st.DataObject) -> None:
    rule = data.draw(st.sampled_from(sorted(DEMO_MAP_LOADED.messages.values(), key=id)))
    message = rule.message
    values = data.draw(_signal_values(message))
    frame = Frame(0.0, message.frame_id, message.encode(values), message.is_extended_frame)
    decoder = DbcDecoder(DEMO_MAP_LOADED)
    decoded = _by_name(decoder.decode(frame))
    implausible = 0
    for r in rule.rules:
        raw = values[r.signal]
        scale = message.get_signal_by_name(r.signal).scale
        if r.is_bool:
            assert decoded[r.canonical] is ((raw != 0) != r.invert)
            continue
        expected = (-raw if r.invert else raw) * r.factor
        low, high = CANONICAL[r.canonical].plausible or (-math.inf, math.inf)
        slack = scale * abs(r.factor) / 2 + 1e-9
        if not low - slack <= expected <= high + slack:
            assert r.canonical not in decoded  # beyond physics: dropped, counted
            implausible += 1
            continue
        got = decoded[r.canonical]
        assert isinstance(got, int | float)
        assert got == pytest.approx(expected, abs=scale * abs(r.factor) + 1e-9)
    assert decoder.rejected == ({"implausible": implausible} if implausible else {})

NONSENSE_DB = cantools.database.load_file(DATA / "nonsense_ranges.dbc")


def test_values_outside_nonsense_dbc_ranges_are_kept_and_counted_per_signal() -> None:
    decoder = DbcDecoder(load_signal_map(DATA / "maps" / "nonsense_ranges.toml"))
    kinematics = NONSENSE_DB.get_message_by_name("KINEMATICS")
    braking = kinematics.encode(
        {"ACCEL_X": -6.0, "ACCEL_Y": -2.0, "YAW_RATE": -20.0}, strict=False
    )
    values = _by_name(decoder.decode(Frame(1.0, kinematics.frame_id, braking)))
    assert values["Vehicle.Acceleration.Longitudinal"] == pytest.approx(-6.0, abs=0.02)
    assert values["Vehicle.Acceleration.Lateral"] == pytest.approx(-2.0, abs=0.02)
    assert values["Vehicle.AngularVelocity.Yaw"] == pytest.approx(-20.0, abs=0.13)
    assert decoder.outside_dbc_range == {
        "KINEMATICS.ACCEL_X": 1,
        "KINEMATICS.ACCEL_Y": 1,
        "KINEMATICS.YAW_RATE": 1,
    }
    assert sum(decoder.rejected.values()) == 0


def test_rounding_at_a_declared_bound_is_not_outside_it() -> None:
    decoder = DbcDecoder(load_signal_map(DATA / "maps" / "nonsense_ranges.toml"))
    steer = NONSENSE_DB.get_message_by_name("STEER_ANGLE_SENSOR")
    frame = Frame(1.0, steer.frame_id, steer.encode({"STEER_FRACTION": -0.7}, strict=False))
    [sample] = decoder.decode(frame)
    assert sample.value == pytest.approx(-0.7)
    assert sample.value != -0.7  # cantools gives -0.7000000000000001
    assert decoder.outside_dbc_range == {}


def test_physically_implausible_values_are_dropped_and_counted() -> None:
    decoder = DbcDecoder(load_signal_map(DATA / "maps" / "nonsense_ranges.toml"))
    speed = NONSENSE_DB.get_message_by_name("SPEED")
    assert _by_name(decoder.decode(Frame(1.0, speed.frame_id, speed.encode({"SPEED": 449.99}))))
    too_fast = speed.encode({"SPEED": 655.35}, strict=False)
    assert decoder.decode(Frame(2.0, speed.frame_id, too_fast)) == []
    assert decoder.rejected == {"implausible": 1}
    assert decoder.outside_dbc_range == {}  # [0|0] declares no range


def test_map_load_warns_once_per_range_that_cannot_hold_its_layout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    load_signal_map(DATA / "maps" / "nonsense_ranges.toml")
    warned = [r.getMessage() for r in caplog.records if "outside_dbc_range" in r.getMessage()]
    assert len(warned) == 3
    assert all("nonsense_ranges.toml" in w for w in warned)
    assert {w.split("DBC declares ")[1].split(" ")[0] for w in warned} == {
        "KINEMATICS.ACCEL_X",
        "KINEMATICS.ACCEL_Y",
        "KINEMATICS.YAW_RATE",
    }


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=8, max_size=8), which=st.integers(0, 1000))
def test_the_compiled_fast_path_decodes_as_cantools_itself(payload: bytes, which: int) -> None:
    # every mapped demo message, decoded from the same bytes by the compiled plan and by
    # cantools' own decode_simple (the path multiplexed messages take): same samples, same flags
    from edge_agent.decode import _fields, _Plan  # noqa: PLC0415 - the compiled plans

    fast = DbcDecoder(DEMO_MAP_LOADED)
    slow = DbcDecoder(DEMO_MAP_LOADED)
    slow._plans = {
        can_id: _Plan(p.rule, p.length, False, None, None, _fields(p.rule, {}))
        for can_id, p in fast._plans.items()
    }
    ids = sorted(fast.ids)
    can_id = ids[which % len(ids)]
    frame = Frame(5.0, can_id, payload, can_id > 0x7FF, "can0")
    got, want = fast.decode(frame), slow.decode(frame)
    assert [(s.name, s.value, s.checked) for s in got] == [
        (s.name, s.value, s.checked) for s in want
    ]
    assert fast.rejected == slow.rejected and fast.outside_dbc_range == slow.outside_dbc_range


def test_checked_marks_only_values_scoring_would_accept() -> None:
    from edge_agent.scoring import Scorer  # noqa: PLC0415

    message = DEMO_DB.get_message_by_name("VEHICLE_SPEED")
    decoder = DbcDecoder(DEMO_MAP_LOADED)
    ok = decoder.decode(Frame(1.0, message.frame_id, message.encode(
        {"VehicleSpeed": 50.0, "SpeedLimit": 60, "SpeedCounter": 0})))  # fmt: skip
    assert ok and all(s.checked for s in ok)
    unstamped = decoder.decode(Frame(math.nan, message.frame_id, message.encode(
        {"VehicleSpeed": 50.0, "SpeedLimit": 60, "SpeedCounter": 0})))  # fmt: skip
    assert unstamped and not any(s.checked for s in unstamped)
    scorer = Scorer()
    for sample in unstamped:
        assert scorer.feed(sample) == []
    assert scorer.rejected["bad_timestamp"] == len(unstamped)  # checked in full, and refused
