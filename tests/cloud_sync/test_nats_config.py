"""``msp-registry nats-config``: the files it writes, the permissions generated from the rules
the mosquitto ACL is made of, and the ids NATS cannot carry (refused, naming them)."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import re
import stat
from pathlib import Path

import pytest

from cloud_sync.broker_rules import REGISTRY_GRANTS, device_grants, fleet_grants
from cloud_sync.config import RegistryConfig
from cloud_sync.errors import RegistryError
from cloud_sync.mosquitto import acl_text
from cloud_sync.nats_config import (
    NatsConfigError,
    NatsLayout,
    NatsNode,
    auth_text,
    check_nats_id,
    default_layout,
    subjects,
)
from cloud_sync.registry import transport_for
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.transport.jetstream import JetStreamTransport
from cloud_sync.transport.mqtt import MqttTransport
from tests.sync_deploy import Deployment
from tests.sync_kit import CardIssuer


def _users(text: str) -> dict[str, dict[str, object]]:
    users = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
    return {u["user"]: u for u in users}


def test_mqtt_filters_become_the_subjects_nats_maps_them_to() -> None:
    assert subjects("msp/v1/dev/gw-1/rec") == ("msp.v1.dev.gw-1.rec",)
    assert subjects("msp/v1/dev/+/ack") == ("msp.v1.dev.*.ack",)
    # a trailing # also matches its parent level, as in MQTT
    assert subjects("msp/v1/fleet/acme/#") == ("msp.v1.fleet.acme", "msp.v1.fleet.acme.>")


def test_permissions_follow_the_same_rules_as_the_mosquitto_acl() -> None:
    users = _users(auth_text("pw", ["gw-1"], ["acme"]))
    device = users["CN=gw-1"]["permissions"]
    assert device == {"publish": {"allow": ["msp.v1.dev.gw-1.rec"]},
                      "subscribe": {"allow": ["msp.v1.dev.gw-1.ack", "msp.v1.dev.gw-1.reply",
                                              "msp.v1.registry.key", "$MQTT.sub.>"]}}  # fmt: skip
    fleet = users["CN=fleet.acme"]["permissions"]
    assert fleet == {"publish": {"deny": [">"]},
                     "subscribe": {"allow": ["msp.v1.fleet.acme", "msp.v1.fleet.acme.>",
                                             "msp.v1.registry.key", "$MQTT.sub.>"]}}  # fmt: skip
    # a recipient of another role reads only its own topics (and the registry's key)
    guardian = _users(auth_text("pw", [], [], [("guardian", "sato")]))["CN=guardian.sato"]
    assert guardian["permissions"] == {
        "publish": {"deny": [">"]},
        "subscribe": {"allow": ["msp.v1.guardian.sato", "msp.v1.guardian.sato.>",
                                "msp.v1.registry.key", "$MQTT.sub.>"]}}  # fmt: skip
    registry = users["registry"]
    assert registry["password"] == "pw"
    assert registry["permissions"]["subscribe"]["allow"][0] == "msp.v1.dev.*.rec"  # type: ignore[index]
    # every grant of the rule set appears in both renderings
    acl = acl_text(["acme"])
    for grant in (*REGISTRY_GRANTS, *device_grants("%u"), *fleet_grants("acme")):
        assert f"{grant.access} {grant.topic}" in acl
    mqtt_registry = users["CN=registry"]["permissions"]
    assert mqtt_registry["subscribe"] == {"deny": [">"]}  # type: ignore[index]
    assert "msp.v1.fleet.>" in mqtt_registry["publish"]["allow"]  # type: ignore[index]


@pytest.mark.parametrize("bad", ["gw.1", "gw*", "gw>", "gw 1"])
def test_ids_nats_cannot_carry_are_refused_by_name(bad: str) -> None:
    with pytest.raises(NatsConfigError, match=re.escape(repr(bad))):
        check_nats_id(bad, "device id")
    with pytest.raises(NatsConfigError, match="refuses in a topic"):
        auth_text("pw", [bad], [])
    with pytest.raises(NatsConfigError):
        auth_text("pw", [], [bad])


def test_layout_shifts_ports_of_nodes_on_one_host_and_refuses_clashes() -> None:
    nodes = default_layout(3).nodes
    assert [n.client_port for n in nodes] == [4222, 4223, 4224]
    assert [n.mqtt_port for n in nodes] == [8883, 8884, 8885]
    spread = default_layout(3, ["a", "b", "c"]).nodes
    assert {n.mqtt_port for n in spread} == {8883}
    with pytest.raises(NatsConfigError, match="taken twice"):
        NatsLayout((NatsNode("n1"), NatsNode("n2")))
    with pytest.raises(NatsConfigError, match="at least 1"):
        default_layout(0)
    assert default_layout(5).replicas == 3
    assert default_layout(1).replicas == 1


@pytest.fixture
def site(tmp_path: Path, card_issuer: CardIssuer) -> Deployment:
    return Deployment(tmp_path, card_issuer)


def test_nats_config_writes_every_node_and_keeps_its_secrets(site: Deployment) -> None:
    site.enroll_gateway("gw-1", "JTCAR00001", "acme")
    out = site.root / "nats"
    assert site.registry("nats-config", str(out), "--nodes", "3", "--run-as", "root") == 0
    for name in ("n1.conf", "n2.conf", "n3.conf", "auth.conf", "registry.secret",
                 "cluster.secret", "server.key", "registry-mqtt.key", "cluster.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    n2 = (out / "n2.conf").read_text()
    assert 'server_name: "n2"' in n2
    assert "verify_and_map: true" in n2
    assert "stream_replicas: 3" in n2
    assert f'store_dir: "{out / "data" / "n2"}"' in n2
    routes = re.search(r"routes: (\[.*\])", n2)
    assert routes is not None
    assert [r.rsplit(":", 1)[1] for r in json.loads(routes.group(1))] == ["6222", "6224"]
    assert "include auth.conf" in n2
    assert '"CN=gw-1"' in (out / "auth.conf").read_text()
    secret = (out / "registry.secret").read_text()
    cluster = json.loads((out / "cluster.json").read_text())
    assert cluster["mqtt_urls"] == ["mqtts://127.0.0.1:8883", "mqtts://127.0.0.1:8884",
                                    "mqtts://127.0.0.1:8885"]  # fmt: skip
    assert site.registry("nats-config", str(out), "--nodes", "3", "--run-as", "root") == 0
    assert (out / "registry.secret").read_text() == secret  # a running registry keeps working


def test_nats_config_refuses_a_device_id_with_a_dot(site: Deployment,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    site.enroll_gateway("gw-1", "JTCAR00001", "acme")
    store = SqliteStore(site.db)  # as an older registry enrolled it: a dot was allowed then
    try:
        device = store.device("gw-1")
        assert device is not None
        store.enroll(dataclasses.replace(device, id="gw.1"))
    finally:
        store.close()
    assert site.registry("nats-config", str(site.root / "nats"), "--run-as", "root") == 2
    assert "device id 'gw.1': contains '.'" in capsys.readouterr().err


def test_enrolment_with_nats_refuses_a_dotted_id_before_anything_changes(
    site: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    site.enroll_gateway("gw-1", "JTCAR00001", "acme")
    out = site.root / "nats"
    assert site.registry("nats-config", str(out), "--run-as", "root") == 0
    gw = site.enroll_gateway("gw-2", "JTCAR00002", "acme")
    assert site.registry("enroll", "gw.3", "--csr", str(gw.key.with_suffix(".csr")), "--vin",
                         "JTCAR00003", "--fleet", "acme", "--nats-dir", str(out)) == 2
    assert "device id 'gw.3'" in capsys.readouterr().err
    assert site.stored("gw.3") == []
    assert '"CN=gw-2"' not in (out / "auth.conf").read_text()  # enrolled without --nats-dir
    code = site.registry("revoke", "gw-1", "--nats-dir", str(out))
    assert code == 0
    auth = (out / "auth.conf").read_text()
    assert '"CN=gw-2"' in auth  # rewritten from the store
    assert '"CN=gw-1"' not in auth  # revoked: no user any more


@pytest.mark.parametrize(("spec", "expected"), [
    ("127.0.0.1:1:2:3", "HOST or HOST:CLIENT:ROUTE:MQTT:MONITOR"),
    ("h:1:2:x:4", "ports must be numbers"),
    ("h:1:2:3:70000", "ports must be 1-65535"),
])  # fmt: skip
def test_bad_node_specs_are_named(site: Deployment, capsys: pytest.CaptureFixture[str],
                                  spec: str, expected: str) -> None:  # fmt: skip
    assert site.registry("nats-config", str(site.root / "nats"), f"--node={spec}") == 2
    assert expected in capsys.readouterr().err


def test_the_client_listener_opens_beyond_loopback_only_for_remote_nodes(site: Deployment) -> None:
    assert site.registry("nats-config", str(site.root / "a"), "--run-as", "root") == 0
    assert 'listen: "127.0.0.1:4222"' in (site.root / "a" / "n1.conf").read_text()
    assert site.registry("nats-config", str(site.root / "b"), "--node", "h1", "--node", "h2",
                         "--run-as", "root") == 0  # fmt: skip
    n1 = (site.root / "b" / "n1.conf").read_text()
    assert 'listen: "0.0.0.0:4222"' in n1
    assert 'listen: "h1:6222"' in n1
    assert "stream_replicas: 2" in n1


@pytest.mark.skipif(os.geteuid() != 0, reason="hands files over only when written as root")
def test_written_as_root_for_the_nats_user_it_can_read_them_but_not_the_secrets(
    site: Deployment,
) -> None:
    try:
        user = pwd.getpwnam("nats")
    except KeyError:
        pytest.skip("no nats user (Debian's nats-server package creates it)")
    out = site.root / "nats"
    assert site.registry("nats-config", str(out), "--run-as", "nats") == 0
    for name in ("n1.conf", "auth.conf", "server.key", "device-ca.pem"):
        st = (out / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, user.pw_gid, 0o640), name
    for name in ("registry.secret", "cluster.secret", "registry-mqtt.key"):
        st = (out / name).stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), name
    assert (out / "data" / "n1").stat().st_uid == user.pw_uid
    site.enroll_gateway("gw-1", "JTCAR00001", "acme")
    assert site.registry("revoke", "gw-1", "--nats-dir", str(out)) == 0
    st = (out / "auth.conf").stat()  # rewritten, still the servers' to read
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_gid, 0o640)


def test_serve_picks_jetstream_for_nats_urls_or_a_nats_dir(site: Deployment) -> None:
    secret = site.root / "pw"
    secret.write_text("s3cret\n")
    plain = RegistryConfig(broker="mqtt://127.0.0.1:1883")
    assert isinstance(transport_for(plain, None), MqttTransport)
    nats = RegistryConfig(broker="nats://a:4222, nats://b:4222", password_file=secret)
    by_url = transport_for(nats, None)
    assert isinstance(by_url, JetStreamTransport)
    assert by_url.config.urls == ("nats://a:4222", "nats://b:4222")
    assert by_url.config.password == "s3cret"
    assert by_url.config.mqtt_urls == ()  # retained publications then wait in the store
    out = site.root / "nats"
    assert site.registry("nats-config", str(out), "--nodes", "2", "--run-as", "root") == 0
    by_dir = transport_for(plain, out)
    assert isinstance(by_dir, JetStreamTransport)
    assert by_dir.config.urls == ("nats://127.0.0.1:4222", "nats://127.0.0.1:4223")
    assert by_dir.config.replicas == 2
    assert by_dir.config.cert_file == out / "registry-mqtt.pem"
    with pytest.raises(RegistryError, match="not a usable nats-config directory"):
        transport_for(plain, site.root)
