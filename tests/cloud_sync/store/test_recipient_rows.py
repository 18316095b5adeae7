"""The store additions of issue 15 on both back ends: recipients of every role (password
hashes in the secret files), sealed emergency profiles (the newest signed wins, erased with
the person), the registry's signing key (one per registry, outside the database)."""

from __future__ import annotations

from pathlib import Path

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import ProfileRow, Recipient, Store
from cloud_sync.store.open import open_store
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway


def a_person(store: Store, issuer: CardIssuer, ca: DeviceCa) -> str:
    """A person the store knows (a verified session start of a new card)."""
    gw = Gateway("gw-rows", "JTDKB20U793100009")
    store.enroll(gw.device_row(ca))
    token = gw.sign(issuer.card().session_start(gw, "s-rows", consents=()), "session.start",
                    "s-rows")  # fmt: skip
    Ingestor(store, issuer.anchors()).ingest([(rec_topic(gw.device), token.encode())])
    return store.persons()[0].id


def test_recipients_are_kept_and_replaced(store: Store, store_url: str, secrets: Path) -> None:
    store.add_recipient(Recipient("amb", "responder", "2026-11-01T00:00:00Z", "k1"))
    store.add_recipient(Recipient("fam", "guardian", "2026-11-01T00:00:00Z", None, "$7$101$a$b"))
    store.add_recipient(Recipient("amb", "responder", "2026-11-02T00:00:00Z", "k2"))
    again = open_store(store_url, secrets_dir=secrets)
    try:
        assert again.recipients() == [
            Recipient("amb", "responder", "2026-11-01T00:00:00Z", "k2"),
            Recipient("fam", "guardian", "2026-11-01T00:00:00Z", None, "$7$101$a$b")]
    finally:
        again.close()
    assert "guardian.fam:$7$101$a$b" in (secrets / "recipient-passwords").read_text()


def test_the_newest_profile_wins_and_erasure_takes_it(
        store: Store, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:
    person = a_person(store, card_issuer, device_ca)

    def profile(signed_at: str, sealed: str) -> ProfileRow:
        return ProfileRow(f"id-{signed_at}", person, "amb", signed_at, sealed, "{}", "sig", "h")

    assert store.profile(person, "amb") is None
    assert store.put_profile(profile("2026-11-02T00:00:00.000Z", "new"))
    assert not store.put_profile(profile("2026-11-01T00:00:00.000Z", "old"))  # older: kept out
    kept = store.profile(person, "amb")
    assert kept is not None and kept.sealed == "new"
    assert store.put_profile(profile("2026-11-03T00:00:00.000Z", "newer"))
    kept = store.profile(person, "amb")
    assert kept is not None and kept.sealed == "newer"
    assert store.profile(person, "other") is None
    done = store.erase_person(person)
    assert done["profiles"] == 1 and store.profile(person, "amb") is None


def test_one_signing_key_per_registry(store: Store, store_url: str, secrets: Path) -> None:
    key = store.registry_key_pem()
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = open_store(store_url, secrets_dir=secrets)
    try:
        assert again.registry_key_pem() == key
    finally:
        again.close()
    assert (secrets / "registry.key").read_bytes() == key
