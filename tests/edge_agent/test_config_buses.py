"""``[[bus]]`` as python-can users expect it: python-can's own configuration fills what the
table leaves out, and every other keyword reaches the interface."""

from __future__ import annotations

import time
from pathlib import Path

import can
import pytest

from edge_agent.buses import BusSpec, LiveBuses
from edge_agent.config import load_config
from edge_agent.errors import ConfigError

REPO = Path(__file__).parent.parent.parent
HEAD = ('device = "gw-0001"\nvin = "JTDKB20U093456789"\n[card]\nenabled = false\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1883"\n')  # fmt: skip
MAP = f'signal_map = "{REPO}/dbc/msp_demo.toml"\n'


@pytest.fixture
def no_python_can_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A home without ~/.canrc and no CAN_* variables (python-can reads both)."""
    for name in ("CAN_INTERFACE", "CAN_CHANNEL", "CAN_BITRATE", "CAN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    if Path("/etc/can.conf").exists():
        pytest.fail("/etc/can.conf on this machine would change python-can's defaults")
    return home


def _bus(tmp_path: Path, table: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "agent.toml"
    path.write_text(HEAD + '[[bus]]\nname = "chassis"\n' + MAP + table)
    [bus] = load_config(path).buses
    return bus


def test_without_python_can_configuration_the_defaults_hold(
    tmp_path: Path, no_python_can_config: Path
) -> None:
    bus = _bus(tmp_path, "")
    assert (bus.interface, bus.channel, bus.bitrate, bus.options) == (
        "socketcan", "chassis", None, ())


def test_python_can_environment_fills_what_the_table_leaves_out(
    tmp_path: Path, no_python_can_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAN_INTERFACE", "virtual")
    monkeypatch.setenv("CAN_CHANNEL", "vbus7")
    monkeypatch.setenv("CAN_BITRATE", "500000")
    bus = _bus(tmp_path, "")
    assert (bus.interface, bus.channel, bus.bitrate) == ("virtual", "vbus7", 500000)
    # what the table says wins over python-can's configuration
    bus = _bus(tmp_path, 'channel = "mine"\n')
    assert (bus.interface, bus.channel) == ("virtual", "mine")


def test_python_can_canrc_is_read(tmp_path: Path, no_python_can_config: Path) -> None:
    (no_python_can_config / ".canrc").write_text(
        "[default]\ninterface = virtual\nchannel = from_canrc\nreceive_own_messages = True\n"
    )
    bus = _bus(tmp_path, "")
    assert (bus.interface, bus.channel) == ("virtual", "from_canrc")
    assert dict(bus.options)["receive_own_messages"] is True  # python-can reads the text


def test_other_keywords_pass_through_to_the_interface(
    tmp_path: Path, no_python_can_config: Path
) -> None:
    bus = _bus(tmp_path, 'interface = "virtual"\nchannel = "vpass"\nreceive_own_messages = true\n'
               "fd = true\ndata_bitrate = 2000000\n")  # fmt: skip
    assert dict(bus.options) == {"receive_own_messages": True, "fd": True,
                                 "data_bitrate": 2000000}  # fmt: skip
    # they reach can.Bus: with receive_own_messages the bus hears its own frame
    live = LiveBuses([BusSpec(bus.name, bus.interface, bus.channel, bus.bitrate,
                              dict(bus.options))], None)  # fmt: skip
    try:
        [(_, opened)] = live._buses
        opened.send(can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False))
        deadline = time.monotonic() + 5
        got = []
        for frame in live.frames(idle_timeout=0.2):
            got.append(frame)
            if frame.arbitration_id == 0x123 or time.monotonic() > deadline:
                break
        assert [f.arbitration_id for f in got] == [0x123]
    finally:
        live.close()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("fd = [1]\n", r"bus\[0\]\.fd: expected a string, number or boolean"),
        ("data_bitrate = inf\n", r"bus\[0\]\.data_bitrate: expected a finite number"),
        ("Bitrate = 1\n", r"bus\[0\]\.Bitrate: not a python-can keyword"),
    ],
)
def test_bad_pass_through_keywords_are_named(
    tmp_path: Path, no_python_can_config: Path, table: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        _bus(tmp_path, table)


def test_a_catalogue_vehicle_keeps_the_bus_name(tmp_path: Path, no_python_can_config: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(HEAD + '[[bus]]\nname = "chassis"\nvehicle = "toyota_nodsu_pt"\n')
    [bus] = load_config(path).buses
    assert bus.name == "chassis" and bus.channel == "chassis"
    assert bus.signal_map is not None and bus.signal_map.name == "toyota_nodsu_pt.toml"


def test_obd_baud_auto_means_detect(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(HEAD + '[obd]\nserial = "/dev/ttyUSB0"\nbaud = "auto"\n')
    obd = load_config(path).obd
    assert obd is not None and obd.baud is None
    path.write_text(HEAD + '[obd]\nserial = "/dev/ttyUSB0"\nbaud = "fast"\n')
    with pytest.raises(ConfigError, match=r"obd\.baud"):
        load_config(path)
