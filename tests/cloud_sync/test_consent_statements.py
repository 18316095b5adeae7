"""Card-signed consent statements at the registry (real SQLite, real RSA card keys, the real
ingestor, republisher and early hook): applied at once, ahead of the chain; a revocation that
arrives late withdraws what is still queued and withholds what comes after; refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cloud_sync.consents import PersonActs
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.republish import Republisher, fleet_pseudonym
from cloud_sync.store import Exchange, Withheld
from cloud_sync.store.open import open_store
from msp_protocol import bodies
from msp_protocol.consent import statement_bytes
from msp_protocol.jws import b64url
from msp_protocol.records import format_ts
from msp_protocol.topics import fleet_score_topic, rec_topic
from tests.pg_server import PgServer
from tests.sync_kit import T0, Card, CardIssuer, Gateway, trip

UNTIL = "2027-06-01T00:00:00.000Z"
FLEET = "acme"


def statement_body(card: Card, gw: Gateway, action: str, categories: tuple[str, ...],
                   at: float, *, recipient: str = FLEET, until: str | None = None,
                   device: str | None = None) -> bodies.CardConsent:  # fmt: skip
    """A consent record body signed by ``card``'s key, as the card signs it."""
    st = bodies.ConsentStatement(action, recipient, categories, until, device or gw.device,
                                 gw.vin, format_ts(at), b64url(hashlib.sha256(
                                     f"{action}{at}".encode()).digest()))  # fmt: skip
    signature = card.key.sign(statement_bytes(st), padding.PKCS1v15(), hashes.SHA256())
    return bodies.CardConsent(st, base64.b64encode(signature).decode(),
                              b64url(hashlib.sha256(card.der).digest()))


def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new registry database of the back end ``request.param`` names (PostgreSQL: on the
    session's server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new registry database of each back end."""
    return new_db(request, tmp_path)


class Registry:
    """The registry's pipeline in one process: store, early hook, ingestor, republisher."""

    def __init__(self, url: str, issuer: CardIssuer, ca: DeviceCa, *gateways: Gateway) -> None:
        secrets = Path(tempfile.mkdtemp()) / "secrets" if url.startswith("postgresql") else None
        self.store = open_store(url, secrets_dir=secrets)
        for gw in gateways:
            self.store.enroll(gw.device_row(ca, FLEET))
        self.acts = PersonActs(self.store, issuer.anchors())
        self.ingestor = Ingestor(self.store, issuer.anchors(), max_waiting=64,
                                 fanout=Republisher(self.store).fanout, on_early=self.acts.early)

    def send(self, gw: Gateway, *tokens: str) -> None:
        self.ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])

    def queued(self) -> list[tuple[str, bytes]]:
        return [(p.topic, p.payload) for _i, p in self.store.fanout_pending(1000)]

    def queued_trips(self) -> set[int]:
        return {json.loads(p)["seq"] for t, p in self.queued() if t.endswith("/trip")}


@pytest.fixture
def two_gateways() -> tuple[Gateway, Gateway]:
    return Gateway("gw-a", "JTAAA000001"), Gateway("gw-b", "JTBBB000001")


def test_a_late_revocation_withdraws_queued_copies_and_withholds_later_records(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a, b)
    card = card_issuer.card()
    consent = bodies.Consent(FLEET, ("driving", "score"), UNTIL)
    reg.send(a, a.sign(card.session_start(a, "s-a", consents=(consent,)), "session.start", "s-a"))
    reg.send(b, b.sign(card.session_start(b, "s-b", consents=(consent,)), "session.start", "s-b"))
    # gateway b's trips arrive first: one before the revocation's time, one after it
    before, after = trip(day=1), trip(day=3)
    revoked_at = T0 + 2 * 86400
    reg.send(b, b.sign(before, "trip", "s-b"), b.sign(after, "trip", "s-b"))
    assert reg.queued_trips() == {2, 3}  # committed, not yet taken by the broker
    # gateway a was offline: its revocation (signed between the two trips) arrives now
    reg.send(a, a.sign(statement_body(card, a, "revoke", (), revoked_at), "consent"))
    assert reg.queued_trips() == {2}  # the copy of data after the revocation is withdrawn
    person = reg.store.persons()[0].id
    topic = fleet_score_topic(FLEET, fleet_pseudonym(reg.store.pseudonym_secret(), FLEET,
                                                     person))  # fmt: skip
    assert reg.queued()[-1] == (topic, b"")  # the retained score is withdrawn
    status = {(r.exchange.kind, r.exchange.record): r.status for r in reg.store.exchanges(person)}
    assert status == {("session.start", "gw-b/1"): "queued", ("trip", "gw-b/2"): "queued",
                      ("score", "gw-b/2"): "withdrawn", ("trip", "gw-b/3"): "withdrawn",
                      ("score", "gw-b/3"): "withdrawn", ("session.start", "gw-a/1"): "queued"}
    # later records it covers are withheld; a late one from before it still flows
    reg.send(b, b.sign(trip(day=4), "trip", "s-b"), b.sign(trip(day=0), "trip", "s-b"))
    assert reg.queued_trips() == {2, 5}
    assert reg.store.withheld()[Withheld(FLEET, "trip", "revoked")] == 1
    # and no score goes out again: the revocation stands for the value shown now
    assert not any(t == topic and p for t, p in reg.queued()[-3:])


