"""The generated mosquitto configuration on a real mosquitto: its size limits, the device CA's
CRL (a revoked gateway cannot even complete the TLS handshake), and files readable by the
user mosquitto drops to when started as root, as Debian's mosquitto.service starts it."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import ssl
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.broker_process import MosquittoProcess, free_port
from cloud_sync.ingest import MAX_PAYLOAD_BYTES
from cloud_sync.mosquitto import MAX_PACKET_BYTES, BrokerLayout, write_config
from cloud_sync.pki import CRL_FILE, DeviceCa, cert_pem, key_pem, write_private
from msp_protocol.records import MAX_RECORD_BYTES
from msp_protocol.topics import rec_topic
from tests.sync_deploy import Deployment, GatewaySetup, wait_for

# an MQTT 3.1.1 CONNECT with client id "x", keepalive 30
_CONNECT = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 1]) + b"x"


def mqtt_over_tls(port: int, ca: Path, cert: Path, key: Path) -> str:
    """Connect with a client certificate and send CONNECT: ``"connack"`` if the broker
    answers, else the TLS error it ended the connection with."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(_CONNECT)
            answer = tls.recv(4)
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused: {exc}"
    return "connack" if answer[:1] == b"\x20" else f"closed: {answer!r}"


def _conf_values(conf: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in conf.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values.setdefault(key, []).append(value)
    return values


def test_config_bounds_packets_and_names_the_crl(tmp_path: Path) -> None:
    ca = DeviceCa.open(tmp_path / "ca")
    files = write_config(tmp_path / "b", ca, BrokerLayout(run_as=pwd.getpwuid(os.getuid())[0]))
    values = _conf_values(files.config.read_text())
    (packet,) = (int(v) for v in values["max_packet_size"])
    # a record's JWS fits with room to spare; the registry's fleet copy of the largest record
    # (its body escaped, beside its JWS) fits; 10 MB does not
    assert packet == MAX_PACKET_BYTES
    assert 3 * MAX_RECORD_BYTES + MAX_PAYLOAD_BYTES + 1024 < packet < 10 * 1024 * 1024
    assert "message_size_limit" not in values  # deprecated in 2.0 for max_packet_size
    assert values["crlfile"] == [f"{(tmp_path / 'b').resolve()}/{CRL_FILE}"]
    crl = x509.load_pem_x509_crl((tmp_path / "b" / CRL_FILE).read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert list(crl) == [] and crl.next_update_utc == ca.cert.not_valid_after_utc


def test_revoked_device_is_refused_at_the_tls_handshake(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    other = deployment.enroll_gateway("gw-2", "JTCAR00002")
    ca = deployment.brokerdir / "device-ca.pem"
    assert mqtt_over_tls(deployment.device_port, ca, gw.cert, gw.key) == "connack"
    assert deployment.registry("revoke", "gw-1", "--mosquitto-dir",
                               str(deployment.brokerdir)) == 0  # fmt: skip
    serial = x509.load_pem_x509_certificate(gw.cert.read_bytes()).serial_number
    crl = x509.load_pem_x509_crl((deployment.brokerdir / CRL_FILE).read_bytes())
    assert [r.serial_number for r in crl] == [serial]
    assert deployment.broker is not None
    deployment.broker.reload()  # what systemctl reload mosquitto does: SIGHUP

    def refused() -> bool:
        return mqtt_over_tls(deployment.device_port, ca, gw.cert, gw.key).startswith("refused")

    wait_for(refused, "mosquitto to refuse the revoked certificate")
    # the same certificate was accepted before, and another device's still is: it is the CRL
    # (the client sees the "certificate revoked" alert, or only the closed connection)
    assert mqtt_over_tls(deployment.device_port, ca, other.cert, other.key) == "connack"
    assert "verify failed" in (deployment.brokerdir / "mosquitto.log").read_text()
    # and a configuration written afterwards keeps the device refused
    deployment.configure()
    crl = x509.load_pem_x509_crl((deployment.brokerdir / CRL_FILE).read_bytes())
    assert [r.serial_number for r in crl] == [serial]


def test_broker_refuses_a_packet_over_its_limit(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-1", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(deployment.brokerdir / "device-ca.pem"), certfile=str(gw.cert),
                   keyfile=str(gw.key))  # fmt: skip
    gone: list[str] = []
    client.on_disconnect = lambda _c, _u, _f, rc, _p: gone.append(str(rc))
    client.connect("127.0.0.1", deployment.device_port)
    client.loop_start()
    try:
        info = client.publish(rec_topic("gw-1"), b"A" * (MAX_PACKET_BYTES + 1), qos=1)
        wait_for(lambda: bool(gone) or info.rc != mqtt.MQTT_ERR_SUCCESS, "the refusal")
    finally:
        client.disconnect()
        client.loop_stop()
    assert not info.is_published()
    log = (deployment.brokerdir / "mosquitto.log").read_text(errors="replace")
    assert "oversize" in log.lower() or info.rc != mqtt.MQTT_ERR_SUCCESS, gone
    assert "oversized" not in deployment.stats()["rejections"]  # never reached the registry


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory outside pytest's 0700 tree, so that another user can reach into it."""
    if os.geteuid() != 0:
        pytest.skip("handing files to the mosquitto user needs root (as the Debian install does)")
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.fail("no mosquitto user: install mosquitto (scripts/system-deps)")
    path = Path(tempfile.mkdtemp(prefix="msp-broker-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_written_as_root_for_user_mosquitto_it_starts(world_dir: Path, tmp_path: Path) -> None:
    user = pwd.getpwnam("mosquitto")
    ca = DeviceCa.open(tmp_path / "ca")
    dport, rport = free_port(), free_port()
    layout = BrokerLayout(device_port=dport, device_bind="127.0.0.1", registry_port=rport,
                          fleet_port=None, run_as="mosquitto")  # fmt: skip
    files = write_config(world_dir / "msp", ca, layout)
    outdir = world_dir / "msp"
    assert "user mosquitto" in files.config.read_text().splitlines()
    info = outdir.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, user.pw_gid, 0o750)
    for name in ("server.key", "passwd", "acl", "mosquitto.conf"):
        info = (outdir / name).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, user.pw_gid, 0o640)
    secret = (outdir / "registry.secret").stat()  # the registry's, not the broker's
    assert (secret.st_uid, stat.S_IMODE(secret.st_mode)) == (0, 0o600)
    assert (outdir / "data").stat().st_uid == user.pw_uid
    broker = MosquittoProcess(files.config, (dport, rport), log_file=tmp_path / "mosquitto.log")
    with broker:  # started as root, as mosquitto.service does; it drops to user mosquitto
        client = GatewaySetup("gw-1", "JT1", tmp_path / "gw.key", tmp_path / "gw.pem",
                              tmp_path / "o.db")  # fmt: skip
        issued = ca.issue_client("gw-1")
        write_private(client.key, key_pem(issued.key))
        client.cert.write_bytes(cert_pem(issued.cert))
        assert mqtt_over_tls(dport, files.ca_cert, client.cert, client.key) == "connack"
    log = (tmp_path / "mosquitto.log").read_text()
    assert "Config loaded" in log and "running" in log
    assert not re.search(r"Unable to|Permission denied|Error saving|Error: ", log), log
