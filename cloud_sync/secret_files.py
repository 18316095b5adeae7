"""The registry's secrets, kept in files of mode 0600 beside its database, never inside it.

The database is meant to be browsed (Datasette, the sqlite3 shell) and copied for analysis, so
it holds nothing that would let its reader impersonate anyone. Beside ``registry.db`` lives
the directory ``registry.secrets/`` (0700) with:

* ``pseudonym.key`` — 32 random bytes, hex: the HMAC key of the per-fleet pseudonyms
  (``cloud_sync.republish.fleet_pseudonym``). Made together with a new database; a database
  whose key is missing is refused (a new key would silently rename every person for every
  fleet). Under systemd it may come as a credential instead (``LoadCredential=pseudonym.key:…``):
  a ``pseudonym.key`` in ``$CREDENTIALS_DIRECTORY`` wins over the file.
* ``fleet-passwords`` — one ``FLEET:HASH`` line per fleet operator that logs in with a
  password (mosquitto's ``$7$`` PBKDF2-SHA512 hash, never the password);
  ``recipient-passwords`` the same for recipients of the other roles (``ROLE.NAME:HASH``).
* ``registry.key`` — the registry's own Ed25519 signing key (PKCS#8 PEM): everything the
  registry makes for a recipient is a JWS under it (``cloud_sync.recipients.signing``).

A PostgreSQL registry keeps the same files in the directory its configuration names
(``--secrets-dir``, docs/store.md), never in the database.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from .errors import StoreError
from .pki import write_private

log = logging.getLogger(__name__)

PSEUDONYM_KEY = "pseudonym.key"
FLEET_PASSWORDS = "fleet-passwords"
RECIPIENT_PASSWORDS = "recipient-passwords"
REGISTRY_KEY = "registry.key"


def secrets_dir(db: Path) -> Path:
    """The secrets directory of the database ``db`` (``registry.db`` → ``registry.secrets``)."""
    return db.with_name(db.stem + ".secrets")


class SecretFiles:
    """The secret files of one registry database (see the module docstring)."""

    def __init__(self, db: Path | None, environ: Mapping[str, str] | None = None, *,
                 directory: Path | None = None) -> None:  # fmt: skip
        """The files beside the SQLite database ``db``, or in ``directory`` if given (a
        PostgreSQL registry has no file to sit beside: ``cloud_sync.store.open``)."""
        if directory is None:
            if db is None:
                raise StoreError("no directory for the registry's secret files")
            directory = secrets_dir(db)
        self.directory = directory
        env = os.environ if environ is None else environ
        creds = env.get("CREDENTIALS_DIRECTORY")
        self._credentials = Path(creds) if creds else None

    def _make_dir(self) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)

    @property
    def pseudonym_path(self) -> Path:
        """Where the pseudonym key is read from: the systemd credential if given, else the file."""
        if self._credentials is not None and (self._credentials / PSEUDONYM_KEY).exists():
            return self._credentials / PSEUDONYM_KEY
        return self.directory / PSEUDONYM_KEY

    def create_pseudonym_key(self, value: bytes | None = None) -> None:
        """Write the pseudonym key ``value`` (a migrated one) or, with ``None``, 32 fresh random
        bytes unless a key exists (kept: the same persons keep their pseudonyms). Raises
        ``StoreError`` if a different key than ``value`` exists (it would change pseudonyms)."""
        path = self.pseudonym_path
        if path.exists():
            if value is not None and self.pseudonym_key() != value:
                raise StoreError(f"{path}: a different pseudonym key is already there; move it"
                                 " away or restore the one that belongs to this database")
            return
        value = secrets.token_bytes(32) if value is None else value
        self._make_dir()
        write_private(self.directory / PSEUDONYM_KEY, value.hex().encode() + b"\n")
        log.info("wrote the pseudonym key to %s", self.directory / PSEUDONYM_KEY)

    def pseudonym_key(self) -> bytes:
        """The pseudonym key; raises ``StoreError`` naming the file if it is missing or bad."""
        path = self.pseudonym_path
        try:
            text = path.read_text("ascii").strip()
            key = bytes.fromhex(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{path}: cannot read the registry's pseudonym key ({exc}); it is"
                             " made with the database and must be kept with it") from None
        if len(key) < 16:
            raise StoreError(f"{path}: pseudonym key of {len(key)} bytes, need at least 16")
        return key

    def registry_key(self) -> bytes:
        """The registry's signing key (PEM), made (0600) on first use; raises ``StoreError``
        naming the file if it cannot be read or written."""
        path = self.directory / REGISTRY_KEY
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the registry's signing key: {exc}") from None
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())  # fmt: skip
        try:
            self._make_dir()
            write_private(path, pem)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write the registry's signing key: {exc}") from None
        log.info("made the registry's signing key %s", path)
        return pem

    def recipient_passwords(self) -> dict[str, str]:
        """Password hashes by broker user (``ROLE.NAME``) of non-fleet recipients."""
        return self.fleet_passwords(RECIPIENT_PASSWORDS)

    def set_recipient_password(self, user: str, hashed: str | None) -> None:
        """Record (or, with ``None``, forget) a recipient's password hash."""
        self.set_fleet_password(user, hashed, RECIPIENT_PASSWORDS)

    def fleet_passwords(self, name: str = FLEET_PASSWORDS) -> dict[str, str]:
        """Password hashes by fleet (empty if no fleet has a password); ``name``: another
        file of the same form."""
        path = self.directory / name
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: cannot read fleet password hashes: {exc}") from None
        hashes: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            fleet, sep, hashed = line.partition(":")
            if not sep or not fleet or not hashed.startswith("$"):
                raise StoreError(f"{path}, line {number}: expected FLEET:$7$...")
            hashes[fleet] = hashed
        return hashes

    def set_fleet_password(self, fleet: str, hashed: str | None,
                           name: str = FLEET_PASSWORDS) -> None:  # fmt: skip
        """Record (or, with ``None``, forget) ``fleet``'s password hash (in file ``name``)."""
        hashes = self.fleet_passwords(name)
        if hashed is None:
            if fleet not in hashes:
                return
            del hashes[fleet]
        else:
            hashes[fleet] = hashed
        self._make_dir()
        text = "".join(f"{f}:{h}\n" for f, h in sorted(hashes.items()))
        write_private(self.directory / name, text.encode("utf-8"))
