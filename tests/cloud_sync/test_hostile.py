"""Hostile payloads from an enrolled gateway, through real mosquitto to the real registry
process (``msp-registry serve``): deep nesting, numbers over Python's digit limit, any byte at
any position of a valid JWS. After each, the registry is still running and commits and acks
the gateway's next good record; signed records with a readable place in the chain are
quarantined and the chain goes on through them. One broker and registry for the module."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.broker_process import MosquittoProcess
from msp_protocol.jws import b64url, record_hash
from msp_protocol.topics import ack_topic, parse_ack, rec_topic
from tests.sync_deploy import Deployment, wait_for
from tests.sync_kit import CardIssuer, Gateway, trip

DEVICE, VIN = "gw-h", "JTHOSTILE01"
_FUZZ = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@dataclass
class Site:
    """The deployment, the gateway's signing state, and its raw MQTT connection."""

    deploy: Deployment
    gw: Gateway
    client: mqtt.Client
    acked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, payload: bytes) -> None:
        info = self.client.publish(rec_topic(DEVICE), payload, qos=1)
        info.wait_for_publish(30)
        assert info.is_published()

    def good_record_goes_through(self) -> None:
        """The registry is alive: the next good record is committed and acked (re-sent every
        2 s until then, as a gateway does: the registry may not have subscribed yet)."""
        token = self.gw.sign(trip(), "trip").encode()
        for _ in range(15):
            self.publish(token)
            try:
                wait_for(lambda: self.acked >= self.gw.seq, "an ack", timeout=2.0)
                break
            except AssertionError:
                continue
        assert self.acked >= self.gw.seq, f"no ack of seq {self.gw.seq}"
        proc = self.deploy.registry_proc
        assert proc is not None and proc.poll() is None, "the registry exited"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, card_issuer: CardIssuer) -> Iterator[Site]:
    if not MosquittoProcess.available():
        pytest.fail("mosquitto is not installed: run scripts/test (it installs it)")
    deploy = Deployment(tmp_path_factory.mktemp("hostile"), card_issuer)
    deploy.configure()
    assert deploy.broker is not None
    deploy.broker.start()
    client = None
    try:
        setup = deploy.enroll_gateway(DEVICE, VIN)
        key = serialization.load_pem_private_key(setup.key.read_bytes(), None)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        deploy.start_registry()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(deploy.brokerdir / "device-ca.pem"), certfile=str(setup.cert),
                       keyfile=str(setup.key), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        state = Site(deploy, Gateway(DEVICE, VIN, key=key), client)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with state.lock:
                state.acked = max(state.acked, parse_ack(bytes(msg.payload)))

        client.on_message = on_message
        client.connect("127.0.0.1", deploy.device_port)
        client.subscribe(ack_topic(DEVICE), qos=1)
        client.loop_start()
        state.good_record_goes_through()
        yield state
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
        deploy.stop()


def _header(text: str) -> str:
    return b64url(text.encode())


def _unsigned(header: str, payload: bytes = b"{}") -> bytes:
    return f"{header}.{b64url(payload)}.{b64url(b'x' * 64)}".encode()


def _envelope(gw: Gateway, body: str) -> bytes:
    """A record's JSON with the next seq and the right prev, and ``body`` as its raw text."""
    head = {"v": 1, "kind": "trip", "device": gw.device, "vin": gw.vin, "seq": gw.seq + 1,
            "prev": gw.prev, "ts": "2026-11-20T10:00:00.000Z", "session": None}  # fmt: skip
    return ('{"body":' + body + "," + json.dumps(head, separators=(",", ":"))[1:]).encode()


def _sign_placed(site: Site, payload: bytes) -> bytes:
    """Sign ``payload`` as the gateway's next record, which the registry quarantines."""
    token = site.gw.signer.sign(payload)
    site.gw.seq += 1
    site.gw.prev = record_hash(token)
    return token.encode()


@_FUZZ
@given(position=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
def test_any_byte_at_any_position_of_a_valid_jws(site: Site, position: float, byte: int) -> None:
    nxt = Gateway(DEVICE, VIN, key=site.gw.key, seq=site.gw.seq, prev=site.gw.prev)
    token = bytearray(nxt.sign(trip(), "trip").encode())
    at = int(position * len(token))
    if token[at] == byte:
        byte ^= 0x01
    token[at] = byte
    site.publish(bytes(token))
    site.good_record_goes_through()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(depth=st.one_of(st.integers(3, 200), st.integers(3000, 40000)),
       where=st.sampled_from(["header", "signed", "body"]))  # fmt: skip
def test_deep_nesting(site: Site, depth: int, where: str) -> None:
    nested = "[" * depth + "]" * depth
    if where == "header":
        payload = _unsigned(_header(nested))
    elif where == "signed":
        payload = site.gw.signer.sign(nested.encode()).encode()  # no place in the chain
    elif depth <= 200:  # a nested body in a readable envelope: quarantined, chain goes on
        payload = _sign_placed(site, _envelope(site.gw, nested))
    else:  # too deep even to read its seq: refused, the chain stays where it was
        payload = site.gw.signer.sign(_envelope(site.gw, nested)).encode()
    site.publish(payload)
    site.good_record_goes_through()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(digits=st.integers(4301, 30000), where=st.sampled_from(["header", "seq", "body"]))
def test_numbers_over_the_digit_limit(site: Site, digits: int, where: str) -> None:
    number = "7" * digits
    if where == "header":
        payload = _unsigned(_header('{"alg":"EdDSA","kid":"gw-h","x":' + number + "}"))
    elif where == "seq":
        text = _envelope(site.gw, "{}").replace(b'"seq":', b'"seq":' + number.encode() + b",\"s\":")
        payload = site.gw.signer.sign(text).encode()  # no readable seq: refused
    else:
        payload = _sign_placed(site, _envelope(site.gw, '{"distance_km":' + number + "}"))
    site.publish(payload)
    site.good_record_goes_through()


def test_afterwards_the_chain_audits_and_nothing_was_an_internal_error(site: Site) -> None:
    """Every hostile payload was refused by a parser, not by the last guard; what was
    quarantined sits in the chain, and the chain re-verifies."""
    site.good_record_goes_through()
    stats = site.deploy.stats()
    reasons = set(stats["rejections"])
    assert reasons <= {"malformed", "bad_signature", "alg_mismatch", "device_mismatch", "oversized",
                       "bad_record", "duplicate"}, stats["rejections"]  # fmt: skip
    assert {"malformed", "bad_record"} <= reasons
    held = stats["counts"]["quarantine"]
    assert held >= 1 and held + stats["counts"]["records"] == site.gw.seq
    assert site.deploy.registry("audit", "--device", DEVICE) == 0