def test_a_consent_applies_before_the_records_ahead_of_it_arrive(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, _b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a)
    card = card_issuer.card()
    start = a.sign(card.session_start(a, "s-a", consents=()), "session.start", "s-a")
    reg.send(a, start)
    person = reg.store.persons()[0].id
    backlog = [a.sign(trip(day=i), "trip", "s-a") for i in range(3)]
    grant = a.sign(statement_body(card, a, "grant", ("driving",), T0 - 86400, until=UNTIL),
                   "consent")  # fmt: skip
    reg.send(a, grant)  # ahead of the backlog: it waits for seqs 2..4 in the chain, but...
    assert reg.store.chain_head(a.device).seq == 1
    (applied,) = reg.store.consent_statements(person)  # ... is applied at once
    assert applied.statement.action == "grant" and applied.seq == 5
    reg.send(a, *backlog)  # the backlog flows under the grant, which covers it
    assert reg.store.chain_head(a.device).seq == 5
    assert reg.queued_trips() == {2, 3, 4}
    refs = {r.exchange.consent for r in reg.store.exchanges(person) if r.exchange.kind == "trip"}
    assert refs == {f"consent:{applied.id}"}
    assert len(reg.store.consent_statements(person)) == 1  # its turn in the chain: no twin
    reg.send(a, grant)  # a re-send changes nothing
    assert reg.store.rejections()["duplicate"] == 1


def test_a_grant_after_a_revocation_lets_data_flow_again(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, _b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a)
    card = card_issuer.card()
    consent = bodies.Consent(FLEET, ("driving",), UNTIL)
    reg.send(a, a.sign(card.session_start(a, "s-a", consents=(consent,)), "session.start", "s-a"))
    reg.send(a, a.sign(statement_body(card, a, "revoke", ("driving",), T0 + 86400), "consent"),
             a.sign(statement_body(card, a, "grant", ("driving",), T0 + 3 * 86400,
                                   until=UNTIL), "consent"))  # fmt: skip
    reg.send(a, *[a.sign(trip(day=d), "trip", "s-a") for d in (0, 2, 4)])
    # day 0: before the revocation (login consent); day 2: revoked; day 4: the new grant
    assert reg.queued_trips() == {4, 6}
    assert reg.store.withheld()[Withheld(FLEET, "trip", "revoked")] == 1


def test_consents_the_registry_cannot_trust_are_refused_and_counted(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, _b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a)
    card, stranger = card_issuer.card(), card_issuer.card()
    reg.send(a, a.sign(card.session_start(a, "s-a", consents=()), "session.start", "s-a"))
    forged = statement_body(card, a, "grant", ("driving",), T0, until=UNTIL)
    forged = bodies.CardConsent(forged.statement, statement_body(
        stranger, a, "grant", ("driving",), T0, until=UNTIL).card_signature,
        forged.card_certificate_sha256)  # another key's signature  # fmt: skip
    reg.send(a,
             a.sign(statement_body(stranger, a, "grant", ("driving",), T0, until=UNTIL),
                    "consent"),  # a card that never logged in
             a.sign(forged, "consent"),
             a.sign(statement_body(card, a, "grant", ("driving",), T0, until=UNTIL,
                                   recipient="nobody"), "consent"),
             a.sign(statement_body(card, a, "grant", ("driving",), T0, until=UNTIL,
                                   device="gw-z"), "consent"))  # fmt: skip
    assert reg.store.consent_statements(reg.store.persons()[0].id) == []
    rejections = reg.store.rejections()
    assert {k: rejections[k] for k in ("card_certificate_unknown", "card_signature",
                                       "unknown_recipient", "statement_mismatch")} == {
        "card_certificate_unknown": 1, "card_signature": 1, "unknown_recipient": 1,
        "statement_mismatch": 1}  # fmt: skip
    assert reg.store.chain_head(a.device).seq == 5  # the records still join the chain
    assert reg.acts.refused == {"card_certificate_unknown": 1, "card_signature": 1,
                                "unknown_recipient": 1, "statement_mismatch": 1}


def test_a_login_consent_to_an_unknown_recipient_is_counted_not_silent(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway], caplog: pytest.LogCaptureFixture,
) -> None:
    a, _b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a)
    card = card_issuer.card()
    wrong = bodies.Consent("acme-corp", ("driving",), UNTIL)  # the fleet is "acme"
    reg.send(a, a.sign(card.session_start(a, "s-a", consents=(wrong,)), "session.start", "s-a"))
    assert reg.store.rejections()["consent_unknown_recipient"] == 1
    assert "unknown recipient(s) acme-corp (known: acme, public)" in caplog.text


def test_data_shown_outside_a_publication_is_logged_as_shown(
    db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa,
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    a, _b = two_gateways
    reg = Registry(db_url, card_issuer, device_ca, a)
    card = card_issuer.card()
    consent = bodies.Consent(FLEET, ("driving",), UNTIL)
    reg.send(a, a.sign(card.session_start(a, "s-a", consents=(consent,)), "session.start", "s-a"))
    person = reg.store.persons()[0].id
    queued = len(reg.store.exchanges(person))
    shown = Exchange(person, FLEET, "trip", "gw-a/2", ("driving",), format_ts(T0 + 60),
                     "session:s-a")  # fmt: skip
    assert reg.store.log_exchanges([shown, shown], status="shown") == 2
    rows = reg.store.exchanges(person)
    assert len(rows) == queued + 2
    assert [(r.exchange, r.status) for r in rows[-2:]] == [(shown, "shown")] * 2
    assert reg.store.log_exchanges([], status="shown") == 0
