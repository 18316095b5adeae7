"""The person's requests at the registry: answers sealed with HPKE to the request's key (and
to no other), in parts; export of everything; erasure under the retention rule with the
retained score withdrawn from every recipient that had it."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.chain_audit import audit_chain
from cloud_sync.consents import PersonActs
from cloud_sync.my_data import MyData
from cloud_sync.pki import DeviceCa
from cloud_sync.republish import fleet_pseudonym
from msp_protocol import bodies
from msp_protocol.consent import statement_bytes
from msp_protocol.errors import ChainError, SealError
from msp_protocol.jws import b64url, load_public_key
from msp_protocol.records import format_ts
from msp_protocol.sealed import PART_BYTES, open_reply, seal_reply
from msp_protocol.topics import fleet_score_topic, reply_topic
from tests.cloud_sync.test_consent_statements import FLEET, UNTIL, Registry, new_db
from tests.sync_kit import T0, Card, CardIssuer, Gateway, event, trip


def keypair() -> tuple[x25519.X25519PrivateKey, str]:
    private = x25519.X25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    return private, b64url(raw)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3 * PART_BYTES // 2))
def test_a_sealed_reply_opens_with_its_key_only(plaintext: bytes) -> None:
    private, public = keypair()
    messages = [json.loads(m) for m in seal_reply("req-1", "n-1", plaintext, public)]
    assert len(messages) == max(1, -(-len(plaintext) // PART_BYTES))
    assert open_reply(list(reversed(messages)), private) == plaintext
    with pytest.raises(SealError):
        open_reply(messages, keypair()[0])
    if len(messages) > 1:
        with pytest.raises(SealError, match="incomplete"):
            open_reply(messages[1:], private)
    swapped = [dict(m, request="req-2") for m in messages]  # bound to its request
    with pytest.raises(SealError):
        open_reply(swapped, private)


def request_body(card: Card, gw: Gateway, action: str, reply_key: str | None,
                 at: float = T0 + 5 * 86400) -> bodies.CardRequest:  # fmt: skip
    statement = bodies.RequestStatement(action, gw.device, gw.vin, format_ts(at),
                                        b64url(hashlib.sha256(action.encode()).digest()),
                                        reply_key, None)  # fmt: skip
    signature = card.key.sign(statement_bytes(statement), padding.PKCS1v15(), hashes.SHA256())
    return bodies.CardRequest(statement, base64.b64encode(signature).decode(),
                              b64url(hashlib.sha256(card.der).digest()), None)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new registry database of each back end."""
    return new_db(request, tmp_path)


@pytest.fixture
def driven(db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa
           ) -> tuple[Registry, Gateway, Card]:  # fmt: skip
    gw = Gateway("gw-a", "JTAAA000001")
    reg = Registry(db_url, card_issuer, device_ca, gw)
    reg.acts = PersonActs(reg.store, card_issuer.anchors(), MyData(reg.store).answer)
    reg.ingestor.on_early = reg.acts.early
    card = card_issuer.card()
    consent = bodies.Consent(FLEET, ("driving", "score"), UNTIL)
    reg.send(gw, gw.sign(card.session_start(gw, "s-a", consents=(consent,)), "session.start",
                         "s-a"),
             gw.sign(trip(day=1), "trip", "s-a"), gw.sign(event(), "event", "s-a"))  # fmt: skip
    return reg, gw, card


def answer_of(reg: Registry, gw: Gateway, private: x25519.X25519PrivateKey) -> dict[str, object]:
    parts = [json.loads(p) for t, p in reg.queued() if t == reply_topic(gw.device)]
    value: dict[str, object] = json.loads(open_reply(parts, private))
    return value


