"""The person's own acts in the SQLite store: card-signed consents, the exchange log, requests.

A mixin of ``SqliteStore`` (schema version 3, ``sqlite_schema._PERSON_TABLES``); every method
keeps the ``Store`` promise of the same name (``cloud_sync.store.base``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msp_protocol import bodies
from msp_protocol.codec import from_json, to_json

from ..errors import StoreError
from .base import (
    PERSON_TABLES,
    Exchange,
    ExchangeRow,
    PersonRequest,
    PersonStatement,
    Publication,
    SessionGrant,
    Succession,
)
from .sqlite_schema import dumps

log = logging.getLogger(__name__)


def now_text() -> str:
    """The current instant as the store writes it (microseconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PersonActs:
    """The person's own acts in SQLite (mixed into ``SqliteStore``): consents, exchange log,
    requests (schema version 3, ``sqlite_schema._PERSON_TABLES``)."""

    _conn: sqlite3.Connection
    path: Path

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _queue(self, publications: Sequence[Publication]) -> None:
        raise NotImplementedError

    def card_person(self, certificate_sha256: str) -> str | None:
        """The person a card certificate (by its base64url SHA-256) stands for, if known."""
        row = self._one("SELECT person_id FROM card_certificates WHERE sha256 = ?",
                        (certificate_sha256,))  # fmt: skip
        return str(row[0]) if row else None

    def session_started_at(self, session_id: str) -> str | None:
        """When a driver session started, if known."""
        row = self._one("SELECT started_at FROM sessions WHERE id = ?", (session_id,))
        return str(row[0]) if row else None

    def session_grants(self, person_id: str, session_id: str | None = None
                       ) -> Sequence[SessionGrant]:  # fmt: skip
        """The consents a person signed at logins (of one session, if given), oldest first."""
        rows = self._conn.execute(
            "SELECT id, started_at, consents FROM sessions WHERE person_id = ?"
            " AND (? IS NULL OR id = ?) ORDER BY started_at, id",
            (person_id, session_id, session_id),
        )
        return [SessionGrant(str(i), str(at), bodies.Consent(c["recipient"],
                                                             tuple(c["categories"]), c["until"]))
                for i, at, text in rows for c in json.loads(text)]  # fmt: skip

    def person_by_key(self, key_sha256: str) -> str | None:
        """The person whose card key this is now, if known."""
        row = self._one("SELECT id FROM persons WHERE key_sha256 = ?", (key_sha256,))
        return str(row[0]) if row else None

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """One write transaction under SQLite's write lock, rolled back on any error; a
        database error is a ``StoreError`` naming what could not be done."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    def succeed(self, move: Succession) -> bool:
        """Move the person to a new card key (see ``Store.succeed``)."""
        with self._writing(f"move {move.person_id} to a new card"):
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO successions VALUES (?, ?, ?, ?)",
                (move.old_key_sha256, move.new_key_sha256, move.person_id, move.signed_at),
            )
            new = cur.rowcount > 0
            if new:
                self._conn.execute("UPDATE persons SET key_sha256 = ? WHERE id = ?",
                                   (move.new_key_sha256, move.person_id))  # fmt: skip
                self._conn.execute(
                    "INSERT INTO card_certificates VALUES (?, ?, ?) ON CONFLICT (sha256)"
                    " DO UPDATE SET person_id = excluded.person_id",
                    (move.new_certificate_sha256, move.person_id, move.new_certificate_der),
                )
        return new

    def erased_records(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's erased records."""
        rows = self._conn.execute("SELECT seq, hash FROM records WHERE device = ? AND jws = ''"
                                  " ORDER BY seq", (device_id,))  # fmt: skip
        return [(int(q), str(h)) for q, h in rows]

    def key_succeeded(self, key_sha256: str) -> bool:
        """True once the card key was succeeded by a new card's."""
        return self._one("SELECT 1 FROM successions WHERE old_key_sha256 = ?",
                         (key_sha256,)) is not None  # fmt: skip

    def consent_statements(self, person_id: str) -> Sequence[PersonStatement]:
        """The person's card-signed grants and revocations, by signing time."""
        rows = self._conn.execute(
            "SELECT id, person_id, device, seq, statement, received_at FROM consent_statements"
            " WHERE person_id = ? ORDER BY signed_at, id", (person_id,),
        )  # fmt: skip
        return [PersonStatement(str(i), str(p), str(d), int(q),
                                from_json(bodies.ConsentStatement, json.loads(st)), str(r))
                for i, p, d, q, st, r in rows]  # fmt: skip

    def apply_statement(self, statement: PersonStatement,
                        publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Keep a grant or revocation at once (see ``Store.apply_statement``)."""
        with self._writing("apply a consent statement"):
            new = self._apply_statement(statement)
            if new:
                self._queue(publications)
        return new

    def _apply_statement(self, item: PersonStatement) -> bool:
        """Insert the statement (inside the caller's transaction); a revocation withdraws
        the queued publications it covers. False if it was there already."""
        st = item.statement
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO consent_statements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.id, item.person_id, item.device, item.seq, st.action, st.recipient,
             ",".join(st.categories), st.until, st.signed_at, dumps(to_json(st)), now_text()),
        )  # fmt: skip
        if cur.rowcount == 0:
            return False
        if st.action == "revoke":
            self._withdraw(item.person_id, st.recipient, st.categories, st.signed_at)
        return True

    def _withdraw(self, person: str, recipient: str, categories: Sequence[str],
                  since: str) -> int:  # fmt: skip
        """Drop the person's queued publications to ``recipient`` of data at or after
        ``since`` under any of ``categories`` (none: every category); a queued score goes
        whatever its data time (it shows the score as it is now)."""
        match = " OR ".join("(',' || categories || ',') LIKE ?" for _ in categories)
        rows = self._conn.execute(
            "SELECT id, fanout_id FROM exchange_log WHERE person_id = ? AND recipient = ?"  # noqa: S608
            " AND status = 'queued' AND (data_time >= ? OR categories = 'score')"
            f"{f' AND ({match})' if match else ''}",
            (person, recipient, since, *[f"%,{c},%" for c in categories]),
        ).fetchall()
        self._conn.executemany("DELETE FROM fanout WHERE id = ?", [(f,) for _i, f in rows])
        self._conn.executemany("UPDATE exchange_log SET status = 'withdrawn' WHERE id = ?",
                               [(i,) for i, _f in rows])  # fmt: skip
        if rows:
            log.info("revocation of %s for %s withdrew %d queued publication(s)", person,
                     recipient, len(rows))  # fmt: skip
        return len(rows)

    def exchanges(self, person_id: str) -> Sequence[ExchangeRow]:
        """The person's exchange log, oldest first."""
        rows = self._conn.execute(
            "SELECT person_id, recipient, kind, record, categories, data_time, consent,"
            " sent_at, status FROM exchange_log WHERE person_id = ? ORDER BY id", (person_id,),
        )  # fmt: skip
        return [ExchangeRow(Exchange(p, r, k, rec, tuple(c.split(",")) if c else (), dt, con),
                            sent, status)
                for p, r, k, rec, c, dt, con, sent, status in rows]  # fmt: skip

    def person_rows(self, person_id: str, table: str) -> Sequence[Mapping[str, object]]:
        """Every row of the person in ``table``, as column → value."""
        if table not in PERSON_TABLES:
            raise ValueError(f"not a table of a person's data: {table!r}")
        cur = self._conn.execute(f"SELECT * FROM {table} WHERE person_id = ?",  # noqa: S608
                                 (person_id,))  # fmt: skip
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def erase_person(self, person_id: str,
                     publications: Sequence[Publication] = ()) -> Mapping[str, int]:  # fmt: skip
        """Delete the person's data but what the retention rule keeps."""
        done: dict[str, int] = {}
        with self._writing(f"erase {person_id}"):
            run = self._conn.execute
            done["records"] = run(
                "UPDATE records SET jws = '' WHERE session IN"
                " (SELECT id FROM sessions WHERE person_id = ?)", (person_id,)).rowcount
            for table in ("trips", "events", "dtcs", "emergencies", "profiles", "sessions"):
                done[table] = run(f"DELETE FROM {table} WHERE person_id = ?",  # noqa: S608
                                  (person_id,)).rowcount  # fmt: skip
            done["card_certificates"] = run(
                "DELETE FROM card_certificates WHERE person_id = ?", (person_id,)).rowcount
            queued = run("SELECT fanout_id FROM exchange_log WHERE person_id = ?"
                         " AND status = 'queued'", (person_id,)).fetchall()  # fmt: skip
            self._conn.executemany("DELETE FROM fanout WHERE id = ?", queued)
            run("UPDATE exchange_log SET status = 'withdrawn' WHERE person_id = ?"
                " AND status = 'queued'", (person_id,))  # fmt: skip
            self._queue(publications)
        return done

    def log_exchanges(self, exchanges: Sequence[Exchange], status: str) -> int:
        """Write exchange-log rows of data shown outside a publication (see
        ``Store.log_exchanges``)."""
        now = now_text()
        with self._writing("write the exchange log"):
            self._conn.executemany(
                "INSERT INTO exchange_log (person_id, recipient, kind, record, categories,"
                " data_time, consent, sent_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.person_id, e.recipient, e.kind, e.record, ",".join(e.categories),
                  e.data_time, e.consent, now, status) for e in exchanges],
            )  # fmt: skip
        return len(exchanges)

    def record_request(self, request: PersonRequest,
                       publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Note a request as answered with its reply (see ``Store.record_request``)."""
        with self._writing("record a request"):
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO person_requests VALUES (?, ?, ?, ?, ?, ?)",
                (request.id, request.person_id, request.device, request.action,
                 request.signed_at, request.answered_at or now_text()),
            )  # fmt: skip
            new = cur.rowcount > 0
            if new:
                self._queue(publications)
        return new
