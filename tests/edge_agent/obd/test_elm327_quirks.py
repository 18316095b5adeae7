"""ELM327 adapters as they are sold: every named simulator quirk, through the real pyserial path
on a pty, is handled by the transport and the reader."""

from __future__ import annotations

import dataclasses
import os
import select
import threading
import tty

import pytest

from edge_agent.obd.elm327 import BAUD_RATES, UNKNOWN_ECU, Elm327Transport
from edge_agent.obd.errors import AdapterError, AdapterReplyError, AdapterTimeoutError
from edge_agent.obd.polling import Poller, Schedule
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import DEMO_VIN, SimulatedEcu
from edge_agent.obd.sim_elm327 import QUIRKS, Elm327Quirks, Elm327Simulator, combine_quirks
from edge_agent.samples import Sample

ENGINE = SimulatedEcu(0x7E8)
GEARBOX = SimulatedEcu(0x7E9, pids=frozenset({0x0D, 0x05}), vin=None, stored_dtcs=("P0700",))
ASKED = [0x0C, 0x0D, 0x05, 0x10]
ENGINE_SIGNALS = {
    "Vehicle.Powertrain.CombustionEngine.Speed",
    "Vehicle.Speed",
    "Vehicle.OBD.CoolantTemperature",
    "Vehicle.OBD.MAF",
}


