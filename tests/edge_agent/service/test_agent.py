"""The agent in this process on a python-can virtual bus (no broker listening, no card):
trip end on silence while it keeps running, health records and what they count, bad frames
and corrupt log lines counted, SIGHUP-style reload, and refusal before start-up."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from edge_agent import cli
from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import AgentError
from edge_agent.ingest import LogSource
from edge_agent.keys import init_device_key
from edge_agent.obd.sim_ecu import DEMO_VIN, SimulatedEcu
from edge_agent.obd.sim_elm327 import Elm327Simulator
from edge_agent.replay import paced
from edge_agent.sdnotify import Notifier
from edge_agent.service import Agent, build_stages
from edge_agent.simulate import simulate
from tests.sync_deploy import wait_for

REPO = Path(__file__).parent.parent.parent.parent
DATA = Path(__file__).parent.parent.parent / "data"


def records(outbox: Path) -> list[dict[str, object]]:
    if not outbox.exists():
        return []
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT jws FROM records ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the agent is still creating the file
        return []
    out = []
    for (jws,) in rows:
        part = str(jws).split(".")[1]
        out.append(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    return out


def of_kind(outbox: Path, kind: str) -> list[dict[str, object]]:
    return [r for r in records(outbox) if r["kind"] == kind]


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drive") / "drive.log"
    simulate(path, scenario="mixed", seed=5, duration=60, background=False)
    return path


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "device.key"
    init_device_key(path, "gw-0042")
    return path


#: A health record at every look, changed or not (the tests read counters as they move).
EVERY_03 = "health_interval_s = 0.3\nhealth_max_interval_s = 0.3"
EVERY_02 = "health_interval_s = 0.2\nhealth_max_interval_s = 0.2"


def config_file(tmp_path: Path, key: Path, channel: str, extra: str = "",
                agent: str = "health_interval_s = 300\nno_frames_s = 600") -> Path:  # fmt: skip
    path = tmp_path / "agent.toml"
    path.write_text(f"""
device = "gw-0042"
key = "{key}"
vin = "JTDKB20U093456789"
{extra}
[[bus]]
name = "can0"
interface = "virtual"
channel = "{channel}"
signal_map = "{REPO / "dbc" / "msp_demo.toml"}"

[card]
enabled = false

[outbox]
path = "{tmp_path / "outbox.db"}"

[uplink]
broker = "mqtt://127.0.0.1:9"

[agent]
stop_flush_s = 0.1
{agent}
""")
    return path


class Running:
    """``Agent.run`` on a thread; ``stop()`` joins it and returns its exit code."""

    def __init__(self, config: AgentConfig, path: Path | None = None,
                 notifier: Notifier | None = None) -> None:  # fmt: skip
        self.agent = Agent(config, notifier=notifier or Notifier({}), config_path=path)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.agent.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def stop(self) -> int | None:
        self.agent.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.code


@pytest.fixture
def sender() -> Iterator[can.BusABC]:
    buses: list[can.BusABC] = []

    def open_bus(channel: str) -> can.BusABC:
        bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
        buses.append(bus)
        return bus

    yield open_bus  # type: ignore[misc]
    for bus in buses:
        bus.shutdown()


def send(bus: can.BusABC, log: Path, until_s: float, speed: float = 40.0,
         wanted: frozenset[int] | None = None) -> int:  # fmt: skip
    """Send the log's first ``until_s`` seconds; returns how many frames (of ``wanted``)."""
    sent, first = 0, None
    for frame in paced(LogSource(log).frames(), speed):
        first = frame.timestamp if first is None else first
        if frame.timestamp - first > until_s:
            break
        bus.send(can.Message(timestamp=frame.timestamp, arbitration_id=frame.arbitration_id,
                             data=frame.data, is_extended_id=frame.is_extended_id))  # fmt: skip
        sent += wanted is None or frame.arbitration_id in wanted
    return sent


def wait_open(running: Running) -> None:
    wait_for(lambda: running.agent.source is not None or running.error is not None, "start-up")
    if running.error is not None:
        raise running.error


def test_systemd_hears_ready_with_a_status_in_plain_english(tmp_path: Path, key: Path) -> None:
    address = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(30)
    try:
        path = config_file(tmp_path, key, "ready")
        running = Running(load_config(path), path, Notifier({"NOTIFY_SOCKET": address}))
        message = sock.recv(4096).decode()
        while not message.startswith("READY=1"):
            message = sock.recv(4096).decode()
        assert message == "READY=1\nSTATUS=running: 1 bus, outbox open"
        assert running.stop() == 0
    finally:
        sock.close()


