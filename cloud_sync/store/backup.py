"""Backup and restore of a whole registry: its database and its secret files.

A backup is a directory (created 0700, files 0600):

* ``registry.db``: a consistent copy of a SQLite database made with SQLite's online backup
  API while workers keep writing; or ``registry.pgdump``: ``pg_dump --format=custom`` of a
  PostgreSQL database (one consistent snapshot), by the ``pg_dump`` of the server's major
  version (``/usr/lib/postgresql/N/bin``, else the one on ``PATH``);
* ``secrets/``: the pseudonym key and fleet password hashes (``cloud_sync.secret_files``):
  without the key a restored registry would rename every person for every fleet;
* ``manifest.json``: back end, schema version, when, and the row counts.

:func:`restore` writes a backup into a new, empty database of the same back end (a SQLite
file that does not exist yet; an empty PostgreSQL database) and its secret files into the
target's secrets directory, refusing to replace a different pseudonym key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreError
from ..pki import write_private
from ..secret_files import FLEET_PASSWORDS, PSEUDONYM_KEY, SecretFiles, secrets_dir
from .open import StoreUrl, open_store, parse_store_url

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SQLITE_FILE = "registry.db"
PG_FILE = "registry.pgdump"
PG_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds (its ``manifest.json``)."""

    backend: str
    schema_version: int
    created_at: str
    counts: dict[str, int]


def _secrets_of(parsed: StoreUrl, secrets: Path | None) -> Path:
    if secrets is not None:
        return secrets
    if parsed.path is None:
        raise StoreError(f"{parsed.display}: give --secrets-dir (the registry's secret files)")
    return secrets_dir(parsed.path)


def backup(db: str | Path, out: Path, *, secrets: Path | None = None) -> BackupInfo:
    """Back up the registry ``db`` names (and its secret files) into the new directory
    ``out``; returns what was written."""
    parsed = parse_store_url(db)
    store = open_store(db, secrets_dir=secrets, must_exist=True)
    try:
        counts = dict(store.counts())
        version = int(getattr(store, "schema_version", 0))
        key = store.pseudonym_secret()
    finally:
        store.close()
    try:
        out.mkdir(mode=0o700)
    except OSError as exc:
        raise StoreError(f"{out}: cannot make the backup directory: {exc}") from None
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        _sqlite_copy(parsed.path, out / SQLITE_FILE)
    else:
        _pg_dump(parsed.url, out / PG_FILE)
    files = SecretFiles(None, directory=out / "secrets")
    files.create_pseudonym_key(key)
    source = _secrets_of(parsed, secrets) / FLEET_PASSWORDS
    if source.exists():
        write_private(files.directory / FLEET_PASSWORDS, source.read_bytes())
    info = BackupInfo(parsed.kind, version, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      counts)  # fmt: skip
    write_private(out / MANIFEST, json.dumps(dataclasses.asdict(info), indent=2).encode())
    log.info("backed up %s to %s", parsed.display, out)
    return info


def read_manifest(backup_dir: Path) -> BackupInfo:
    """The manifest of a backup directory; raises ``StoreError`` naming the file."""
    path = backup_dir / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        return BackupInfo(str(data["backend"]), int(data["schema_version"]),
                          str(data["created_at"]), counts)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"{path}: not a registry backup ({exc})") from None


def restore(backup_dir: Path, db: str | Path, *, secrets: Path | None = None) -> BackupInfo:
    """Restore the backup in ``backup_dir`` into the new, empty database ``db`` names (same
    back end) and its secret files; returns the backup's manifest."""
    info = read_manifest(backup_dir)
    parsed = parse_store_url(db)
    if info.backend != parsed.kind:
        raise StoreError(f"{backup_dir}: a {info.backend} backup cannot be restored into a"
                         f" {parsed.kind} database")  # fmt: skip
    target_secrets = _secrets_of(parsed, secrets)
    key = SecretFiles(None, directory=backup_dir / "secrets").pseudonym_key()
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        if parsed.path.exists() and parsed.path.stat().st_size:
            raise StoreError(f"{parsed.path}: exists; restore into a new file")
        _sqlite_copy(backup_dir / SQLITE_FILE, parsed.path)
    else:
        _pg_restore(parsed.url, backup_dir / PG_FILE, parsed.display)
    files = SecretFiles(None, {}, directory=target_secrets)
    files.create_pseudonym_key(key)  # refuses a different key already there
    passwords = backup_dir / "secrets" / FLEET_PASSWORDS
    if passwords.exists():
        write_private(target_secrets / FLEET_PASSWORDS, passwords.read_bytes())
    store = open_store(db, secrets_dir=target_secrets)  # the schema check, and the key read
    try:
        if store.pseudonym_secret() != key:
            raise StoreError(f"{target_secrets / PSEUDONYM_KEY}: not the backup's key")
    finally:
        store.close()
    log.info("restored %s from %s", parsed.display, backup_dir)
    return info


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a SQLite database with the online backup API into ``target`` (made 0600)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(target, 0o600)
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=WAL")
            finally:
                dst.close()
        finally:
            src.close()
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"copying {source} to {target}: {exc}") from None


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its password, and the environment giving it (not on a command line)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = parts.password
        netloc = (parts.username or "") + "@" + (parts.hostname or "")
        netloc += f":{parts.port}" if parts.port else ""
        url = urlunsplit(parts._replace(netloc=netloc))
    return url, env


def pg_tool(name: str, major: int | None = None) -> str:
    """The PostgreSQL client ``name`` of major version ``major`` if installed, else the
    newest installed one, else the one on ``PATH``."""
    if major is not None and (PG_ROOT / str(major) / "bin" / name).exists():
        return str(PG_ROOT / str(major) / "bin" / name)
    installed = sorted((int(p.name) for p in PG_ROOT.glob("*")
                        if p.name.isdigit() and (p / "bin" / name).exists()), reverse=True)
    if installed:
        return str(PG_ROOT / str(installed[0]) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise StoreError(f"{name} not found: install Debian's postgresql-client")
    return found


def _server_major(url: str) -> int:
    import psycopg  # noqa: PLC0415 - the PostgreSQL path only

    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return int(conn.info.server_version) // 10000
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the registry database: {exc}") from None


def _pg_dump(url: str, target: Path) -> None:
    tool = pg_tool("pg_dump", _server_major(url))
    plain, env = _libpq(url)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    done = subprocess.run([tool, "--format=custom", "--no-owner", "--no-privileges",
                           f"--file={target}", f"--dbname={plain}"],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise StoreError(f"pg_dump failed: {done.stderr.strip()}")


def _pg_restore(url: str, source: Path, display: str) -> None:
    if not source.exists():
        raise StoreError(f"{source}: missing from the backup")
    import psycopg  # noqa: PLC0415 - the PostgreSQL path only

    from . import postgres_schema  # noqa: PLC0415

    try:
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            found = postgres_schema.version(conn)
    except psycopg.Error as exc:
        raise StoreError(f"{display}: cannot connect: {exc}") from None
    if found != 0:
        raise StoreError(f"{display}: not empty; restore into a new database (createdb)")
    tool = pg_tool("pg_restore", _server_major(url))
    plain, env = _libpq(url)
    done = subprocess.run([tool, "--no-owner", "--no-privileges", "--exit-on-error",
                           "--single-transaction", f"--dbname={plain}", str(source)],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise StoreError(f"pg_restore into {display} failed: {done.stderr.strip()}")