def by_source(samples: list[Sample]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for sample in samples:
        found.setdefault(sample.source, set()).add(sample.name)
    return found


def mode01_pid_counts(commands: list[str]) -> list[int]:
    """PIDs per mode 01 request the adapter received (answer-count digit left off)."""
    return [(len(c) - 2) // 2 for c in commands if c.startswith("01")]


def test_multi_pid_requests_work_on_a_genuine_adapter() -> None:
    with Elm327Simulator([ENGINE, GEARBOX]) as sim:
        reader = ObdReader(Elm327Transport(sim.port, timeout=2.0))
        reader.discover()
        samples = reader.read_values(ASKED)
        assert by_source(samples) == {
            "obd:7E8": ENGINE_SIGNALS,
            "obd:7E9": {"Vehicle.Speed", "Vehicle.OBD.CoolantTemperature"},
        }
        assert reader.pids_per_request == 6
        assert mode01_pid_counts(sim.commands)[-1] == 4
        reader.transport.close()


@pytest.mark.parametrize(
    "quirk", ["multi_pid_refused", "multi_pid_no_data", "multi_pid_first_only"]
)
def test_multi_pid_trouble_falls_back_to_one_pid_and_remembers(quirk: str) -> None:
    with Elm327Simulator([ENGINE, GEARBOX], quirks=QUIRKS[quirk]) as sim:
        reader = ObdReader(Elm327Transport(sim.port, timeout=2.0))
        reader.discover()
        samples = reader.read_values(ASKED)
        # every ECU's every value, once: nothing lost, nothing doubled by the second asking
        assert by_source(samples) == {
            "obd:7E8": ENGINE_SIGNALS,
            "obd:7E9": {"Vehicle.Speed", "Vehicle.OBD.CoolantTemperature"},
        }
        assert len(samples) == 6
        assert reader.pids_per_request == 1
        sent = len(sim.commands)
        again = reader.read_values(ASKED)
        assert by_source(again) == by_source(samples)
        # remembered for the connection: no request of several PIDs again
        assert mode01_pid_counts(sim.commands[sent:]) == [1, 1, 1, 1]
        reader.transport.close()


def test_no_answer_at_all_is_not_taken_for_a_single_pid_adapter() -> None:
    with Elm327Simulator([SimulatedEcu(pids=frozenset({0x0C}))]) as sim:
        reader = ObdReader(Elm327Transport(sim.port, timeout=2.0))
        reader.discover()
        assert [s.name for s in reader.read_values([0x0C, 0x0D])] == [
            "Vehicle.Powertrain.CombustionEngine.Speed"
        ]
        assert reader.pids_per_request == 6  # the ECU lacks 0D; the adapter is fine
        reader.transport.close()


@pytest.mark.parametrize("quirk", ["headers_refused", "headers_ignored"])
def test_headers_refused_or_ignored(quirk: str) -> None:
    with Elm327Simulator([ENGINE], quirks=QUIRKS[quirk]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        assert list(reader.discover()) == [UNKNOWN_ECU]
        assert reader.read_vin().vin == DEMO_VIN  # from the 0: 1: 2: segment lines
        assert {s.name for s in reader.read_values(ASKED)} == ENGINE_SIGNALS
        assert reader.read_dtcs().stored == {UNKNOWN_ECU: ("P0133", "C0035")}
        assert transport.status().headers is False
        assert not transport.rejected  # no header line was misread as garbage
        transport.close()


@pytest.mark.parametrize("quirks", ["spaces_on", "lowercase", "echo_on", "spaces_on+lowercase"])
@pytest.mark.parametrize(
    ("extended", "ecus"), [(False, ["7E8", "7E9"]), (True, ["18DAF1E8", "18DAF1E9"])]
)
def test_text_quirks_read_everything(quirks: str, extended: bool, ecus: list[str]) -> None:
    quirk = combine_quirks(quirks.split("+"))
    with Elm327Simulator([ENGINE, GEARBOX], extended=extended, quirks=quirk) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        assert sorted(reader.discover()) == ecus
        assert reader.read_vin().vin == DEMO_VIN
        assert reader.read_dtcs().stored == {ecus[0]: ("P0133", "C0035"), ecus[1]: ("P0700",)}
        assert by_source(reader.read_values(ASKED))[f"obd:{ecus[0]}"] == ENGINE_SIGNALS
        assert transport.status().headers is True
        assert not transport.rejected
        transport.close()


def test_an_adapter_without_answer_counts_is_asked_without_them() -> None:
    with Elm327Simulator([ENGINE, GEARBOX], quirks=QUIRKS["count_refused"]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        reader.discover()  # 0120 carries a count: refused once, then asked without
        assert transport.status().answer_count is False
        assert transport.errors == {"refused": 1}
        assert by_source(reader.read_values(ASKED))["obd:7E8"] == ENGINE_SIGNALS
        assert reader.pids_per_request == 6  # the count, not the PIDs, was the trouble
        assert [c for c in sim.commands if c.startswith("01")] == [
            "0100", "01201", "0120", "0140", "0160", "0180", "01A0", "010C0D0510"
        ]  # fmt: skip
        transport.close()


def test_multi_pid_refusal_is_not_blamed_on_the_answer_count() -> None:
    with Elm327Simulator([ENGINE], quirks=QUIRKS["multi_pid_refused"]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        reader.discover()
        assert {s.name for s in reader.read_values(ASKED)} == ENGINE_SIGNALS
        assert transport.status().answer_count is True
        assert reader.pids_per_request == 1
        transport.close()


def test_lowercase_and_spaces_quirks_really_change_the_text() -> None:
    # the quirks the tests above read must show on the wire, or they prove nothing
    with Elm327Simulator([ENGINE], quirks=combine_quirks(["lowercase", "spaces_on"])) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        assert transport.command("0100", 2.0)[-1].startswith("7e8 06 41 00 ")
        transport.close()
    with Elm327Simulator([ENGINE], quirks=QUIRKS["echo_on"]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        transport._serial.write(b"ATI\r")  # read raw: command() drops the echo
        raw = b""
        while b">" not in raw:
            raw += transport._serial.read(64)
        assert raw.startswith(b"ATI\r")
        transport.close()


@pytest.mark.parametrize(
    ("quirk", "kind"),
    [
        ("can_error", "can_error"),
        ("buffer_full", "buffer_full"),
        ("bus_busy", "bus_busy"),
        ("data_error", "data_error"),
        ("stopped", "stopped"),
        ("unable_to_connect", "unable_to_connect"),
    ],
)
def test_transient_error_replies_are_repeated_and_counted(quirk: str, kind: str) -> None:
    quirks = dataclasses.replace(QUIRKS[quirk], error_every=0)  # only the first request
    with Elm327Simulator([ENGINE, GEARBOX], quirks=quirks) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0, retry_pause_s=0.0)
        reader = ObdReader(transport)
        assert sorted(reader.discover()) == ["7E8", "7E9"]
        assert transport.errors == {kind: 1}
        assert transport.status().errors == {kind: 1}
        assert transport.protocol == "ISO 15765-4 CAN (11 bit ID, 500 kbaud)"
        assert mode01_pid_counts(sim.commands)[:2] == [1, 1]  # 0100 asked twice
        transport.close()


@pytest.mark.parametrize(
    ("error", "meaning"),
    [
        ("CAN ERROR", "sees CAN errors"),
        ("UNABLE TO CONNECT", "found no OBD protocol"),
        ("BUS BUSY", "too busy"),
    ],
)
def test_an_error_that_stays_is_a_clear_adapter_error(error: str, meaning: str) -> None:
    quirks = Elm327Quirks(error=error, error_every=1)
    with Elm327Simulator([ENGINE], quirks=quirks) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0, retries=2, retry_pause_s=0.0)
        with pytest.raises(AdapterReplyError, match=f"0100: .*{meaning}.*, 3 times") as exc:
            ObdReader(transport).discover()
        assert exc.value.transient
        assert sum(transport.errors.values()) == 3
        transport.close()


def test_poller_counts_transient_errors_and_keeps_polling() -> None:
    quirks = Elm327Quirks(error="BUS BUSY", error_every=3)  # requests 3 and 6 fail
    with Elm327Simulator([ENGINE], quirks=quirks) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0, retries=0)
        batches: list[list[Sample]] = []
        poller = Poller(
            ObdReader(transport), Schedule({0x0D: 20.0}), batches.append, min_gap_s=0, backoff_s=0
        )
        stats = poller.run(threading.Event(), max_requests=6)
        assert stats.requests == 6
        assert stats.failures == {"bus_busy": 2}
        assert len(batches) == 4
        transport.close()


def test_slow_protocol_search_is_waited_for() -> None:
    quirks = dataclasses.replace(QUIRKS["slow_search"], search_s=1.0)
    with Elm327Simulator([ENGINE], quirks=quirks) as sim:
        # an answer deadline far shorter than the search: only SEARCHING... buys the time
        transport = Elm327Transport(sim.port, timeout=0.5, search_timeout=10.0)
        assert list(ObdReader(transport).discover()) == ["7E8"]
        assert transport.status().protocol_number == "6"
        assert transport.status().protocol_auto is True
        transport.close()


def test_a_search_longer_than_its_deadline_times_out_clearly() -> None:
    quirks = dataclasses.replace(QUIRKS["slow_search"], search_s=2.0)
    with Elm327Simulator([ENGINE], quirks=quirks) as sim:
        transport = Elm327Transport(sim.port, timeout=0.1, search_timeout=0.3)
        searching = r"within 0\.3 s after 0100 \(protocol search"
        with pytest.raises(AdapterTimeoutError, match=searching):
            transport.request(bytes([0x01, 0x00]))
        transport.close()


@pytest.mark.parametrize("rate", BAUD_RATES)
def test_unknown_serial_speed_is_found(rate: int) -> None:
    with Elm327Simulator([ENGINE], quirks=Elm327Quirks(baudrate=rate)) as sim:
        transport = Elm327Transport(sim.port, baudrate=None, timeout=2.0)
        assert transport.baudrate == rate
        assert sim.garbled == BAUD_RATES.index(rate)  # one garbled ATZ per wrong speed
        assert ObdReader(transport).read_vin().vin == DEMO_VIN
        assert transport.status().baudrate == rate
        transport.close()


def test_a_fixed_wrong_speed_is_named_as_the_likely_cause() -> None:
    with Elm327Simulator([ENGINE], quirks=QUIRKS["baud_115200"]) as sim:
        unreadable = r"no ELM327 banner after ATZ \(unreadable: is the serial speed right\?\)"
        with pytest.raises(AdapterError, match=unreadable):
            Elm327Transport(sim.port, baudrate=38400, at_timeout=0.3)
        assert sim.garbled == 1


def test_an_adapter_silent_at_every_speed_is_a_clear_error() -> None:
    with Elm327Simulator([ENGINE], silent=True) as sim:
        every = "no ELM327 answers ATZ at any of 38400, 9600"
        with pytest.raises(AdapterError, match=every) as exc:
            Elm327Transport(sim.port, baudrate=None, at_timeout=0.2)
        assert "38400: silent; 9600: silent; 115200: silent; 500000: silent" in str(exc.value)
        assert sim.commands == ["ATZ"] * len(BAUD_RATES)


def test_garbled_at_every_speed_is_a_clear_error() -> None:
    with Elm327Simulator([ENGINE], quirks=Elm327Quirks(baudrate=57600)) as sim:
        with pytest.raises(AdapterError, match="38400: garbled; 9600: garbled"):
            Elm327Transport(sim.port, baudrate=None, at_timeout=1.0)
        assert sim.garbled == len(BAUD_RATES)


def test_quirks_combine_and_clashes_are_named() -> None:
    both = combine_quirks(["baud_9600", "multi_pid_refused"])
    assert both == Elm327Quirks(baudrate=9600, multi_pid="refused")
    with pytest.raises(ValueError, match="'baud_115200' contradicts an earlier one"):
        combine_quirks(["baud_9600", "baud_115200"])
    with pytest.raises(ValueError, match=r"unknown ELM327 quirk 'v2\.1'"):
        combine_quirks(["v2.1"])
    assert combine_quirks([]) == Elm327Quirks()


def test_noise_without_any_prompt_moves_on_without_waiting_out_the_deadline() -> None:
    # a device that answers every line with noise and never a ">": each speed is judged
    # garbled after a quiet spell, not silent after the (here long) AT deadline
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def noise() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0] and b"\r" in os.read(master, 256):
                os.write(master, b"\xf8\x00\xe6\x9e\x80\xfe")

    thread = threading.Thread(target=noise, daemon=True)
    thread.start()
    try:
        with pytest.raises(AdapterError, match="38400: garbled; 9600: garbled") as exc:
            Elm327Transport(os.ttyname(slave), baudrate=None, at_timeout=2.0)
        assert "silent" not in str(exc.value)
    finally:
        stop.set()
        thread.join(timeout=5)
        os.close(master)
        os.close(slave)
