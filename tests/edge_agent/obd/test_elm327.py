"""OBD-II through an ELM327: the real pyserial path against the simulator on a pty."""

from __future__ import annotations

import os
import select
import socket
import threading

import pytest

from edge_agent.obd.elm327 import INIT_COMMANDS, UNKNOWN_ECU, Elm327Transport
from edge_agent.obd.errors import (
    AdapterError,
    AdapterTimeoutError,
    MalformedResponseError,
    NoResponseError,
)
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import DEMO_VIN, SimulatedEcu
from edge_agent.obd.sim_elm327 import Elm327Simulator

ENGINE = SimulatedEcu(0x7E8)
GEARBOX = SimulatedEcu(0x7E9, pids=frozenset({0x0D, 0x05}), vin=None, stored_dtcs=("P0700",))


def test_initialisation_sequence_despite_echo() -> None:
    with Elm327Simulator([ENGINE]) as sim:  # echo is on after ATZ, as on a real chip
        transport = Elm327Transport(sim.port, timeout=2.0)
        assert transport.version == "ELM327 v1.5"
        assert sim.commands == ["ATZ", *INIT_COMMANDS]
        assert transport.protocol == "auto"
        transport.close()


@pytest.mark.parametrize(
    ("extended", "ecus", "protocol"),
    [
        (False, ["7E8", "7E9"], "ISO 15765-4 CAN (11 bit ID, 500 kbaud)"),
        (True, ["18DAF1E8", "18DAF1E9"], "ISO 15765-4 CAN (29 bit ID, 500 kbaud)"),
    ],
)
def test_reads_everything_from_several_ecus(extended: bool, ecus: list[str], protocol: str) -> None:
    with Elm327Simulator([ENGINE, GEARBOX], extended=extended) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        supported = reader.discover()  # the first request meets SEARCHING...
        assert sorted(supported) == ecus
        assert transport.protocol == protocol
        assert supported[ecus[1]] == frozenset({0x05, 0x0D})
        assert reader.read_vin().vin == DEMO_VIN  # multi-frame, reassembled from header lines
        dtcs = reader.read_dtcs()
        assert dtcs.stored == {ecus[0]: ("P0133", "C0035"), ecus[1]: ("P0700",)}
        samples = reader.read_values([0x0C, 0x0D, 0x05, 0x10, 0x5E, 0xA6, 0x1F])
        speeds = [s for s in samples if s.name == "Vehicle.Speed"]
        assert sorted(s.source for s in speeds) == [f"obd:{e}" for e in ecus]
        assert sim.commands[-1] == "011F1"  # only the engine has 0x1F: answer count 1
        assert not transport.rejected
        transport.close()


def test_clone_refusing_settings_still_works() -> None:
    # echo, spaces and linefeeds stay on, headers off: answers come as 0: 1: segments
    refused = frozenset({"ATE0", "ATL0", "ATS0", "ATH1"})
    with Elm327Simulator([ENGINE], refuse=refused) as sim:
        reader = ObdReader(Elm327Transport(sim.port, timeout=2.0))
        assert reader.read_vin().vin == DEMO_VIN  # from the 0: 1: 2: segment lines
        samples = reader.read_values([0x0D])
        assert [(s.name, s.source) for s in samples] == [("Vehicle.Speed", f"obd:{UNKNOWN_ECU}")]
        reader.transport.close()


def test_garbage_lines_are_counted_and_data_kept() -> None:
    with Elm327Simulator([ENGINE], garbage=b"\x00\xff\xfeNOISE\r") as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        reader = ObdReader(transport)
        reader.discover()
        assert [s.name for s in reader.read_values([0x0D])] == ["Vehicle.Speed"]
        assert transport.rejected["garbage"] >= 2
        transport.close()


def test_no_data_means_no_answer() -> None:
    with Elm327Simulator([SimulatedEcu(pids=frozenset({0x0C}))]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        assert transport.request(bytes([0x01, 0x0D])) == []
        with pytest.raises(NoResponseError, match="no ECU answered mode 01 PIDs \\['0D'\\]"):
            ObdReader(transport).read_values([0x0D])
        transport.close()


@pytest.mark.parametrize(
    ("reply", "meaning"),
    [
        ("STOPPED", "stopped the request"),
        ("BUS INIT: ...ERROR", "could not initialise the vehicle bus"),
        ("?", "did not understand"),
        ("UNABLE TO CONNECT", "found no OBD protocol"),
    ],
)
def test_adapter_error_replies(reply: str, meaning: str) -> None:
    with Elm327Simulator([ENGINE], reply=reply) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        with pytest.raises(AdapterError, match=f"0100: .*{meaning}"):
            transport.request(bytes([0x01, 0x00]))
        transport.close()


def test_truncated_multi_frame_is_reported() -> None:
    with Elm327Simulator([SimulatedEcu(behaviour="truncated")]) as sim:
        transport = Elm327Transport(sim.port, timeout=2.0)
        with pytest.raises(MalformedResponseError, match="0902: answer from 7E8 ended mid-message"):
            transport.request(bytes([0x09, 0x02]))
        assert transport.reassembler.rejected["truncated"] == 1
        transport.close()


def test_silent_adapter_times_out() -> None:
    with Elm327Simulator([ENGINE], silent=True) as sim:
        with pytest.raises(AdapterTimeoutError, match=r"no '>' prompt within 0\.3 s after ATZ"):
            Elm327Transport(sim.port, at_timeout=0.3)
        assert sim.commands == ["ATZ"]


def test_not_an_elm327() -> None:
    with (
        Elm327Simulator([ENGINE], version="OBDLink-ish v2") as sim,
        pytest.raises(AdapterError, match="no ELM327 banner after ATZ"),
    ):
        Elm327Transport(sim.port, at_timeout=1.0)


def test_missing_port_is_a_clear_error() -> None:
    with pytest.raises(AdapterError, match="cannot open ELM327 port /nonexistent/ttyOBD"):
        Elm327Transport("/nonexistent/ttyOBD")


def bridge_tcp_to_pty(port: str) -> tuple[socket.socket, threading.Thread]:
    """A one-connection TCP server relaying to the simulator's pty, like a Wi-Fi dongle."""
    server = socket.create_server(("127.0.0.1", 0))

    def relay() -> None:
        conn, _ = server.accept()
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            while True:
                ready, _, _ = select.select([conn, fd], [], [], 5.0)
                if not ready:
                    return
                if conn in ready:
                    data = conn.recv(1024)
                    if not data:
                        return
                    os.write(fd, data)
                if fd in ready:
                    conn.sendall(os.read(fd, 1024))
        finally:
            os.close(fd)
            conn.close()
            server.close()

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return server, thread


def test_wifi_dongle_over_socket_url() -> None:
    with Elm327Simulator([ENGINE]) as sim:
        server, relay = bridge_tcp_to_pty(sim.port)
        host, tcp_port = server.getsockname()
        transport = Elm327Transport(f"socket://{host}:{tcp_port}", timeout=2.0)
        reader = ObdReader(transport)
        assert reader.read_vin().vin == DEMO_VIN
        transport.close()
        relay.join(timeout=5)
        assert not relay.is_alive()
