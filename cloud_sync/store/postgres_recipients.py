"""Recipients of every role, emergency profiles and the registry's key in the PostgreSQL store:
a mixin of ``PostgresStore`` (schema version 4, ``postgres_schema._RECIPIENT_TABLES``), the same
behaviour as ``sqlite_recipients.RecipientRows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..secret_files import SecretFiles
from .base import ProfileRow, Recipient


class PgRecipientRows:
    """Recipients, profiles and the signing key on PostgreSQL (mixed into ``PostgresStore``)."""

    secret_files: SecretFiles

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def add_recipient(self, recipient: Recipient) -> None:
        """As ``RecipientRows.add_recipient``."""
        self.secret_files.set_recipient_password(f"{recipient.role}.{recipient.id}",
                                                 recipient.password_hash)  # fmt: skip
        self._run("INSERT INTO recipients (id, role, added_at, public_key) VALUES (%s, %s, %s, %s)"
                  " ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key",
                  (recipient.id, recipient.role, recipient.added_at, recipient.public_key))

    def recipients(self) -> Sequence[Recipient]:
        """As ``RecipientRows.recipients``."""
        hashes = self.secret_files.recipient_passwords()
        rows = self._rows("SELECT id, role, added_at, public_key FROM recipients ORDER BY id")
        return [Recipient(str(i), str(r), str(a), None if k is None else str(k),
                          hashes.get(f"{r}.{i}")) for i, r, a, k in rows]  # fmt: skip

    def put_profile(self, profile: ProfileRow) -> bool:
        """As ``RecipientRows.put_profile``."""
        return self._run(
            "INSERT INTO profiles (person_id, responder, id, signed_at, sealed, statement,"
            " card_signature, card_certificate_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
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
        """As ``RecipientRows.profile``."""
        rows = self._rows(
            "SELECT id, person_id, responder, signed_at, sealed, statement, card_signature,"
            " card_certificate_sha256 FROM profiles WHERE person_id = %s AND responder = %s",
            (person_id, responder))  # fmt: skip
        return ProfileRow(*(str(v) for v in rows[0])) if rows else None

    def registry_key_pem(self) -> bytes:
        """As ``RecipientRows.registry_key_pem``."""
        return self.secret_files.registry_key()