def test_silence_ends_the_trip_and_the_agent_keeps_running(
    tmp_path: Path, key: Path, drive: Path, sender
) -> None:
    path = config_file(tmp_path, key, "silence",
                       agent="health_interval_s = 300\nno_frames_s = 0.5")  # fmt: skip
    running = Running(load_config(path), path)
    wait_open(running)
    send(sender("silence"), drive, until_s=20)  # the car is moving at 20 s: no ignition off
    outbox = tmp_path / "outbox.db"
    wait_for(lambda: len(of_kind(outbox, "trip")) == 1, "the trip to end on silence")
    assert running.thread.is_alive()
    assert not running.agent.scorer.in_trip
    trip = of_kind(outbox, "trip")[0]["body"]
    assert isinstance(trip, dict) and 5 < trip["duration_s"] <= 20.5
    assert running.stop() == 0
    assert len(of_kind(outbox, "trip")) == 1  # stopping did not make a second one


def test_health_records_count_frames_and_bad_frames(
    tmp_path: Path, key: Path, drive: Path, sender
) -> None:
    path = config_file(tmp_path, key, "health",
                       agent=EVERY_03 + "\nno_frames_s = 600")  # fmt: skip
    config = load_config(path)
    running = Running(config, path)
    wait_open(running)
    bus = sender("health")
    sent = send(bus, drive, until_s=5, wanted=build_stages(config)["can0"].wanted)
    for i in range(7):  # VEHICLE_SPEED (0xB4) is 8 bytes long in the DBC
        bus.send(can.Message(timestamp=1_795_654_900.0 + i, arbitration_id=0xB4, data=b"\x01\x02",
                             is_extended_id=False))  # fmt: skip

    def counted() -> dict[str, int]:
        total: dict[str, int] = {}
        for record in of_kind(tmp_path / "outbox.db", "health"):
            body = record["body"]
            assert isinstance(body, dict)
            for name, value in body["errors"].items():
                if name.startswith(("bus.", "decode.")):
                    total[name] = max(total.get(name, 0), value)  # totals since start
        return total

    wait_for(lambda: counted().get("decode.can0.bad_length", 0) == 7, "7 bad_length in health")
    wait_for(lambda: counted().get("bus.can0.frames", 0) == sent + 7,
             "every mapped frame counted (the others are filtered out)")  # fmt: skip
    assert running.stop() == 0
    record = of_kind(tmp_path / "outbox.db", "health")[-1]
    last = record["body"]
    assert isinstance(last, dict)
    errors = last["errors"]
    assert errors["process.rss_kib"] > 10_000 and errors["uplink.connected"] == 0
    assert "bus.can0.frames_per_s" in errors
    # nothing is acked (no broker): the outbox holds every record before this one
    assert "queue.frames" in errors and last["queue_depth"] == record["seq"] - 1  # type: ignore[operator]
    assert last["uptime_s"] > 0


def test_corrupt_lines_of_a_replayed_log_are_counted(tmp_path: Path, key: Path) -> None:
    extra = f'[replay]\nlog = "{DATA / "malformed.log"}"\nspeed = 1000\nexit_at_end = true\n'
    path = config_file(tmp_path, key, "replay", extra=extra,
                       agent=EVERY_02 + "\nno_frames_s = 600")  # fmt: skip
    running = Running(load_config(path), path)
    wait_for(lambda: not running.thread.is_alive(), "the replay to end the agent")
    assert running.stop() == 0
    total: dict[str, int] = {}
    for record in of_kind(tmp_path / "outbox.db", "health"):
        body = record["body"]
        assert isinstance(body, dict)
        for name, value in body["errors"].items():
            total[name] = max(total.get(name, 0), value)  # totals since start
    assert total.get("bus.can0.corrupt_line", 0) >= 3


