"""A gateway with several brokers: it fails over when its broker dies and returns to the first
once that has been reachable for ``failback_s``. Two real mosquittos on the configuration
``msp-registry mosquitto-config`` writes (one device CA), a registry process behind each, one
SQLite registry database; nothing lost, nothing stored twice."""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.broker_process import MosquittoProcess, free_port
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.uplink import MqttUplink, UplinkConfig, UplinkError
from tests.sync_deploy import Deployment, UplinkThread, wait_for


class SecondBroker:
    """Another mosquitto for the same registry (same CA and database) and its own registry
    process, as a second node a gateway can fail over to."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.dir = deployment.root / "broker-b"
        self.device_port, self.registry_port = free_port(), free_port()
        code = deployment.registry(
            "mosquitto-config", str(self.dir), "--port", str(self.device_port), "--bind",
            "127.0.0.1", "--registry-port", str(self.registry_port), "--fleet-port", "0",
            "--run-as", getpass.getuser(),
        )  # fmt: skip
        assert code == 0
        self.broker = MosquittoProcess(self.dir / "mosquitto.conf",
                                       (self.device_port, self.registry_port))  # fmt: skip
        self.registry: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.broker.start()
        with (self.deployment.root / "registry-b.log").open("ab") as out:
            self.registry = subprocess.Popen(
                [sys.executable, "-m", "cloud_sync.cli", "-v", "serve",
                 "--broker", f"mqtt://127.0.0.1:{self.registry_port}",
                 "--password-file", str(self.dir / "registry.secret"),
                 "--client-id", "msp-registry-b", "--anchors", str(self.deployment.anchors),
                 "--db", str(self.deployment.db)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.terminate()
            self.registry.wait(timeout=10)
        self.broker.stop()


@pytest.fixture
def second(deployment: Deployment) -> Iterator[SecondBroker]:
    b = SecondBroker(deployment)
    b.start()
    yield b
    b.stop()


def test_fails_over_when_its_broker_dies_and_returns_once_it_is_back(
    deployment: Deployment, second: SecondBroker
) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    broker_a = deployment.broker
    assert broker_a is not None
    outbox = gw.open_outbox()
    gw.fill(outbox, 60)
    config = deployment.uplink_config(gw, window=8, fallbacks=(("127.0.0.1", second.device_port),),
                                      failover_after=1, failback_s=2.0, probe_s=0.2)
    uplink = MqttUplink(config, outbox)
    first, other = ("127.0.0.1", deployment.device_port), ("127.0.0.1", second.device_port)
    with UplinkThread(uplink):
        wait_for(lambda: len(deployment.stored(gw.device)) >= 10, "the first commits")
        assert uplink.endpoint == first
        broker_a.stop()  # mid-stream
        gw.fill(outbox, 60, start=60)
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain through B", timeout=60)
        assert uplink.endpoint == other
        broker_a.start()
        wait_for(lambda: uplink.endpoint == first, "the return to A", timeout=60)
        gw.fill(outbox, 20, start=120)
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain through A", timeout=60)
    assert uplink.stats().failovers == 2
    assert deployment.verify(gw, 140).records == 140


def test_stays_on_its_first_broker_while_it_is_up(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 30)
    dead = free_port()  # nothing listens: a fallback never needed
    uplink = MqttUplink(deployment.uplink_config(gw, fallbacks=(("127.0.0.1", dead),),
                                                 probe_s=0.2), outbox)  # fmt: skip
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert uplink.stats().failovers == 0
    assert deployment.verify(gw, 30).records == 30


def test_moves_on_from_a_first_broker_that_is_down_at_start(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 30)
    dead = free_port()
    config = deployment.uplink_config(gw, port=dead,
                                      fallbacks=(("127.0.0.1", deployment.device_port),))
    uplink = MqttUplink(config, outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain through the second")
    assert uplink.endpoint == ("127.0.0.1", deployment.device_port)
    assert uplink.stats().failovers == 1
    assert deployment.verify(gw, 30).records == 30


def test_uplink_config_refuses_nonsense_failover_settings() -> None:
    with pytest.raises(UplinkError, match="failover_after"):
        UplinkConfig(device="gw-1", failover_after=0)
    with pytest.raises(UplinkError, match="probe_s"):
        UplinkConfig(device="gw-1", probe_s=0)
    config = UplinkConfig(device="gw-1", host="a", port=1, fallbacks=(("b", 2),))
    assert config.endpoints == (("a", 1), ("b", 2))


_AGENT = """device = "gw-1"
vin = "JTCAR000001"
card.enabled = false
[[bus]]
obd = true
interface = "virtual"
channel = "vcan0"
bitrate = 500000
[uplink]
ca = "ca.pem"
cert = "gw.pem"
"""


def _agent(tmp_path: Path, broker: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(_AGENT + broker)
    return path


def test_uplink_broker_takes_a_list_and_a_failback_time(tmp_path: Path) -> None:
    path = _agent(tmp_path, 'broker = ["mqtts://n1:8883", "mqtts://n2:8884"]\nfailback_s = 60\n')
    config = load_config(path)
    assert config.broker == "mqtts://n1:8883"
    assert config.brokers == ("mqtts://n1:8883", "mqtts://n2:8884")
    assert config.broker_fallbacks == (("n2", 8884),)
    assert config.uplink_failback_s == 60.0
    env = load_config(path, {"MSP_UPLINK_BROKER": "mqtts://a, mqtts://b:9000"})
    assert env.broker_host_port == ("a", 8883, True)
    assert env.broker_fallbacks == (("b", 9000),)


@pytest.mark.parametrize(("broker", "expected"), [
    ('broker = ["mqtts://n1:8883", "mqtt://n2:1883"]', "uplink.broker: mixes mqtt:// and mqtts://"),
    ('broker = ["mqtts://n1:8883", "http://n2"]', "uplink.broker[1]: expected mqtts://"),
    ("broker = []", "uplink.broker: expected a broker URL or a list"),
    ('broker = ["mqtts://n1", "mqtts://n1"]', "uplink.broker: names a broker twice"),
    ('broker = "mqtts://n1"\nfailback_s = -1', "uplink.failback_s: expected a number of seconds"),
])  # fmt: skip
def test_uplink_broker_list_errors_name_the_key(tmp_path: Path, broker: str,
                                                expected: str) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_config(_agent(tmp_path, broker + "\n"))
