"""A real PostgreSQL server for the tests: Debian's binaries, a throw-away cluster, loopback.

``PgServer`` runs ``initdb`` (``-A trust``, superuser ``postgres``) into a fresh temporary
directory and ``pg_ctl start`` on a free loopback port with its socket in that directory.
``initdb`` refuses to run as root, so as root every server command runs as the ``postgres``
system user (``runuser -u postgres --``; Debian's ``postgresql`` package makes it) on a directory
owned by it; as another user they run as that user.

* ``url(name)`` is the ``postgresql://`` URL of database ``name`` (default: ``postgres``);
  ``create_database()`` makes a fresh, empty one and returns its URL (one per test);
* ``stop()`` stops the server at once (``pg_ctl stop -m immediate``: like a crash, recovery
  runs at the next start), ``start()`` starts it again on the same port and data, so a fault
  test can take the database away mid-stream and bring it back;
* ``close()`` stops it and deletes the cluster.

The session fixture ``pg_server`` in ``tests/conftest.py`` starts one per test session.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian's ``postgresql`` package installs the server (``scripts/system-deps``).
PG_ROOT = Path("/usr/lib/postgresql")


class PgServerError(RuntimeError):
    """The test PostgreSQL server could not be set up or started."""


def pg_bin() -> Path | None:
    """The newest installed server's ``bin`` directory, ``None`` without PostgreSQL."""
    if not PG_ROOT.is_dir():
        return None
    versions = sorted((p for p in PG_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)  # fmt: skip
    return versions[-1] / "bin" if versions else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One throw-away PostgreSQL cluster on loopback (see the module docstring)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or pg_bin()
        if found is None:
            raise PgServerError("PostgreSQL is not installed: run scripts/system-deps")
        self.bin = found
        self._as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PgServerError("no 'postgres' user to run initdb as (install"
                                    " Debian's postgresql package)") from None  # fmt: skip
            self._as = ["runuser", "-u", "postgres", "--"]
        # /tmp itself, not pytest's 0700 root-owned temp tree: the postgres user must reach it
        self.root = Path(tempfile.mkdtemp(prefix="msp-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*self._as, str(self.bin / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PgServerError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
        return done

    @property
    def running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        cmd = [*self._as, str(self.bin / "pg_ctl"), "status", "-D", str(self.data)]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    def start(self) -> None:
        """Start the server (on a free port the first time, the same port after ``stop()``);
        returns once it accepts connections."""
        ports = [self.port] if self.port else [_free_port() for _ in range(3)]
        error: PgServerError | None = None
        for port in ports:
            options = (f"-h 127.0.0.1 -p {port} -k {self.root} -c fsync=off"
                       " -c full_page_writes=off -c max_connections=100")  # fmt: skip
            try:
                self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                          "-l", str(self.log), "-o", options)  # fmt: skip
            except PgServerError as exc:  # the port was taken meanwhile: try another
                error = exc
                continue
            self.port = port
            return
        assert error is not None
        raise error

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: no checkpoint, like a crash)."""
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", "immediate")

    def close(self) -> None:
        """Stop the server and delete its cluster."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server (user ``postgres``, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Make a new empty database (``name`` or the next ``test_N``) and return its URL."""
        name = name or f"test_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command with ``psql`` (as the superuser) and return its unaligned output."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", self.url(database), "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise PgServerError(f"psql {sql!r}: {done.stderr.strip()}")
        return done.stdout

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