def test_reload_applies_the_health_interval_and_survives_a_broken_file(
    tmp_path: Path, key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = config_file(tmp_path, key, "reload")
    running = Running(load_config(path), path)
    wait_open(running)
    path.write_text(path.read_text().replace("health_interval_s = 300", "health_interval_s = "))
    running.agent.reload()
    wait_for(lambda: "reload refused" in caplog.text, "the broken file to be refused")
    assert running.thread.is_alive()
    path.write_text(path.read_text().replace("health_interval_s = ", "health_interval_s = 0.2\n"
                                                                     "health_max_interval_s = 0.2"))
    running.agent.reload()
    # nothing changes in an idle agent: records come only at the (reloaded) longest interval
    wait_for(lambda: len(of_kind(tmp_path / "outbox.db", "health")) >= 2, "health records")
    assert running.agent.config.health_interval_s == 0.2
    assert running.agent.config.health_max_interval_s == 0.2
    assert running.stop() == 0


def test_an_outbox_of_another_device_is_refused_before_start(
    tmp_path: Path, key: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other") / "device.key"
    init_device_key(other, "gw-0042")
    path = config_file(tmp_path, key, "refuse")
    running = Running(load_config(path), path)
    wait_open(running)
    running.stop()
    config = load_config(path, {"MSP_KEY": str(other)})
    agent = Agent(config, notifier=Notifier({}))
    with pytest.raises(AgentError, match=r"outbox\.path: .*another key"):
        agent.run()


def test_what_cannot_be_opened_is_refused_naming_its_key(tmp_path: Path, key: Path) -> None:
    bad_key = tmp_path / "nokey.pem"
    path = config_file(tmp_path, key, "refuse2")
    with pytest.raises(AgentError, match=r"^key: .*nokey\.pem"):
        Agent(load_config(path, {"MSP_KEY": str(bad_key)}), notifier=Notifier({})).run()
    text = path.read_text().replace("[card]\nenabled = false", f'[card]\nanchors = ["{bad_key}"]')
    path.write_text(text)
    with pytest.raises(AgentError, match=r"^card\.anchors: .*nokey\.pem"):
        Agent(load_config(path), notifier=Notifier({})).run()


def test_run_check_prints_the_configuration_and_errors_exit_2(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = config_file(tmp_path, key, "check")
    monkeypatch.setenv("MSP_AGENT_NO_FRAMES_S", "12")
    assert cli.main(["run", "--config", str(path), "--check", "--set",
                     "agent.health_interval_s=42", "--device", "gw-0099"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "health_interval_s = 42.0" in out and "no_frames_s = 12.0" in out
    assert 'device = "gw-0099"' in out.splitlines()
    # paths as paths, nested values dotted: never Python's reprs
    assert "PosixPath" not in out and "BusConfig" not in out and "ScoringConfig" not in out
    assert f'key = "{key}"' in out.splitlines()
    assert 'buses[0].name = "can0"' in out.splitlines()
    assert "scoring.harsh_braking_mps2 = 3.5" in out.splitlines()
    assert cli.main(["run", "--config", str(path), "--check", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["key"] == str(key) and document["no_frames_s"] == 12.0
    assert document["buses"][0]["name"] == "can0"
    assert document["scoring"]["harsh_braking_mps2"] == 3.5
    assert cli.main(["run", "--config", str(path), "--json"]) == 2
    assert "--json goes with --check" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(path), "--set", "agent.health_interval_s=-1"]) == 2
    assert "--set agent.health_interval_s: expected a positive number" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(path), "--set", "nonsense"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_obd_only_through_an_elm327_reads_vin_dtcs_and_polls(tmp_path: Path, key: Path) -> None:
    with Elm327Simulator([SimulatedEcu(0x7E8)]) as elm:
        path = config_file(tmp_path, key, "unused", agent=EVERY_03)
        text = path.read_text().replace('vin = "JTDKB20U093456789"', 'vin = "obd"')
        text = text.split("[[bus]]")[0] + "[card]" + text.split("[card]")[1]
        path.write_text(text + f'\n[obd]\nserial = "{elm.port}"\nrates = {{ "0D" = 10 }}\n')
        config = load_config(path)
        assert config.buses == () and config.obd is not None
        running = Running(config, path)

        def obd_samples() -> int:
            return max((
                r["body"]["errors"].get("obd.samples", 0)  # type: ignore[index]
                for r in of_kind(tmp_path / "outbox.db", "health")
            ), default=0)

        wait_for(lambda: obd_samples() >= 5 or running.error is not None, "polled samples")
        assert running.stop() == 0
    outbox = tmp_path / "outbox.db"
    [dtc] = of_kind(outbox, "dtc")
    assert dtc["vin"] == DEMO_VIN
    codes = {c["code"] for c in dtc["body"]["codes"]}  # type: ignore[index]
    assert {"P0133", "C0035", "P0420"} <= codes


def test_two_buses_each_decode_through_their_own_stage(
    tmp_path: Path, key: Path, drive: Path, sender
) -> None:
    path = config_file(tmp_path, key, "two-a", agent=EVERY_03)
    text = path.read_text()
    second = text[text.index("[[bus]]"):text.index("[card]")]
    second = second.replace('name = "can0"', 'name = "body"').replace("two-a", "two-b")
    path.write_text(text.replace("[card]", second + "[card]"))
    config = load_config(path)
    assert [b.name for b in config.buses] == ["can0", "body"]
    running = Running(config, path)
    wait_open(running)
    wanted = build_stages(config)["body"].wanted
    sent = send(sender("two-b"), drive, until_s=3, wanted=wanted)

    def total(name: str) -> int:
        return max((r["body"]["errors"].get(name, 0)  # type: ignore[index]
                    for r in of_kind(tmp_path / "outbox.db", "health")), default=0)  # fmt: skip

    wait_for(lambda: total("bus.body.frames") == sent, "the second bus's frames in health")
    assert running.stop() == 0
    assert total("bus.can0.frames") == 0
    assert running.agent.stages["body"].decoded_frames == sent
    assert running.agent.stages["can0"].frames == 0
