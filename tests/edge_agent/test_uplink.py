"""The MQTT uplink against a real mosquitto (mTLS, generated ACL) and a real registry process."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.ingest import Ingestor
from cloud_sync.store.sqlite import SqliteStore
from edge_agent import cli as agent_cli
from edge_agent.keys import load_signer
from edge_agent.outbox import NewRecord, Outbox, OutboxLimits
from edge_agent.uplink import MemoryUplink, MqttUplink, UplinkConfig, UplinkError
from edge_agent.uplink.mqtt import batches
from msp_protocol.chain import verify_chain
from msp_protocol.jws import MAX_TOKEN_CHARS, load_public_key
from msp_protocol.topics import rec_topic
from tests.sync_deploy import T0, Deployment, UplinkThread, wait_for
from tests.sync_kit import session_end


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_outbox_drains_to_the_registry(deployment: Deployment, mqtt5: bool) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 40)
    uplink = MqttUplink(deployment.uplink_config(gw, mqtt5=mqtt5, window=8), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert deployment.verify(gw, 40).records == 40
    assert uplink.stats().acked == 40 and uplink.stats().published >= 40
    assert outbox.stats().acked_seq == 40


def test_acl_refuses_another_devices_topic(deployment: Deployment) -> None:
    gw1 = deployment.enroll_gateway("gw-1", "JTCAR00001")
    gw2 = deployment.enroll_gateway("gw-2", "JTCAR00002")
    deployment.start_registry()
    outbox2 = gw2.open_outbox()
    gw2.fill(outbox2, 1)
    token = next(iter(outbox2.records())).jws
    results: list[tuple[str, bool]] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-1", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(deployment.brokerdir / "device-ca.pem"), certfile=str(gw1.cert),
                   keyfile=str(gw1.key), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip

    def on_publish(_c, _u, _mid, rc, _p):  # type: ignore[no-untyped-def]
        results.append((str(rc), rc.is_failure))
        done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", deployment.device_port)
    client.loop_start()
    try:
        client.publish(rec_topic("gw-2"), token.encode(), qos=1)  # gw-1 posing as gw-2
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert results == [("Not authorized", True)]
    # the registry never saw it: gw-2 has nothing stored, nothing counted
    assert deployment.stored("gw-2") == []


def test_refusal_keeps_the_record_and_logs_once(deployment: Deployment, caplog) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 3)
    # a gateway whose certificate says gw-1 but which believes it is gw-2: every publish refused
    config = deployment.uplink_config(gw, device="gw-2", resend_after_s=0.2)
    uplink = MqttUplink(config, outbox)
    with caplog.at_level("WARNING", logger="edge_agent.uplink.mqtt"), UplinkThread(uplink):
        wait_for(lambda: uplink.stats().refused >= 6, "refusals of re-sent records")
    assert outbox.stats().rows == 3  # nothing lost
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "Not authorized" in refusals[0].getMessage()


def test_memory_uplink_feeds_an_ingestor(card_issuer, deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    outbox = gw.open_outbox()
    gw.fill(outbox, 5)
    store = SqliteStore(deployment.db)
    ingestor = Ingestor(store, card_issuer.anchors())

    def deliver(device: str, jws: str) -> int | None:
        acks = ingestor.process([(rec_topic(device), jws.encode())])
        return acks[-1].seq if acks else None

    try:
        assert MemoryUplink("gw-1", outbox, deliver).flush() == 5
    finally:
        store.close()
    assert outbox.stats().rows == 0
    assert deployment.verify(gw, 5).records == 5


def test_evicted_records_do_not_stall_the_chain(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    signer = load_signer(gw.key, gw.device)
    outbox = Outbox.open(gw.outbox_path, signer, gw.vin, OutboxLimits(max_rows=20))
    for chunk in range(12):  # offline for long: the bound evicts the oldest trips
        gw.fill(outbox, 5, start=chunk * 5)
    last = outbox.stats().last_seq
    assert outbox.stats().evicted_total > 0
    uplink = MqttUplink(deployment.uplink_config(gw, window=4, resend_after_s=0.5), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    rows = deployment.stored("gw-1")
    assert rows[-1][0] == last and len(rows) < last  # some seqs only declared evicted
    key = load_public_key(signer.public_pem().encode())
    report = verify_chain([jws for _, jws in rows], lambda _kid: key)
    assert report.last_seq == last and report.records + report.evicted == last


@pytest.mark.parametrize(("args", "message"), [
    (["--broker", "mqtts://127.0.0.1:8883"], "needs --ca and --cert"),
    (["--broker", "http://x"], "expected mqtts://HOST:PORT"),
])  # fmt: skip
def test_uplink_command_line_errors(tmp_path, capsys, args, message) -> None:
    files = ["--outbox", str(tmp_path / "o.db"), "--key", str(tmp_path / "k")]
    code = agent_cli.main(["uplink", *files, "--device", "gw-1", "--vin", "JT1234567", *args])
    assert code == 2 and message in capsys.readouterr().err


# -- bytes on a metered link: batches, linger, keepalive, session, TLS resumption --------------


def _registry_listening(deployment: Deployment) -> None:
    """Start the registry and wait for its subscription: the counts below allow no re-send."""
    deployment.start_registry()
    log = deployment.root / "registry.log"
    wait_for(lambda: log.exists() and "registry connected" in log.read_text(), "the registry")


@dataclass(frozen=True)
class _Rec:
    seq: int
    kind: str
    jws: str


def test_batches_keep_order_and_both_bounds() -> None:
    records = [_Rec(i, "trip", "x" * size) for i, size in enumerate([10, 10, 10, 50, 10, 10], 1)]
    cut = batches(records, 3, 40)  # type: ignore[arg-type]
    assert [[r.seq for r in b] for b in cut] == [[1, 2, 3], [4], [5, 6]]  # 50 > 40 goes alone
    assert all(len("\n".join(r.jws for r in b)) <= 40 or len(b) == 1 for b in cut)
    assert [[r.seq for r in b] for b in batches(records, 2, 10_000)] == [[1, 2], [3, 4], [5, 6]]  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [{"keepalive_s": 70_000}, {"batch_records": 0},
                                     {"batch_bytes": MAX_TOKEN_CHARS + 1}, {"linger_s": -1.0}])
def test_uplink_settings_out_of_range_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(UplinkError, match=next(iter(changes))):
        UplinkConfig("gw-1", **changes)  # type: ignore[arg-type]


def test_a_batch_is_one_message_committed_whole_with_one_cumulative_ack(
    deployment: Deployment,
) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    _registry_listening(deployment)
    outbox = gw.open_outbox()
    gw.fill(outbox, 10)
    uplink = MqttUplink(deployment.uplink_config(gw, resend_after_s=600), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert deployment.verify(gw, 10).records == 10
    stats = uplink.stats()
    assert (stats.published, stats.messages, stats.acks, stats.acked) == (10, 1, 1, 10)
    log = (deployment.brokerdir / "mosquitto.log").read_text()
    # a long keepalive, a persistent MQTT 5 session, acks subscribed at QoS 0
    assert re.search(r"as gw-1 \(p5, c0, k5", log), log[-2000:]
    assert "gw-1 0 msp/v1/dev/gw-1/ack" in log


def test_batches_are_bounded_and_every_record_still_committed(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    _registry_listening(deployment)
    outbox = gw.open_outbox()
    gw.fill(outbox, 40)
    config = deployment.uplink_config(gw, resend_after_s=600, batch_records=16)
    uplink = MqttUplink(config, outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert deployment.verify(gw, 40).records == 40
    assert uplink.stats().messages == 3  # 16 + 16 + 8


def _step_until(uplink: MqttUplink, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        uplink.step(0.05)


def test_linger_holds_a_small_batch_until_hurried(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    _registry_listening(deployment)
    outbox = gw.open_outbox()
    gw.fill(outbox, 3)
    uplink = MqttUplink(deployment.uplink_config(gw, linger_s=3600), outbox)
    uplink.start()
    try:
        _step_until(uplink, lambda: uplink.connected, "the connection")
        for _ in range(20):
            uplink.step(0.05)
        assert uplink.stats().published == 0 and outbox.stats().rows == 3  # held for a batch
        uplink.hurry()
        _step_until(uplink, lambda: outbox.stats().rows == 0, "the outbox to drain")
    finally:
        uplink.stop()
    assert uplink.stats().messages == 1 and deployment.verify(gw, 3).records == 3


def test_a_session_record_is_never_held_for_a_batch(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    _registry_listening(deployment)
    outbox = gw.open_outbox()
    gw.fill(outbox, 2)
    outbox.append_many([NewRecord(session_end(), T0 + 5000.0, "s-1")])
    uplink = MqttUplink(deployment.uplink_config(gw, linger_s=3600), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert uplink.stats().messages == 1  # the two trips went with it


def test_a_reconnect_resumes_the_tls_session(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    _registry_listening(deployment)
    outbox = gw.open_outbox()
    gw.fill(outbox, 2)
    uplink = MqttUplink(deployment.uplink_config(gw), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
        sock = uplink._client.socket()  # the link drops (a tunnel, a cell handover)
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: uplink.stats().connects == 2 and uplink.connected, "a reconnect")
        gw.fill(outbox, 2, start=2)
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain again")
    assert uplink.stats().tls_resumed == 1  # the second handshake sent no certificates
    assert deployment.verify(gw, 4).records == 4
