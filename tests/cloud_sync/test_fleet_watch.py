"""The reference fleet subscriber's checks, fed the registry's real copies and key messages."""

from __future__ import annotations

import json

from cloud_sync.fleet_watch import FleetChecker
from cloud_sync.fleets import key_publication
from cloud_sync.republish import Republisher
from cloud_sync.store import Publication
from msp_protocol import bodies
from msp_protocol.topics import rec_topic
from tests.sync_kit import Gateway, event, trip


def copies(ingestor, store, device_ca, card_issuer) -> tuple[Publication, list[Publication]]:
    gw = Gateway("gw-1", "JTCAR00001")
    device = gw.device_row(device_ca, fleet="acme")
    store.enroll(device)
    card = card_issuer.card()
    start = card.session_start(gw, "s-1", consents=(bodies.Consent(
        "acme", ("driving",), "2027-01-01T00:00:00Z"),))  # fmt: skip
    tokens = [gw.sign(trip(), "trip"), gw.sign(start, "session.start", "s-1"),
              gw.sign(event(), "event", "s-1")]  # fmt: skip
    outcome = ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])
    return key_publication("acme", device), list(Republisher(store).fanout(outcome.accepted)
                                                 .publications)  # fmt: skip


def test_records_wait_for_their_key_then_verify(ingestor, store, device_ca, card_issuer):
    key, pubs = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    trip_copy, start_copy, event_copy = pubs
    assert checker.feed(trip_copy.topic, trip_copy.payload) == []  # no key yet: held
    released = checker.feed(key.topic, key.payload)
    assert [(m.kind, m.check) for m in released] == [("keys", "registry"), ("trip", "verified")]
    assert [m.check for p in (start_copy, event_copy) for m in checker.feed(p.topic, p.payload)] \
        == ["no jws (carries the card certificate)", "no jws (body.location)"]


def test_a_copy_that_differs_from_what_was_signed_is_rejected(ingestor, store, device_ca,
                                                             card_issuer):  # fmt: skip
    key, (trip_copy, *_rest) = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    checker.feed(key.topic, key.payload)
    value = json.loads(trip_copy.payload)
    for field, forged in (("body", {**value["body"], "distance_km": 1.0}), ("seq", 9),
                          ("vin", "JTOTHER001")):  # fmt: skip
        [msg] = checker.feed(trip_copy.topic, json.dumps({**value, field: forged}).encode())
        assert msg.check == f"REJECTED: the copy's {field} is not what was signed"
    other = Gateway("gw-1", "JTCAR00001")  # same id, another key: a forged signature
    token = other.sign(trip(), "trip")
    [msg] = checker.feed(trip_copy.topic, json.dumps({**value, "jws": token}).encode())
    assert msg.check == "REJECTED: jws: jws.signature: signature does not verify"
    [msg] = checker.feed("msp/v1/fleet/acme/event", trip_copy.payload)
    assert msg.check == "REJECTED: a trip record on the event topic"


def test_bad_messages_are_named(ingestor, store, device_ca, card_issuer):
    key, _pubs = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    [msg] = checker.feed("msp/v1/fleet/other/trip", b"{}")
    assert msg.check == "REJECTED: not a topic of fleet acme"
    [msg] = checker.feed("msp/v1/fleet/acme/trip", b"\xff{")
    assert msg.check.startswith("REJECTED: payload is not JSON")
    [msg] = checker.feed("msp/v1/fleet/acme/trip", b"[1]")
    assert msg.check == "REJECTED: payload is not JSON: not a JSON object"
    bad_key = json.dumps({**json.loads(key.payload), "public_key_pem": "junk"}).encode()
    [msg] = checker.feed(key.topic, bad_key)
    assert msg.check.startswith("REJECTED: device gw-1: key: not a usable PEM public key")


def test_a_withdrawn_score_is_said_so() -> None:
    [msg] = FleetChecker("rental").feed("msp/v1/fleet/rental/score/fp-abc", b"")
    assert (msg.kind, msg.check, msg.text) == ("score", "registry",
                                               "score fp-abc withdrawn (consent ended)")
