"""``msp-agent obd`` against both simulators: the JSON contract, text, polling and failures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.cli.obd import poll_rates
from edge_agent.errors import ConfigError
from edge_agent.obd.polling import DEFAULT_RATES
from edge_agent.obd.sim_ecu import DEMO_VIN, EcuSimulator, SimulatedEcu
from edge_agent.obd.sim_elm327 import QUIRKS, Elm327Quirks, Elm327Simulator

#: The installed console script: the real command line, in its own process.
MSP_AGENT = str(Path(sys.executable).with_name("msp-agent"))

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
        "elm327",
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
    report = json.loads(capsys.readouterr().out)
    check_report(report, ["7E8", "7E9"], "ISO 15765-4 CAN (11 bit ID)")
    assert report["elm327"] is None


def test_json_over_elm327(capsys: pytest.CaptureFixture[str]) -> None:
    with Elm327Simulator(ECUS, extended=True) as sim:
        code = main(["obd", "--serial", sim.port, "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    check_report(report, ["18DAF1E8", "18DAF1E9"], "ISO 15765-4 CAN (29 bit ID, 500 kbaud)")
    assert report["elm327"] == {
        "version": "ELM327 v1.5",
        "baudrate": 38400,
        "protocol_number": "7",
        "protocol_auto": True,
        "headers": True,
        "answer_count": True,
        "errors": {},
        "garbage_lines": 0,
        "pids_per_request": 6,
    }


def test_text_report_and_polling(capsys: pytest.CaptureFixture[str]) -> None:
    with Elm327Simulator(ECUS) as sim:
        code = main(["obd", "--serial", sim.port, "--poll", "0.3", "--rate", "0C=0"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"VIN:            {DEMO_VIN} (check digit ok)" in lines
    assert "stored DTCs:    P0133 C0035" in lines
    assert "MIL:            on" in lines
    adapter = "adapter:        ELM327 v1.5 at 38400 baud, protocol 6 (found by search), headers on"
    assert f"{adapter}, 6 PID(s) per request" in lines
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


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``msp-agent ARGS`` in a process of its own."""
    return subprocess.run(
        [MSP_AGENT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


#: What ``msp-agent obd --json`` must say about the adapter, per named quirk.
EXPECTED_ADAPTER: dict[str, dict[str, object]] = {
    "multi_pid_refused": {"pids_per_request": 1, "errors": {"refused": 2}},  # counted, bare
    "multi_pid_no_data": {"pids_per_request": 1},
    "multi_pid_first_only": {"pids_per_request": 1},
    "headers_refused": {"headers": False},
    "headers_ignored": {"headers": False},
    "can_error": {"errors": {"can_error": 1}},
    "buffer_full": {"errors": {"buffer_full": 1}},
    "bus_busy": {"errors": {"bus_busy": 1}},
    "data_error": {"errors": {"data_error": 1}},
    "stopped": {"errors": {"stopped": 1}},
    "unable_to_connect": {"errors": {"unable_to_connect": 1}},
    "slow_search": {},
    "baud_9600": {"baudrate": 9600},
    "baud_115200": {"baudrate": 115200},
    "baud_500000": {"baudrate": 500000},
    "spaces_on": {},
    "lowercase": {},
    "echo_on": {},
    "count_refused": {"answer_count": False, "errors": {"refused": 1}},
}


def test_every_quirk_has_an_expectation() -> None:
    assert set(EXPECTED_ADAPTER) | {"dead"} == set(QUIRKS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ADAPTER))
def test_msp_agent_obd_completes_against_every_adapter_quirk(name: str) -> None:
    # one error per kind at most: the intermittent repeats depend on how many requests run
    quirks = dataclasses.replace(QUIRKS[name], error_every=0)
    timeout = []
    if name == "slow_search":  # the search outlasts the answer deadline several times over
        quirks = dataclasses.replace(quirks, search_s=2.5)
        timeout = ["--timeout", "1"]
    with Elm327Simulator(ECUS, quirks=quirks) as sim:
        done = run_cli("obd", "--serial", sim.port, "--json", *timeout)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    headers = name not in ("headers_refused", "headers_ignored")
    assert report["ecus"] == (["7E8", "7E9"] if headers else ["elm327"])
    assert report["vin"] == DEMO_VIN
    assert report["dtcs"]["stored"] == ["P0133", "C0035"]
    assert report["protocol"] == "ISO 15765-4 CAN (11 bit ID, 500 kbaud)"
    assert report["values"]["Vehicle.TraveledDistance"] == pytest.approx(12345.6, abs=0.2)
    assert len(report["values"]) == 15  # every PID the engine supports
    expected = {
        "version": "ELM327 v1.5",
        "baudrate": 38400,
        "protocol_number": "6",
        "protocol_auto": True,
        "headers": True,
        "answer_count": True,
        "errors": {},
        "garbage_lines": 0,
        "pids_per_request": 6,
    }
    assert report["elm327"] == expected | EXPECTED_ADAPTER[name]


def test_simulated_quirks_from_the_command_line() -> None:
    done = run_cli(
        "obd", "--simulate", "elm327", "--quirk", "baud_9600", "--quirk", "multi_pid_refused",
        "--quirk", "lowercase", "--json", "--poll", "0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report, polled = done.stdout.split("\n}\n")
    adapter = json.loads(report + "}")["elm327"]
    assert (adapter["baudrate"], adapter["pids_per_request"]) == (9600, 1)
    assert {json.loads(line)["name"] for line in polled.splitlines()} >= {"Vehicle.Speed"}


def test_a_dead_adapter_exits_2_with_a_clear_message() -> None:
    with Elm327Simulator(ECUS, quirks=QUIRKS["dead"]) as sim:
        done = run_cli("obd", "--serial", sim.port, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"msp-agent: error: {sim.port}: 0100: the adapter found no OBD")
    assert last.endswith("(adapter said 'UNABLE TO CONNECT'), 3 times")
    assert "Traceback" not in done.stderr


def test_a_silent_adapter_exits_2_with_a_clear_message() -> None:
    with Elm327Simulator(ECUS, silent=True) as sim:
        done = run_cli("obd", "--serial", sim.port, "--baud", "38400")
    assert done.returncode == 2
    assert f"msp-agent: error: {sim.port}: no '>' prompt within 3.0 s after ATZ" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_adapter_at_no_known_speed_exits_2() -> None:
    with Elm327Simulator(ECUS, quirks=Elm327Quirks(baudrate=57600)) as sim:
        done = run_cli("obd", "--serial", sim.port)
    assert done.returncode == 2
    assert "no ELM327 answers ATZ at any of 38400, 9600, 115200, 500000 baud" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serial", "/nonexistent/ttyOBD", "--quirk", "dead"], "needs --simulate elm327"),
        (
            ["--simulate", "elm327", "--quirk", "baud_9600", "--quirk", "baud_115200"],
            "'baud_115200' contradicts",
        ),
    ],
)
def test_bad_quirk_use_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["obd", *args]) == 2
    assert message in capsys.readouterr().err
