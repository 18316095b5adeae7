"""Why the uplink cannot connect is said, not hidden behind a silent retry: the TLS error of a
real mosquitto refusing the gateway, or of the gateway refusing the broker, is logged (once)."""

from __future__ import annotations

import logging

import pytest

from edge_agent.uplink import MqttUplink
from tests.sync_deploy import Deployment, UplinkThread, wait_for


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "edge_agent.uplink.mqtt" and text in r.getMessage()]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # the gateway does not trust the broker's certificate (the CA file is another one)
        ({"ca_file": "cert"}, "connect_failed: 127.0.0.1:{port}: [SSL: CERTIFICATE_VERIFY_FAILED]"),
        # the broker wants a client certificate and gets none
        ({"cert_file": None, "key_file": None}, "alert certificate required"),
    ],
    ids=["untrusted-broker", "no-client-certificate"],
)
def test_a_tls_failure_is_logged_with_its_cause(
    deployment: Deployment, caplog: pytest.LogCaptureFixture, changes: dict[str, object],
    expected: str,
) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    outbox = gw.open_outbox()
    gw.fill(outbox, 1)
    changes = {k: gw.cert if v == "cert" else v for k, v in changes.items()}
    uplink = MqttUplink(deployment.uplink_config(gw, **changes), outbox)
    expected = expected.format(port=deployment.device_port)
    with caplog.at_level("DEBUG", logger="edge_agent.uplink.mqtt"), UplinkThread(uplink):
        # paho retries (back-off 1-2 s): the cause comes again, at DEBUG
        wait_for(lambda: len(_said(caplog, expected)) >= 2, f"{expected!r} twice")
    assert not uplink.connected and outbox.stats().rows == 1  # nothing sent, nothing lost
    # said as a warning once, however often paho retried
    assert [level for level, _m in _said(caplog, expected)][:2] == [logging.WARNING, logging.DEBUG]
    assert [level for level, _m in _said(caplog, expected)].count(logging.WARNING) == 1
