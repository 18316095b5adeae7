"""What each catalogue car puts on its bus for a known motion, written from opendbc's
carstate.py and the DBCs, independently of the maps: the maps must turn it back into the
canonical values (DESIGN.md signs: + forward, + left, yaw + counter-clockwise, steering + left).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cantools.database.can import Message

from edge_agent import signals as sig
from edge_agent.frames import Frame
from edge_agent.signalmap import SignalMap

G = 9.80665


@dataclass(frozen=True)
class Motion:
    """A moment of driving, in canonical units."""

    name: str
    speed: float  # km/h, magnitude (the buses here do not sign reverse)
    accel: float  # m/s^2, + forward
    lateral: float  # m/s^2, + left
    yaw: float  # deg/s, + counter-clockwise
    steer: float  # deg, + left
    brake: bool
    gear: str  # P R N D
    pedal: float = 0.0  # %
    rpm: float = 800.0
    odometer: float = 23456.0  # km
    belted: bool = True


MOTIONS = (
    Motion("braking", 50.0, -3.5, 0.3, 1.0, 5.0, True, "D", rpm=1200.0),
    Motion("reverse", 6.0, -1.0, 0.0, -4.0, -30.0, False, "R", pedal=10.0, belted=False),
    Motion("left_turn", 30.0, 0.5, 3.0, 20.0, 120.0, False, "D", pedal=15.0, rpm=2000.0),
    Motion("right_turn", 30.0, -1.2, -3.0, -20.0, -120.0, False, "D", pedal=5.0),
    Motion("parked", 0.0, 0.0, 0.0, 0.0, 0.0, True, "P"),
)

#: The canonical gear of each shifter position (DESIGN.md: -1 reverse, 0 neutral/park).
GEAR = {"P": 0, "R": -1, "N": 0, "D": 1}

Bus = dict[tuple[str, str], float | str]


def expected(m: Motion) -> dict[str, float]:
    """The canonical values a map must give for ``m``."""
    return {
        sig.SPEED: m.speed, sig.ACCEL_LON: m.accel, sig.ACCEL_LAT: m.lateral,
        sig.YAW_RATE: m.yaw, sig.STEERING_ANGLE: m.steer, sig.ACCEL_PEDAL: m.pedal,
        sig.BRAKE_PEDAL: 100.0 if m.brake else 0.0, sig.ENGINE_SPEED: m.rpm,
        sig.GEAR: GEAR[m.gear], sig.ODOMETER: m.odometer, sig.BELTED: m.belted,
    }  # fmt: skip


def toyota(m: Motion) -> Bus:
    return {
        ("SPEED", "SPEED"): m.speed,
        ("VSC1S07", "GVC"): m.accel,  # carcontroller.py:208 blends it with aEgo
        ("KINEMATICS", "ACCEL_Y"): -m.lateral,  # + right on the comma2k19 RAV4
        ("KINEMATICS", "YAW_RATE"): m.yaw,
        ("STEER_ANGLE_SENSOR", "STEER_ANGLE"): m.steer,  # openpilot steeringAngleDeg, + left
        ("GAS_PEDAL", "GAS_PEDAL"): m.pedal,
        ("BRAKE_MODULE", "BRAKE_PRESSED"): int(m.brake),
        ("ENGINE_RPM", "RPM"): m.rpm,
        ("GEAR_PACKET", "GEAR"): m.gear,
        ("UI_SETTING", "ODOMETER"): m.odometer,
        ("BODY_CONTROL_STATE", "SEATBELT_DRIVER_UNLATCHED"): int(not m.belted),
    }


def honda(m: Motion) -> Bus:
    return {
        ("ENGINE_DATA", "XMISSION_SPEED"): m.speed,
        ("VEHICLE_DYNAMICS", "LONG_ACCEL"): m.accel,  # "wheel speed derivative"
        ("VEHICLE_DYNAMICS", "LAT_ACCEL"): m.lateral,
        ("STEERING_SENSORS", "STEER_ANGLE"): m.steer,
        ("POWERTRAIN_DATA", "BRAKE_PRESSED"): int(m.brake),
        ("POWERTRAIN_DATA", "ENGINE_RPM"): m.rpm,
        ("GEARBOX_CVT", "GEAR_SHIFTER"): m.gear,
        ("ODOMETER", "ODOMETER"): m.odometer,
        ("SEATBELT_STATUS", "SEATBELT_DRIVER_LATCHED"): int(m.belted),
    }


def _nissan(brake: tuple[str, str], belt: tuple[str, str]) -> Callable[[Motion], Bus]:
    def bus(m: Motion) -> Bus:
        return {
            ("WHEEL_SPEEDS_REAR", "WHEEL_SPEED_RL"): m.speed,
            ("WHEEL_SPEEDS_REAR", "WHEEL_SPEED_RR"): m.speed,
            ("STEER_ANGLE_SENSOR", "STEER_ANGLE"): m.steer,
            brake: int(m.brake),
            ("GEARBOX", "GEAR_SHIFTER"): m.gear,
            belt: int(m.belted),
        }

    return bus


def subaru(m: Motion) -> Bus:
    return {
        ("Wheel_Speeds", "RL"): m.speed,
        ("G_Sensor", "Longitudinal"): m.accel,
        ("G_Sensor", "Lateral"): m.lateral,
        ("Steering_Torque", "Steering_Angle"): m.steer,
        ("Brake_Status", "Brake"): int(m.brake),
        ("Throttle", "Engine_RPM"): m.rpm,
        ("Transmission", "Gear"): m.gear,
        ("Dashlights", "SEATBELT_FL"): int(not m.belted),
    }


def mazda_2017(m: Motion) -> Bus:
    return {
        ("ENGINE_DATA", "SPEED"): m.speed,
        ("BRAKE", "VEHICLE_ACC_X"): m.accel,
        ("BRAKE", "VEHICLE_ACC_Y"): m.lateral,
        ("STEER", "STEER_ANGLE"): m.steer,
        ("PEDALS", "BRAKE_ON"): int(m.brake),
        ("ENGINE_DATA", "RPM"): m.rpm,
        ("GEAR", "GEAR"): m.gear,
        ("SEATBELT", "DRIVER_SEATBELT"): int(m.belted),
    }


def mazda_3_2019(m: Motion) -> Bus:
    # GEAR.GEAR: 13 P, 12 R, 11 N, 1..6 the gear engaged in D (here the 1st)
    return {
        ("WHEEL_SPEEDS", "FL"): m.speed,
        ("BRAKE_PEDAL", "BRAKE_PEDAL_PRESSED"): int(m.brake),
        ("GEAR", "GEAR"): {"P": 13, "R": 12, "N": 11, "D": 1}[m.gear],
    }


def hyundai(m: Motion) -> Bus:
    return {
        ("WHL_SPD11", "WHL_SPD_RL"): m.speed,
        ("ESP12", "LONG_ACCEL"): m.accel,
        ("ESP12", "LAT_ACCEL"): m.lateral,
        ("ESP12", "YAW_RATE"): m.yaw,
        ("SAS11", "SAS_Angle"): m.steer,
        ("EMS12", "PV_AV_CAN"): m.pedal,
        ("TCS13", "DriverOverride"): 2 if m.brake else (1 if m.pedal else 0),
        ("EMS11", "N"): m.rpm,
        ("LVR12", "CF_Lvr_Gear"): m.gear,
        ("CLU12", "CF_Clu_Odometer"): m.odometer,
        ("CGW1", "CF_Gway_DrvSeatBeltSw"): int(m.belted),
    }


def hyundai_canfd(m: Motion) -> Bus:
    return {
        ("WHEEL_SPEEDS", "WHL_SpdRLVal"): m.speed,
        ("ESC_02_10ms", "ESC_LongAccelVal"): m.accel / G,
        ("ESC_02_10ms", "ESC_LatAccelVal"): m.lateral / G,
        ("ESC_02_10ms", "ESC_YawRtVal"): m.yaw,
        ("STEERING_SENSORS", "STEERING_ANGLE"): m.steer,
        ("TCS", "DriverBraking"): int(m.brake),
        ("GEAR_SHIFTER", "GEAR"): m.gear,
        ("DOORS_SEATBELTS", "DRIVER_SEATBELT"): "Latched" if m.belted else "Unlatched",
    }


BUSES: dict[str, Callable[[Motion], Bus]] = {
    "toyota_new_mc_pt": toyota,
    "toyota_nodsu_pt": toyota,
    "toyota_tnga_k_pt": toyota,
    "honda_civic_2016": honda,
    "honda_crv_2016": honda,
    "honda_bosch_radarless": honda,
    "nissan_leaf_2018": _nissan(("CRUISE_THROTTLE", "USER_BRAKE_PRESSED"),
                                ("SEATBELT", "SEATBELT_DRIVER_LATCHED")),
    "nissan_xtrail_2017": _nissan(("DOORS_LIGHTS", "USER_BRAKE_PRESSED"),
                                  ("HUD", "SEATBELT_DRIVER_LATCHED")),
    "subaru_global_2017": subaru,
    "mazda_2017": mazda_2017,
    "mazda_3_2019": mazda_3_2019,
    "hyundai_kia_generic": hyundai,
    "hyundai_canfd": hyundai_canfd,
}  # fmt: skip


def encode_frames(signal_map: SignalMap, bus: Bus, t: float) -> list[Frame]:
    """The frames that carry ``bus`` (message, signal) values, encoded with the map's DBC;
    every other signal of those messages is what all-zero bytes decode to."""
    by_name: dict[str, Message] = {r.message.name: r.message for r in signal_map.messages.values()}
    mapped = {(r.message.name, rule.signal)
              for r in signal_map.messages.values() for rule in r.rules}  # fmt: skip
    assert mapped <= set(bus), f"the map reads {sorted(mapped - set(bus))}, not on this bus"
    values: dict[str, dict[str, float]] = {}
    for (message_name, signal_name), given in bus.items():
        message = by_name[message_name]
        if message_name not in values:
            values[message_name] = dict(
                message.decode(bytes(message.length), decode_choices=False, scaling=True)
            )
        value = given
        if isinstance(given, str):  # a value name of the DBC
            signal = message.get_signal_by_name(signal_name)
            raws = [raw for raw, label in (signal.choices or {}).items() if str(label) == given]
            assert len(raws) == 1, f"{message_name}.{signal_name} has no one value {given!r}"
            value = raws[0] * signal.scale + signal.offset
        values[message_name][signal_name] = float(value)
    return [
        Frame(t, by_name[n].frame_id, by_name[n].encode(v, scaling=True, strict=False),
              by_name[n].is_extended_frame)
        for n, v in values.items()
    ]  # fmt: skip
