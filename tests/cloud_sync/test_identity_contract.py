"""Contract between the identity stage and the registry: a session.start body exactly as
``edge_agent.identity.binding`` writes it, from a card certificate issued by the identity
helper's test issuer, verifies in the registry and binds a person."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from cloud_sync.cards import TrustAnchors
from cloud_sync.ingest import Ack, Ingestor
from edge_agent.card.issuer import TestIssuer, new_rsa_key
from edge_agent.identity.binding import (
    BindingStatement,
    Consent,
    LicenceClaim,
    SessionStartBody,
    iso_utc,
)
from msp_protocol.records import body_from_json
from msp_protocol.topics import rec_topic
from tests.sync_kit import Gateway, trip


def test_identity_session_start_binds_a_person(tmp_path, store, device_ca):
    issuer = TestIssuer.create()
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "test-jpki.pem").write_bytes(
        issuer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    card_key = new_rsa_key()
    cert = issuer.issue_auth_certificate(card_key.public_key())
    der = cert.public_bytes(serialization.Encoding.DER)
    gw = Gateway("gw-0001", "JT123456789")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    statement = BindingStatement(
        session="s-0001", vin=gw.vin, device=gw.device,
        started_at=iso_utc(datetime.now(UTC) - timedelta(minutes=5)),
        nonce="AAECAwQFBgcICQoLDA0ODw", vehicle_class="car",
        licence=LicenceClaim(date(2030, 1, 31), ("普通",)),
        consents=(Consent("acme", ("trip",), "2027-11-26T00:00:00.000Z"),),
    )  # fmt: skip
    signature = card_key.sign(statement.canonical(), padding.PKCS1v15(), hashes.SHA256())
    body = SessionStartBody(statement, signature, der, hashlib.sha256(der).digest())
    start = body_from_json("session.start", body.to_json())
    ingestor = Ingestor(store, TrustAnchors.load(anchors))
    tokens = [gw.sign(start, "session.start", "s-0001"), gw.sign(trip(), "trip", "s-0001")]
    assert ingestor.process([(rec_topic(gw.device), t.encode()) for t in tokens]) == [
        Ack("gw-0001", 2)]  # fmt: skip
    assert store.rejections() == {}
    [person] = store.persons()
    assert [(s.id, s.person_id, s.vin) for s in store.sessions()] == [
        ("s-0001", person.id, "JT123456789")]  # fmt: skip
    assert [t.vin for t in store.trips(person.id)] == ["JT123456789"]