def test_my_data_answers_with_consents_exchanges_and_scores_sealed(
    driven: tuple[Registry, Gateway, Card],
) -> None:
    reg, gw, card = driven
    private, public = keypair()
    token = gw.sign(request_body(card, gw, "my_data", public), "request")
    reg.send(gw, token)
    reg.send(gw, token)  # a re-send is answered once
    answer = answer_of(reg, gw, private)
    assert answer["action"] == "my_data"
    exchanges = answer["exchanges"]
    assert isinstance(exchanges, list)
    assert [(e["recipient"], e["kind"], e["record"]) for e in exchanges] == [
        (FLEET, "session.start", "gw-a/1"), (FLEET, "trip", "gw-a/2"),
        (FLEET, "score", "gw-a/2"), (FLEET, "event", "gw-a/3")]
    assert all(e["consent"] == "session:s-a" and e["status"] == "queued" for e in exchanges)
    consents = answer["consents"]
    assert isinstance(consents, dict) and consents["at_login"][0]["recipient"] == FLEET
    scores = answer["scores"]
    assert isinstance(scores, dict) and scores["trips"][0]["trip_score"] == 80.0
    # on the wire: nothing of it in the clear
    wire = b"".join(p for t, p in reg.queued() if t == reply_topic(gw.device))
    assert b"session.start" not in wire and b"gw-a/2" not in wire


def test_export_gives_everything_and_erase_keeps_only_the_retention_rule(
    driven: tuple[Registry, Gateway, Card],
) -> None:
    reg, gw, card = driven
    private, public = keypair()
    reg.send(gw, gw.sign(request_body(card, gw, "export", public), "request"))
    exported = answer_of(reg, gw, private)
    assert [t["distance_km"] for t in exported["trips"]] == [12.0]  # type: ignore[index]
    assert [e["type"] for e in exported["events"]] == ["harsh_braking"]  # type: ignore[index]
    assert [s["id"] for s in exported["sessions"]] == ["s-a"]  # type: ignore[index]
    person = reg.store.persons()[0].id
    reg.store.fanout_done([i for i, _p in reg.store.fanout_pending(1000)])  # all delivered

    reg.send(gw, gw.sign(request_body(card, gw, "erase", public, T0 + 6 * 86400), "request"))
    erased = answer_of(reg, gw, private)
    assert erased["erased"] == {"records": 3, "trips": 1, "events": 1, "dtcs": 0,
                                "emergencies": 0, "profiles": 0, "sessions": 1,
                                "card_certificates": 1}
    score = fleet_score_topic(FLEET, fleet_pseudonym(reg.store.pseudonym_secret(), FLEET,
                                                     person))  # fmt: skip
    assert (score, b"") in reg.queued()  # the fleet holding the retained score drops it
    assert reg.store.trips(person) == [] and reg.store.sessions(person) == []
    # the retention rule keeps the exchange log and the consents' evidence, not the data
    assert len(reg.store.exchanges(person)) == 4
    assert [seq for seq, _h in reg.store.erased_records(gw.device)] == [1, 2, 3]
    assert reg.store.chain_head(gw.device).seq == 5  # the chain itself goes on
    # the audit still verifies the chain: the rest signed, the erased ones by their hash
    device = reg.store.device(gw.device)
    assert device is not None
    report = audit_chain(gw.device, reg.store.chain_records(gw.device), (),
                         load_public_key(device.public_key_pem.encode()),
                         erased=reg.store.erased_records(gw.device))  # fmt: skip
    assert (report.first_seq, report.last_seq, report.records, report.erased) == (1, 5, 2, 3)
    tampered = [*reg.store.erased_records(gw.device)[:2], (3, "x" * 43)]
    with pytest.raises(ChainError):  # not the hash seq 4 chains to
        audit_chain(gw.device, reg.store.chain_records(gw.device), (),
                    load_public_key(device.public_key_pem.encode()), erased=tampered)


def test_a_request_the_registry_cannot_trust_gets_a_sealed_refusal(
    driven: tuple[Registry, Gateway, Card], card_issuer: CardIssuer
) -> None:
    reg, gw, _card = driven
    stranger = card_issuer.card()  # never logged in: the registry does not know its key
    private, public = keypair()
    reg.send(gw, gw.sign(request_body(stranger, gw, "export", public), "request"))
    answer = answer_of(reg, gw, private)
    assert answer["refused"] == "card_certificate_unknown" and answer["action"] == "export"
    assert "trips" not in answer and reg.store.rejections()["card_certificate_unknown"] == 1
