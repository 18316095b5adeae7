"""Recipients of every role, emergency profiles and the registry's key in the SQLite store.

A mixin of ``SqliteStore`` (schema version 4, ``sqlite_schema._RECIPIENT_TABLES``); every
method keeps the ``Store`` promise of the same name (``cloud_sync.store.base``). Password
hashes and the signing key are secret files (``cloud_sync.secret_files``), never rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..secret_files import SecretFiles
from .base import ProfileRow, Recipient


class RecipientRows:
    """Recipients, profiles and the signing key in SQLite (mixed into ``SqliteStore``)."""

    _conn: sqlite3.Connection
    path: Path
    secret_files: SecretFiles

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                count = self._conn.execute(sql, params).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return int(count)

    def add_recipient(self, recipient: Recipient) -> None:
        """Register a recipient (not a fleet), or replace its key and password hash."""
        self.secret_files.set_recipient_password(f"{recipient.role}.{recipient.id}",
                                                 recipient.password_hash)  # fmt: skip
        self._write("INSERT INTO recipients (id, role, added_at, public_key) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key",
                    (recipient.id, recipient.role, recipient.added_at, recipient.public_key))

    def recipients(self) -> Sequence[Recipient]:
        """Every registered recipient of a role other than ``fleet``, by id."""
        hashes = self.secret_files.recipient_passwords()
        try:
            rows = self._conn.execute(
                "SELECT id, role, added_at, public_key FROM recipients ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return [Recipient(str(i), str(r), str(a), None if k is None else str(k),
                          hashes.get(f"{r}.{i}")) for i, r, a, k in rows]  # fmt: skip

    def put_profile(self, profile: ProfileRow) -> bool:
        """Keep a person's sealed profile for a responder (the newest signed wins)."""
        return self._write(
            "INSERT INTO profiles (person_id, responder, id, signed_at, sealed, statement,"
            " card_signature, card_certificate_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (person_id, responder) DO UPDATE SET id = excluded.id,"
            " signed_at = excluded.signed_at, sealed = excluded.sealed,"
            " statement = excluded.statement, card_signature = excluded.card_signature,"
            " card_certificate_sha256 = excluded.card_certificate_sha256"
            " WHERE excluded.signed_at > profiles.signed_at",
            (profile.person_id, profile.responder, profile.id, profile.signed_at,
             profile.sealed, profile.statement, profile.card_signature,
             profile.card_certificate_sha256),
        ) > 0  # fmt: skip

    def profile(self, person_id: str, responder: str) -> ProfileRow | None:
        """The person's sealed profile for ``responder``, if any."""
        try:
            row = self._conn.execute(
                "SELECT id, person_id, responder, signed_at, sealed, statement, card_signature,"
                " card_certificate_sha256 FROM profiles WHERE person_id = ? AND responder = ?",
                (person_id, responder)).fetchone()  # fmt: skip
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return None if row is None else ProfileRow(*(str(v) for v in row))

    def registry_key_pem(self) -> bytes:
        """The registry's signing key (PEM), made on first use (``SecretFiles.registry_key``)."""
        return self.secret_files.registry_key()
