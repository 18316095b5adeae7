"""docs/fleet-operators.md, "Subscribing": both ``mosquitto_sub`` commands run as written
(only the host, the ports and a message count put in) and receive the fleet's retained
device key from a real mosquitto and registry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sync_deploy import Deployment, wait_for

GUIDE = Path(__file__).parent.parent.parent / "docs" / "fleet-operators.md"


def guide_commands() -> list[str]:
    section = GUIDE.read_text().split("## Subscribing")[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [b.replace("\\\n", " ").strip() for b in blocks if b.startswith("mosquitto_sub")]


def test_the_guide_shows_a_certificate_and_a_password_subscription() -> None:
    commands = guide_commands()
    assert len(commands) == 2
    assert "--cert creds/fleet.rental.pem" in commands[0] and "-u fleet.rental" in commands[1]


def test_the_guides_mosquitto_sub_commands_run(deployment: Deployment, tmp_path: Path) -> None:
    if shutil.which("mosquitto_sub") is None:
        pytest.fail("mosquitto_sub is missing: run scripts/system-deps (mosquitto-clients)")
    deployment.enroll_gateway("gw-0001", "JTRENT00001", fleet="rental")
    creds = tmp_path / "creds"
    assert deployment.registry("fleet", "add", "rental", "--out", str(creds), "--password") == 0
    assert deployment.broker is not None
    deployment.broker.stop()  # the broker learns fleet users from the regenerated configuration
    deployment.configure()
    deployment.broker.start()
    deployment.start_registry()
    for written in guide_commands():
        command = (written.replace("broker.example.jp", "127.0.0.1")
                   .replace("-p 8883", f"-p {deployment.device_port}")
                   .replace("-p 8884", f"-p {deployment.fleet_port}"))  # fmt: skip
        received = subscribe_until_one(command + " -C 1 -W 5", tmp_path)
        topic, payload = received.strip().split(" ", 1)
        assert topic == "msp/v1/fleet/rental/keys/gw-0001"
        assert json.loads(payload)["device"] == "gw-0001"


def subscribe_until_one(command: str, cwd: Path) -> str:
    """Run ``command`` (which ends after one message or 5 s) until it receives one: the
    registry publishes the keys soon after it starts; returns what it printed."""
    received: list[str] = []

    def subscribe() -> bool:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
        assert done.returncode in (0, 27), done.stderr  # 27: -W timed out, nothing yet
        received.append(done.stdout)
        return done.returncode == 0

    wait_for(subscribe, "the retained device key (the registry publishes it)")
    return received[-1]
