"""OBD-II over ISO-TP against the ECU simulator on python-can's virtual bus."""

from __future__ import annotations

import can
import pytest

from edge_agent.obd.can_client import IsoTpTransport
from edge_agent.obd.errors import MalformedResponseError, NoResponseError
from edge_agent.obd.pids import PIDS
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import DEMO_VIN, EcuSimulator, SimulatedEcu, drive_value
from msp_protocol.codec import to_json
from msp_protocol.records import body_from_json

ENGINE = SimulatedEcu(0x7E8)
GEARBOX = SimulatedEcu(0x7E9, pids=frozenset({0x0D, 0x05}), vin=None, stored_dtcs=("P0700",))


@pytest.mark.parametrize(
    ("extended", "ecus", "protocol"),
    [
        (False, ("7E8", "7E9"), "ISO 15765-4 CAN (11 bit ID)"),
        (True, ("18DAF1E8", "18DAF1E9"), "ISO 15765-4 CAN (29 bit ID)"),
    ],
)
def test_detects_addressing_and_keeps_every_ecu(
    channel: str, bus: can.BusABC, extended: bool, ecus: tuple[str, str], protocol: str
) -> None:
    with EcuSimulator([ENGINE, GEARBOX], channel=channel, extended=extended):
        transport = IsoTpTransport(bus)
        assert transport.detect() == ecus
        assert transport.protocol == protocol
        reader = ObdReader(transport)
        supported = reader.discover()
        assert supported[ecus[1]] == frozenset({0x05, 0x0D})
        assert frozenset(PIDS) <= supported[ecus[0]]
        assert 0xA0 in supported[ecus[0]]  # walked the bitmaps up to 0xA0 for 0xA6
        samples = reader.read_values([0x0D, 0x05])
        assert sorted(s.source for s in samples if s.name == "Vehicle.Speed") == [
            f"obd:{e}" for e in ecus
        ]


