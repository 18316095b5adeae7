"""The registry database as a file others open: created 0600, no secret inside (the pseudonym
key and fleet password hashes live in 0600 files beside it, or come as systemd credentials),
foreign keys declared and honoured, JSON as UTF-8 text, a ``person_scores`` view; and the
migration of a database written by the previous layout (``tests/data/registry-v1.sql``). What
every back end does is in ``test_contract.py``; this is what only the SQLite file does."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from cloud_sync import cli
from cloud_sync.errors import StoreError
from cloud_sync.ingest import Ingestor
from cloud_sync.mosquitto import password_hash
from cloud_sync.republish import Republisher
from cloud_sync.secret_files import SecretFiles, secrets_dir
from cloud_sync.store import Fleet
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.store.sqlite_schema import SCHEMA_VERSION
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, event, trip

V1_DUMP = Path(__file__).parents[2] / "data" / "registry-v1.sql"
V1_PSEUDONYM_KEY = bytes.fromhex("C400B22C050EF0763C96939F3B115F22B2DE8C4E3132D3BA3F016DDC93DF3F2C")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def every_byte(db: Path) -> bytes:
    """The database file and its write-ahead log, as a reader of the directory sees them."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_new_database_is_private_and_keeps_no_secret(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    store = SqliteStore(db)
    try:
        store.add_fleet(Fleet("acme", "2026-11-20T00:00:00Z", password_hash("pw", b"0" * 12)))
        key = store.pseudonym_secret()
        tables = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master")}
        fleet_columns = {r[1] for r in store._conn.execute("PRAGMA table_info(fleets)")}
        assert store.fleets()[0].password_hash == password_hash("pw", b"0" * 12)
        assert mode(db) == 0o600 and mode(db.with_name("registry.db-wal")) == 0o600
    finally:
        store.close()
    assert "secrets" not in tables and fleet_columns == {"id", "added_at"}
    secrets = secrets_dir(db)
    assert secrets == tmp_path / "registry.secrets" and mode(secrets) == 0o700
    assert mode(secrets / "pseudonym.key") == 0o600 and mode(secrets / "fleet-passwords") == 0o600
    assert len(key) == 32 and (secrets / "pseudonym.key").read_text().strip() == key.hex()
    assert (secrets / "fleet-passwords").read_text().startswith("acme:$7$")
    content = every_byte(db)
    assert key not in content and key.hex().encode() not in content
    assert b"$7$" not in content
    reopened = SqliteStore(db)  # the same key, read back
    try:
        assert reopened.pseudonym_secret() == key
    finally:
        reopened.close()


def test_a_missing_key_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    SqliteStore(db).close()
    (secrets_dir(db) / "pseudonym.key").unlink()
    store = SqliteStore(db)  # the browsing commands still work without it
    try:
        with pytest.raises(StoreError, match=r"pseudonym\.key"):
            store.pseudonym_secret()
    finally:
        store.close()
    assert not (secrets_dir(db) / "pseudonym.key").exists()


