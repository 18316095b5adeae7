"""Schema versions on both back ends (a refusal naming both versions, ``msp-registry migrate``)
and backup/restore of a whole registry, verified afterwards by ``msp-registry audit``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from cloud_sync import cli
from cloud_sync.errors import SchemaVersionError, StoreError
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import Store, postgres_schema, sqlite_schema
from cloud_sync.store.open import open_store, parse_store_url
from msp_protocol.topics import rec_topic
from tests.pg_server import PgServer
from tests.sync_kit import CardIssuer, Gateway, event, trip


def set_version(url: str, version: int) -> None:
    """Pretend the database was written by another version of msp-registry."""
    parsed = parse_store_url(url)
    if parsed.path is not None:
        conn = sqlite3.connect(parsed.path)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (version,))


def code_version(backend: str) -> int:
    return sqlite_schema.SCHEMA_VERSION if backend == "sqlite" else postgres_schema.SCHEMA_VERSION


def test_a_newer_database_is_refused_naming_both_versions(store: Store, store_url: str,
                                                          secrets: Path, backend: str) -> None:
    store.close()
    code = code_version(backend)
    set_version(store_url, code + 1)
    with pytest.raises(SchemaVersionError) as info:
        open_store(store_url, secrets_dir=secrets)
    assert f"database schema {code + 1} is newer than this msp-registry ({code})" in str(info.value)
    assert (info.value.database, info.value.code) == (code + 1, code)
    with pytest.raises(SchemaVersionError):  # migrate never downgrades
        open_store(store_url, secrets_dir=secrets, migrate=True)


def test_migrate_creates_a_new_database_and_reports_the_version(store_url: str, secrets: Path,
                                                                backend: str, capsys) -> None:
    args = ["migrate", "--db", store_url, "--secrets-dir", str(secrets)]
    assert cli.main(args) == 0
    assert f"created at schema version {code_version(backend)}" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert f"already at schema version {code_version(backend)}" in capsys.readouterr().out
    assert (secrets / "pseudonym.key").exists()


def test_an_older_postgresql_database_is_refused_until_migrated(pg_server: PgServer,
                                                                tmp_path: Path, capsys) -> None:
    url = pg_server.create_database()
    open_store(url, secrets_dir=tmp_path / "s").close()
    set_version(url, 1)  # as if written by an older msp-registry
    with pytest.raises(SchemaVersionError, match=r"database schema 1 is older than this"
                       r" msp-registry \(2\): run msp-registry migrate --db postgresql://"):
        open_store(url, secrets_dir=tmp_path / "s")
    assert cli.main(["audit", "--db", url, "--secrets-dir", str(tmp_path / "s")]) == 2
    assert "run msp-registry migrate" in capsys.readouterr().err


def test_a_postgresql_store_needs_a_secrets_directory(pg_server: PgServer) -> None:
    with pytest.raises(StoreError, match="give --secrets-dir"):
        open_store(pg_server.create_database())
    with pytest.raises(StoreError, match="unknown database scheme"):
        open_store("mysql://x/y")


def _fill(store: Store, device_ca: DeviceCa, card_issuer: CardIssuer) -> list[str]:
    ingestor = Ingestor(store, card_issuer.anchors())
    tokens = []
    for device in ("gw-1", "gw-2"):
        gw = Gateway(device, f"JT{device[-1]}234567")
        store.enroll(gw.device_row(device_ca))
        mine = [gw.sign(trip(), "trip"), gw.sign(event(), "event"), gw.sign(trip(4.0), "trip")]
        ingestor.process([(rec_topic(device), t.encode()) for t in mine])
        tokens += mine
    return tokens


def test_backup_restores_into_a_fresh_database_and_every_chain_audits(
    store: Store, store_url: str, secrets: Path, backend: str, tmp_path: Path,
    device_ca: DeviceCa, card_issuer: CardIssuer, request: pytest.FixtureRequest, capsys,
) -> None:
    tokens = _fill(store, device_ca, card_issuer)
    key = store.pseudonym_secret()
    counts = dict(store.counts())
    out = tmp_path / "backup"
    assert cli.main(["backup", "--db", store_url, "--secrets-dir", str(secrets), str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == backend and manifest["counts"]["records"] == 6
    assert (out / "secrets" / "pseudonym.key").stat().st_mode & 0o077 == 0
    assert out.stat().st_mode & 0o077 == 0
    if backend == "sqlite":
        fresh = f"sqlite:///{tmp_path / 'restored' / 'registry.db'}"
        (tmp_path / "restored").mkdir()
    else:
        fresh = request.getfixturevalue("pg_server").create_database()
    fresh_secrets = tmp_path / "restored.secrets"
    restore = ["restore", "--db", fresh, "--secrets-dir", str(fresh_secrets), str(out)]
    assert cli.main(restore) == 0
    restored = open_store(fresh, secrets_dir=fresh_secrets)
    try:
        assert dict(restored.counts()) == counts
        assert restored.pseudonym_secret() == key
        assert [*restored.chain_records("gw-1"), *restored.chain_records("gw-2")] == tokens
    finally:
        restored.close()
    capsys.readouterr()
    audit = ["audit", "--db", fresh, "--secrets-dir", str(fresh_secrets),
             "--ca-dir", str(tmp_path / "ca"), "--json"]  # fmt: skip
    assert cli.main(audit) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device"], r["records"], r["verdict"]) for r in rows] == [
        ("gw-1", 3, "ok: seqs 1..3"), ("gw-2", 3, "ok: seqs 1..3")]
    assert cli.main(restore) == 2  # never over a registry
    assert "restore into a new" in capsys.readouterr().err
