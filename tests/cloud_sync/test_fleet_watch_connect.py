"""``fleet watch`` says why the broker refused it, rather than "no connect within N s"."""

from __future__ import annotations

import pytest

from cloud_sync.errors import BrokerError
from cloud_sync.fleet_watch import watch
from cloud_sync.worker import BrokerConfig
from tests.sync_deploy import Deployment


def test_a_refused_client_certificate_is_named(deployment: Deployment) -> None:
    url = f"mqtts://127.0.0.1:{deployment.device_port}"
    broker = BrokerConfig(url=url, username=None, client_id="fleet.acme-watch",
                          ca_file=deployment.brokerdir / "device-ca.pem")  # fmt: skip
    with pytest.raises(BrokerError) as info:
        next(watch("acme", broker, timeout=20))
    # the TLS error itself ("alert certificate required", or an EOF when the broker's close
    # wins the race), not a timeout
    assert str(info.value).startswith(f"{url}: failed to receive on socket: ")
    assert str(info.value).endswith("does it trust this client's certificate?)")