def test_a_systemd_credential_wins_over_the_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pseudonym.key").write_text("ab" * 32 + "\n")
    store = SqliteStore(tmp_path / "registry.db", {"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        assert store.pseudonym_secret() == bytes.fromhex("ab" * 32)
    finally:
        store.close()
    assert not (secrets_dir(tmp_path / "registry.db") / "pseudonym.key").exists()


def _filled(tmp_path: Path, device_ca, card_issuer: CardIssuer) -> SqliteStore:
    store = SqliteStore(tmp_path / "registry.db")
    gw = Gateway("gw-1", "JT1234567")
    store.enroll(gw.device_row(device_ca))
    card = card_issuer.card()
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
    tokens = [gw.sign(card.session_start(gw, "s-1"), "session.start", "s-1"),
              gw.sign(trip(25.0, 2.0), "trip", "s-1"), gw.sign(event(), "event", "s-1"),
              gw.sign(trip(8.0), "trip")]  # fmt: skip
    ingestor.process([(rec_topic("gw-1"), t.encode()) for t in tokens])
    return store


def test_foreign_keys_are_declared_and_hold(tmp_path: Path, device_ca, card_issuer) -> None:
    store = _filled(tmp_path, device_ca, card_issuer)
    try:
        conn = store._conn
        declared = {(t, str(r[3]), str(r[2])) for t in ("devices", "records", "quarantine",
                    "sessions", "trips", "events", "card_certificates", "chain")
                    for r in conn.execute(f"PRAGMA foreign_key_list({t})")}  # fmt: skip
        assert ("records", "device", "devices") in declared
        assert ("trips", "person_id", "persons") in declared
        assert ("sessions", "vin", "vehicles") in declared
        assert ("devices", "vin", "vehicles") in declared
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.counts()["trips"] == 2
    finally:
        store.close()


def test_fleet_copies_are_text_columns(tmp_path: Path, device_ca, card_issuer) -> None:
    store = _filled(tmp_path, device_ca, card_issuer)
    try:
        conn = store._conn
        # (the JSON columns and the person_scores view: test_contract.py, both back ends)
        types = conn.execute("SELECT DISTINCT typeof(payload) FROM fanout").fetchall()
        assert types == [("text",)]
    finally:
        store.close()


def test_a_version_1_database_is_migrated(tmp_path: Path, capsys) -> None:
    db = tmp_path / "registry.db"
    legacy = sqlite3.connect(db)
    legacy.executescript(V1_DUMP.read_text())
    legacy.close()
    db.chmod(0o644)  # as the previous version created it outside systemd
    before = sqlite3.connect(db).execute("SELECT count(*) FROM records").fetchone()[0]
    store = SqliteStore(db)
    try:
        conn = store._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "secrets" not in tables and {"quarantine", "person_scores"} <= tables
        assert store.pseudonym_secret() == V1_PSEUDONYM_KEY  # the same pseudonyms as before
        assert store.fleets()[0].password_hash == password_hash("hunter2", b"saltsaltsalt")
        assert store.counts()["records"] == before == 4 and len(store.persons()) == 1
        assert conn.execute("SELECT licence_categories FROM sessions").fetchone() == ('["普通"]',)
        assert conn.execute("PRAGMA foreign_key_list(records)").fetchall() != []
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        types = {r[0] for r in conn.execute("SELECT typeof(payload) FROM fanout")}
        assert types == {"text"}
        assert conn.execute("SELECT score FROM person_scores").fetchone()[0] is not None
    finally:
        store.close()
    assert mode(db) == 0o600
    assert V1_PSEUDONYM_KEY not in every_byte(db) and b"saltsaltsalt" not in every_byte(db)
    files = SecretFiles(db)
    assert mode(files.directory / "pseudonym.key") == 0o600
    assert cli.main(["audit", "--db", str(db), "--ca-dir", str(tmp_path / "ca")]) == 0
    assert "gw-old" in capsys.readouterr().out
    SqliteStore(db).close()  # a second open has nothing left to migrate


def test_migration_refuses_to_replace_a_different_key(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    legacy = sqlite3.connect(db)
    legacy.executescript(V1_DUMP.read_text())
    legacy.close()
    SecretFiles(db).create_pseudonym_key(b"\x01" * 32)  # someone else's key already there
    with pytest.raises(StoreError, match="different pseudonym key"):
        SqliteStore(db)
    check = sqlite3.connect(db)  # nothing was changed: the old layout, its secret still in it
    assert check.execute("SELECT count(*) FROM secrets").fetchone() == (1,)
    check.close()


def test_an_empty_file_becomes_a_private_database_with_its_key(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    db.touch(mode=0o644)
    store = SqliteStore(db)
    try:
        assert len(store.pseudonym_secret()) == 32 and store.counts()["records"] == 0
    finally:
        store.close()
    assert mode(db) == 0o600


def test_an_old_file_is_refused_by_the_commands_until_migrated(tmp_path: Path, capsys) -> None:
    db = tmp_path / "registry.db"
    legacy = sqlite3.connect(db)
    legacy.executescript(V1_DUMP.read_text())
    legacy.close()
    assert cli.main(["audit", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "database schema 1 is older than this msp-registry (2)" in err
    assert f"run msp-registry migrate --db {db}" in err
    assert cli.main(["migrate", "--db", f"sqlite:///{db}"]) == 0
    assert "migrated from schema version 1 to 2" in capsys.readouterr().out
    assert cli.main(["audit", "--db", str(db)]) == 0
