"""``msp-agent obd`` against both simulators: the JSON contract, text, polling and failures."""

from __future__ import annotations

import json
import uuid

import pytest

from edge_agent.cli import main
from edge_agent.cli.obd import poll_rates
from edge_agent.errors import ConfigError
from edge_agent.obd.polling import DEFAULT_RATES
from edge_agent.obd.sim_ecu import DEMO_VIN, EcuSimulator, SimulatedEcu
from edge_agent.obd.sim_elm327 import Elm327Simulator

ECUS = [SimulatedEcu(0x7E8), SimulatedEcu(0x7E9, pids=frozenset({0x0D}), vin=None)]


def check_report(report: dict[str, object], ecus: list[str], protocol: str) -> None:
    assert set(report) == {
        "vin",
        "vin_check_digit_ok",
        "protocol",
        "ecus",
        "supported_pids",
        "dtcs",
        "mil",
        "values",
    }
    assert report["vin"] == DEMO_VIN
    assert report["vin_check_digit_ok"] is True
    assert report["protocol"] == protocol
    assert report["ecus"] == ecus
    assert {"0C", "0D", "5E", "A6"} <= set(report["supported_pids"])  # type: ignore[arg-type]
    assert report["dtcs"] == {"stored": ["P0133", "C0035"], "pending": ["P0420"], "permanent": []}
    assert report["mil"] is True
    values = report["values"]
    assert isinstance(values, dict)
    assert 0 <= values["Vehicle.Speed"] <= 85
    assert values["Vehicle.TraveledDistance"] == pytest.approx(12345.6, abs=0.2)
    assert values["Vehicle.OBD.FuelRate"] > 0


def test_json_over_iso_tp(capsys: pytest.CaptureFixture[str]) -> None:
    channel = f"cli-{uuid.uuid4().hex[:8]}"
    with EcuSimulator(ECUS, channel=channel):
        code = main(["obd", "--can", channel, "--interface", "virtual", "--json"])
    assert code == 0
    check_report(json.loads(capsys.readouterr().out), ["7E8", "7E9"], "ISO 15765-4 CAN (11 bit ID)")


def test_json_over_elm327(capsys: pytest.CaptureFixture[str]) -> None:
    with Elm327Simulator(ECUS, extended=True) as sim:
        code = main(["obd", "--serial", sim.port, "--json"])
    assert code == 0
    check_report(
        json.loads(capsys.readouterr().out),
        ["18DAF1E8", "18DAF1E9"],
        "ISO 15765-4 CAN (29 bit ID, 500 kbaud)",
    )


def test_text_report_and_polling(capsys: pytest.CaptureFixture[str]) -> None:
    with Elm327Simulator(ECUS) as sim:
        code = main(["obd", "--serial", sim.port, "--poll", "0.3", "--rate", "0C=0"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"VIN:            {DEMO_VIN} (check digit ok)" in lines
    assert "stored DTCs:    P0133 C0035" in lines
    assert "MIL:            on" in lines
    polled = [json.loads(line) for line in lines if line.startswith("{")]
    assert polled, "no samples polled"
    assert {p["source"] for p in polled} <= {"obd:7E8", "obd:7E9"}
    assert "Vehicle.Speed" in {p["name"] for p in polled}
    assert "Vehicle.Powertrain.CombustionEngine.Speed" not in {p["name"] for p in polled}


def test_nothing_answering_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    channel = f"cli-{uuid.uuid4().hex[:8]}"
    with EcuSimulator([SimulatedEcu(behaviour="silent")], channel=channel):
        code = main(["obd", "--can", channel, "--interface", "virtual", "--timeout", "0.05"])
    assert code == 2
    assert "no ECU answered 01 00 on 11-bit nor 29-bit" in capsys.readouterr().err


def test_unknown_can_interface_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["obd", "--can", "can9", "--interface", "no-such-interface"]) == 2
    assert "cannot open CAN no-such-interface channel can9" in capsys.readouterr().err


def test_serial_and_can_are_exclusive() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["obd", "--serial", "/dev/null", "--can", "can0"])
    assert exc.value.code == 2


def test_rate_overrides() -> None:
    rates = poll_rates(["0d=20", "2F=0.5", "46=0"])
    assert rates[0x0D] == 20.0 and rates[0x2F] == 0.5
    assert 0x46 not in rates
    assert rates[0x0C] == DEFAULT_RATES[0x0C]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0D", "expected PID=HZ"),
        ("speed=10", "expected PID=HZ"),
        ("0D=fast", "expected PID=HZ"),
        ("0D=50", "PID 0x0D: 50.0 Hz is outside"),
        ("99=1", "PID 0x99: not a PID this agent decodes"),
    ],
)
def test_bad_rate_exits_2_before_touching_the_car(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=message):
        poll_rates([spec])
    assert main(["obd", "--serial", "/nonexistent/ttyOBD", "--rate", spec]) == 2
    assert message.split(":", maxsplit=1)[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mode", "ecus"),
    [("can", ["7E8", "7E9"]), ("can29", ["18DAF1E8", "18DAF1E9"]), ("elm327", ["7E8", "7E9"])],
)
def test_simulate_needs_no_car(
    mode: str, ecus: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["obd", "--simulate", mode, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ecus"] == ecus
    assert report["vin"] == DEMO_VIN
