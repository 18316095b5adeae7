"""Which store a ``--db`` value names, and opening it: the one opener every command uses.

``--db`` is a URL or a path (docs/store.md):

* ``registry.db``, ``/var/lib/msp-registry/registry.db`` or ``sqlite:///abs/path.db`` /
  ``sqlite:///rel/path.db``… : the embedded SQLite file (the default); its secret files are
  in ``registry.secrets/`` beside it unless ``secrets_dir`` says otherwise;
* ``postgresql://user@host:port/dbname`` (or ``postgres://``; any libpq URL parameter, e.g.
  ``?sslmode=verify-full``): a PostgreSQL database. Its secret files (pseudonym key, fleet
  password hashes, 0600) live in ``secrets_dir`` (``--secrets-dir``), required: the database
  holds none, and every worker of one registry needs the same pseudonym key.

psycopg is imported only when a PostgreSQL URL is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreError
from .base import Store

_PG_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed ``--db``: the back end and, for SQLite, the file (``url`` is as given)."""

    kind: Literal["sqlite", "postgresql"]
    url: str
    path: Path | None = None

    @property
    def display(self) -> str:
        """The location for messages (a PostgreSQL URL without its password)."""
        if self.kind == "sqlite":
            return str(self.path)
        return redact(self.url)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname or ''}" + (
        f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_store_url(db: str | Path) -> StoreUrl:
    """Parse a ``--db`` value; raises ``StoreError`` for a scheme the registry does not know."""
    if isinstance(db, Path):
        return StoreUrl("sqlite", str(db), db)
    if db.startswith(_PG_SCHEMES):
        return StoreUrl("postgresql", db)
    if db.startswith("sqlite://"):
        rest = db[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"{db}: a SQLite URL is sqlite:///PATH (three slashes)")
        rest = rest[1:]  # sqlite:///rel.db → rel.db, sqlite:////abs.db → /abs.db
        return StoreUrl("sqlite", db, Path(rest))
    if "://" in db:
        raise StoreError(f"{db.split('://')[0]}://: unknown database scheme (give a path,"
                         " sqlite:///PATH or postgresql://...)")  # fmt: skip
    return StoreUrl("sqlite", db, Path(db))


def store_exists(db: str | Path) -> bool:
    """Whether ``db`` names a store that may already hold a registry (a SQLite file that
    exists; a PostgreSQL URL always may)."""
    parsed = parse_store_url(db)
    return parsed.path is None or parsed.path.exists()


def open_store(db: str | Path, *, secrets_dir: Path | None = None,
               environ: Mapping[str, str] | None = None, migrate: bool = False,
               must_exist: bool = False) -> Store:  # fmt: skip
    """Open the store ``db`` names (see the module docstring). A new (empty) database gets
    the current schema; an older one is migrated only with ``migrate`` (``msp-registry
    migrate``), else ``SchemaVersionError`` names both versions. ``must_exist``: a SQLite file
    that is not there is an error instead of a new registry."""
    parsed = parse_store_url(db)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        if must_exist and not parsed.path.exists():
            raise StoreError(f"{parsed.path}: no registry database")
        from .sqlite import SqliteStore  # noqa: PLC0415 - open only the back end named

        return SqliteStore(parsed.path, environ, migrate=migrate, secrets=secrets_dir)
    if secrets_dir is None:
        raise StoreError(f"{parsed.display}: a PostgreSQL registry keeps its secret files"
                         " (pseudonym key, fleet passwords) outside the database: give"
                         " --secrets-dir DIR (or MSP_REGISTRY_SECRETS_DIR)")  # fmt: skip
    try:
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg only when asked for
    except ImportError as exc:
        raise StoreError(f"{parsed.display}: PostgreSQL needs psycopg: pip install"
                         f" 'msp-gateway[postgres]' ({exc})") from None  # fmt: skip
    return PostgresStore(parsed.url, secrets_dir, environ, migrate=migrate)


def migrate_store(db: str | Path, *, secrets_dir: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[int, int]:  # fmt: skip
    """Bring the store ``db`` names to this code's schema (``msp-registry migrate``); returns
    the versions before and after (0 before: the database was empty and is now created)."""
    store = open_store(db, secrets_dir=secrets_dir, environ=environ, migrate=True)
    try:
        before = int(getattr(store, "migrated_from", 0))
        after = int(getattr(store, "schema_version", 0))
    finally:
        store.close()
    return before, after