def test_vin_over_multi_frame_and_dtcs(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([ENGINE, GEARBOX], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        vin = reader.read_vin()
        assert (vin.vin, vin.check_digit_ok) == (DEMO_VIN, True)
        assert reader.rejected["negative_response"] == 1  # the gearbox has no VIN
        dtcs = reader.read_dtcs()
        assert dtcs.stored == {"7E8": ("P0133", "C0035"), "7E9": ("P0700",)}
        assert dtcs.pending == {"7E8": ("P0420",), "7E9": ("P0420",)}


def test_values_decode_to_canonical_samples(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([ENGINE], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        reader.discover()
        samples = reader.read_values([0x0C, 0x0D, 0x10, 0x5E, 0xA6, 0x5A, 0x05])
        by_name = {s.name: s for s in samples}
        assert set(by_name) == {PIDS[p].signal for p in (0x0C, 0x0D, 0x10, 0x5E, 0xA6, 0x5A, 0x05)}
        assert 0 <= by_name["Vehicle.Speed"].value <= 85
        assert by_name["Vehicle.TraveledDistance"].value == pytest.approx(12345.6, abs=0.2)
        # one request carries 6 PIDs: the 7th arrives in a second answer, later
        assert (
            by_name["Vehicle.OBD.CoolantTemperature"].timestamp > by_name["Vehicle.Speed"].timestamp
        )
        assert all(s.source == "obd:7E8" for s in samples)


def test_simulated_values_change_over_time() -> None:
    assert drive_value(0x0D, 0.0) != drive_value(0x0D, 15.0)
    assert drive_value(0x1F, 30.0) == 30.0
    assert drive_value(0xA6, 3600.0) == pytest.approx(12390.6)


def test_nobody_answers(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([SimulatedEcu(behaviour="silent")], channel=channel):
        transport = IsoTpTransport(bus, timeout=0.05)
        with pytest.raises(NoResponseError, match="no ECU answered 01 00 on 11-bit nor 29-bit"):
            transport.detect()
        assert transport.protocol == "unknown"


def test_wrong_fixed_addressing_finds_nobody(channel: str, bus: can.BusABC) -> None:
    with (
        EcuSimulator([ENGINE], channel=channel, extended=True),
        pytest.raises(NoResponseError, match="on 11-bit functional"),
    ):
        IsoTpTransport(bus, addressing="11bit", timeout=0.05).detect()


def test_negative_ecu_is_counted_and_others_kept(channel: str, bus: can.BusABC) -> None:
    refusing = SimulatedEcu(0x7EA, behaviour="negative")
    with EcuSimulator([ENGINE, refusing], channel=channel):
        transport = IsoTpTransport(bus)
        reader = ObdReader(transport)
        assert "7EA" in transport.detect()
        samples = reader.read_values([0x0D])
        assert [s.source for s in samples] == ["obd:7E8"]
        assert reader.rejected["negative_response"] == 1


def test_only_negative_answers_give_no_samples(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([SimulatedEcu(behaviour="negative")], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        assert reader.read_values([0x0D]) == []
        assert reader.rejected["negative_response"] >= 1
        with pytest.raises(MalformedResponseError, match="every ECU refused the VIN request"):
            reader.read_vin()


def test_truncated_multi_frame_is_reported(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([SimulatedEcu(behaviour="truncated")], channel=channel):
        transport = IsoTpTransport(bus)
        reader = ObdReader(transport)
        assert reader.read_values([0x0D])[0].name == "Vehicle.Speed"  # single frames still work
        with pytest.raises(MalformedResponseError, match="ECU 7E8: ConsecutiveFrameTimeoutError"):
            reader.read_vin()
        assert transport.isotp_errors


def test_response_pending_extends_the_wait(channel: str, bus: can.BusABC) -> None:
    slow = SimulatedEcu(0x7E9, pids=frozenset({0x0D}), behaviour="pending")
    with EcuSimulator([ENGINE, slow], channel=channel):
        # the settle window after the engine's answer is far shorter than the slow ECU's delay
        transport = IsoTpTransport(bus, timeout=0.2)
        answers = transport.request(bytes([0x01, 0x0D]), frozenset({"7E8", "7E9"}))
        assert sorted(a.ecu for a in answers) == ["7E8", "7E9"]
        assert all(not a.is_negative for a in answers)


def test_malformed_answers_are_counted_and_others_kept(channel: str, bus: can.BusABC) -> None:
    broken = SimulatedEcu(0x7EB, behaviour="malformed")
    with EcuSimulator([ENGINE, broken], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        assert list(reader.discover()) == ["7E8"]  # 7EB's bitmap is 3 bytes
        assert reader.read_vin().vin == DEMO_VIN  # 7EB's VIN has 16 characters
        assert list(reader.read_dtcs().stored) == ["7E8"]  # 7EB's codes end mid-pair
        samples = reader.read_values([0x0C, 0x0D])
        assert {s.source for s in samples} == {"obd:7E8"}
        assert reader.rejected["malformed"] >= 3  # bitmap, stored and pending DTCs


def test_dtc_record_body(channel: str, bus: can.BusABC) -> None:
    engine = SimulatedEcu(0x7E8, permanent_dtcs=("P0133",))
    with EcuSimulator([engine, GEARBOX], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        reader.discover()
        report = reader.read_dtcs()
        assert report.permanent == {"7E8": ("P0133",), "7E9": ()}
        assert report.mil is True  # the engine has stored codes and says so in PID 01
        body = reader.dtc_body()
    statuses = [(c.code, c.status) for c in body.codes]
    assert statuses == [
        ("P0133", "stored"),
        ("C0035", "stored"),
        ("P0700", "stored"),
        ("P0420", "pending"),
        ("P0133", "permanent"),
    ]
    assert body.mil is True
    assert body.odometer_km == pytest.approx(12345.6, abs=0.2)
    assert body_from_json("dtc", to_json(body)) == body  # valid against the shipped schema


def test_clean_car_has_mil_off(channel: str, bus: can.BusABC) -> None:
    clean = SimulatedEcu(0x7E8, stored_dtcs=(), pending_dtcs=(), pids=frozenset({0x0D, 0x01}))
    with EcuSimulator([clean], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        reader.discover()
        body = reader.dtc_body()
    assert body.codes == () and body.mil is False
    assert body.odometer_km is None  # no PID A6 on this car
