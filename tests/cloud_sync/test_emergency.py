"""Emergencies at the registry (both back ends, real card keys and HPKE, the live ingest path
with its early hook): the sealed profile is kept as ciphertext only; a crash is sent to the
responders the person's ``emergency`` consent names as soon as the record verifies, before
the records ahead of it in the chain have arrived, and once only; no crash, no notice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from cloud_sync.pki import DeviceCa
from cloud_sync.recipients.watch import Checker
from msp_protocol.sealed import open_profile
from tests.cloud_sync.recipient_kit import (
    OTHER_RESPONDER,
    PROFILE,
    RESPONDER,
    CareRegistry,
    consent_body,
    crash,
    event,
    logged_in,
)
from tests.cloud_sync.test_consent_statements import db_url  # noqa: F401 - fixture
from tests.sync_kit import T0, Card, CardIssuer, Gateway, trip


def _ready(url: str, card_issuer: CardIssuer, device_ca: DeviceCa
           ) -> tuple[CareRegistry, Gateway, Card]:  # fmt: skip
    gw = Gateway("gw-amb", "JTDKB20U793100003")
    reg = CareRegistry(url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", RESPONDER, ("emergency",), T0 + 1),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(reg.profile_record(card, gw), "profile", "s-1"),
             gw.sign(reg.profile_record(card, gw, OTHER_RESPONDER), "profile", "s-1"))
    return reg, gw, card


def test_a_crash_reaches_the_named_responder_ahead_of_the_chain(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    reg, gw, _card = _ready(db_url, card_issuer, device_ca)
    backlog = [gw.sign(trip(5.0), "trip", "s-1"), gw.sign(event("harsh_braking", "major", T0 + 9),
                                                          "event", "s-1")]  # fmt: skip
    emergency = gw.sign(crash(T0 + 10), "emergency", "s-1")
    reg.send(gw, emergency)  # ahead of its backlog: the two records before it are missing
    assert reg.store.chain_head(gw.device).seq == 4  # session, consent, two profiles
    got = reg.messages("responder", RESPONDER)
    assert len(got) == 1
    notice = got[0][1]
    assert notice["location"] == {"lat": 35.6581, "lon": 139.7017}
    assert (notice["peak_decel_ms2"], notice["speed_kmh"]) == (118.0, 46.0)
    assert notice["vehicle"] == {"vin": gw.vin, "device": gw.device}
    assert notice["record_jws"] == emergency
    opened = json.loads(open_profile(notice["profile"]["sealed"], RESPONDER,
                                     reg.sealing[RESPONDER]))  # fmt: skip
    assert opened == PROFILE
    # the reference receiver checks the gateway's JWS and opens it too
    checker = Checker(RESPONDER, reg.key, reg.sealing[RESPONDER])
    payload = next(p.payload for _i, p in reg.store.fanout_pending(1000)
                   if p.topic == f"msp/v1/responder/{RESPONDER}/emergency")
    message = checker.feed(f"msp/v1/responder/{RESPONDER}/emergency", payload)
    assert message is not None and message.check == "verified"
    assert any("AB-" in line for line in message.lines)
    assert reg.messages("responder", OTHER_RESPONDER) == []  # not named by the consent
    # the backlog arrives: the chain goes on and nobody gets the crash twice
    reg.send(gw, *backlog)
    assert reg.store.chain_head(gw.device).seq == 7
    assert len(reg.messages("responder", RESPONDER)) == 1
    person = reg.store.persons()[0].id
    log = [r.exchange for r in reg.store.exchanges(person) if r.exchange.recipient == RESPONDER]
    assert [(e.kind, e.record, e.categories) for e in log] == [
        ("emergency", f"{gw.device}/7", ("emergency",))]


def test_no_crash_no_notice(db_url: str, card_issuer: CardIssuer,  # noqa: F811
                            device_ca: DeviceCa) -> None:
    reg, gw, _card = _ready(db_url, card_issuer, device_ca)
    reg.send(gw, gw.sign(trip(5.0), "trip", "s-1"),
             gw.sign(event("harsh_braking", "critical", T0 + 9), "event", "s-1"))
    assert reg.messages("responder", RESPONDER) == []
    assert reg.emergencies.counts["profiles"] == 2


def test_the_database_never_holds_the_profile_in_the_clear(
        tmp_path: Path, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:
    db = tmp_path / "registry.db"
    reg, gw, _card = _ready(f"sqlite:///{db}", card_issuer, device_ca)
    reg.send(gw, gw.sign(crash(T0 + 10), "emergency", "s-1"))
    assert reg.store.profile(reg.store.persons()[0].id, RESPONDER) is not None
    reg.store.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in files
    for value in ("AB-", "penicillin-zq7", "warfarin-xk2", "atrial fibrillation",
                  "+81-90-5555-0142", "Sato Hanako"):
        for path in files:
            assert value.encode() not in path.read_bytes(), (value, path)
            assert value.encode("utf-16-le") not in path.read_bytes(), (value, path)


def test_a_profile_for_other_ciphertext_or_no_responder_is_refused(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    reg, gw, card = _ready(db_url, card_issuer, device_ca)
    stranger = card_issuer.card()  # a card that never logged in
    reg.send(gw, gw.sign(reg.profile_record(stranger, gw), "profile", "s-1"))
    assert reg.emergencies.counts["card_certificate_unknown"] == 1
    good = reg.profile_record(card, gw, profile={"blood_type": "O+"})
    reg.send(gw, gw.sign(replace(good, sealed=good.sealed[:-4] + "AAAA"), "profile", "s-1"))
    assert reg.emergencies.counts["profile_mismatch"] == 1
    assert reg.emergencies.counts["profiles"] == 2  # only the two of _ready
    kept = reg.store.profile(reg.store.persons()[0].id, RESPONDER)
    assert kept is not None and json.loads(open_profile(
        kept.sealed, RESPONDER, reg.sealing[RESPONDER])) == PROFILE  # fmt: skip
