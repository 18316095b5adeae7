"""The person's own acts in the PostgreSQL store: card-signed consents, the exchange log,
requests, successions. A mixin of ``PostgresStore`` (schema version 3,
``postgres_schema._PERSON_TABLES``), the same behaviour as ``sqlite_person.PersonActs``; every
method keeps the ``Store`` promise of the same name (``cloud_sync.store.base``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

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
from .sqlite_person import now_text
from .sqlite_schema import dumps

log = logging.getLogger(__name__)


class PgPersonActs:
    """The person's own acts on a psycopg connection (``_conn``, autocommit; transactions
    with ``_live().transaction()``)."""

    _conn: psycopg.Connection[tuple[Any, ...]]
    url: str

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _queue(self, publications: Sequence[Publication]) -> None:
        """Queue publications (inside the caller's transaction), each with its exchange-log
        entry if it carries a person's data; retained ones noted (an empty one forgotten)."""
        run = self._conn.execute
        now = now_text()
        plain = [(p.topic, p.payload, p.retain) for p in publications if p.exchange is None]
        with self._conn.cursor() as cur:
            if plain:
                cur.executemany(b"INSERT INTO fanout (topic, payload, retain)"
                                b" VALUES (%s, %s, %s)", plain)  # fmt: skip
        for pub in publications:
            ex = pub.exchange
            if ex is None:
                continue
            row = run(b"INSERT INTO fanout (topic, payload, retain) VALUES (%s, %s, %s)"
                      b" RETURNING id", (pub.topic, pub.payload, pub.retain)
                      ).fetchone()  # fmt: skip
            assert row is not None
            run(b"INSERT INTO exchange_log (person_id, recipient, kind, record, categories,"
                b" data_time, consent, sent_at, status, fanout_id)"
                b" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'queued', %s)",
                (ex.person_id, ex.recipient, ex.kind, ex.record, ",".join(ex.categories),
                 ex.data_time, ex.consent, now, row[0]))  # fmt: skip
        retained = sorted({p.topic: p.expires for p in publications
                           if p.retain and p.expires}.items())  # fmt: skip
        with self._conn.cursor() as cur:
            if retained:
                cur.executemany(b"INSERT INTO retained VALUES (%s, %s) ON CONFLICT (topic)"
                                b" DO UPDATE SET expires = excluded.expires", retained)
        dropped = [p.topic for p in publications if p.retain and not p.payload]
        if dropped:
            run(b"DELETE FROM retained WHERE topic = ANY(%s)", (dropped,))

    def _transaction(self, what: str, action: Any) -> Any:
        try:
            with self._live().transaction():
                return action()
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: cannot {what}: {exc}") from None

    def card_person(self, certificate_sha256: str) -> str | None:
        """The person a card certificate stands for, if known."""
        row = self._one("SELECT person_id FROM card_certificates WHERE sha256 = %s",
                        (certificate_sha256,))  # fmt: skip
        return str(row[0]) if row else None

    def session_started_at(self, session_id: str) -> str | None:
        """When a driver session started, if known."""
        row = self._one("SELECT started_at FROM sessions WHERE id = %s", (session_id,))
        return str(row[0]) if row else None

    def session_grants(self, person_id: str, session_id: str | None = None
                       ) -> Sequence[SessionGrant]:  # fmt: skip
        """The consents a person signed at logins (of one session, if given), oldest first."""
        rows = self._rows(
            "SELECT id, started_at, consents FROM sessions WHERE person_id = %s"
            " AND (%s::text IS NULL OR id = %s) ORDER BY started_at, id",
            (person_id, session_id, session_id),
        )
        return [SessionGrant(str(i), str(at), bodies.Consent(c["recipient"],
                                                             tuple(c["categories"]), c["until"]))
                for i, at, text in rows for c in json.loads(text)]  # fmt: skip

    def person_by_key(self, key_sha256: str) -> str | None:
        """The person whose card key this is now, if known."""
        row = self._one("SELECT id FROM persons WHERE key_sha256 = %s", (key_sha256,))
        return str(row[0]) if row else None

    def erased_records(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's erased records."""
        rows = self._rows("SELECT seq, hash FROM records WHERE device = %s AND jws = ''"
                          " ORDER BY seq", (device_id,))  # fmt: skip
        return [(int(q), str(h)) for q, h in rows]

    def key_succeeded(self, key_sha256: str) -> bool:
        """True once the card key was succeeded by a new card's."""
        return self._one("SELECT 1 FROM successions WHERE old_key_sha256 = %s",
                         (key_sha256,)) is not None  # fmt: skip

    def succeed(self, move: Succession) -> bool:
        """Move the person to a new card key (see ``Store.succeed``)."""

        def act() -> bool:
            run = self._conn.execute
            cur = run(b"INSERT INTO successions VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                      (move.old_key_sha256, move.new_key_sha256, move.person_id,
                       move.signed_at))  # fmt: skip
            if cur.rowcount == 0:
                return False
            run(b"UPDATE persons SET key_sha256 = %s WHERE id = %s",
                (move.new_key_sha256, move.person_id))  # fmt: skip
            run(b"INSERT INTO card_certificates VALUES (%s, %s, %s) ON CONFLICT (sha256)"
                b" DO UPDATE SET person_id = excluded.person_id",
                (move.new_certificate_sha256, move.person_id, move.new_certificate_der))
            return True

        return bool(self._transaction(f"move {move.person_id} to a new card", act))

    def consent_statements(self, person_id: str) -> Sequence[PersonStatement]:
        """The person's card-signed grants and revocations, by signing time."""
        rows = self._rows(
            "SELECT id, person_id, device, seq, statement, received_at FROM consent_statements"
            " WHERE person_id = %s ORDER BY signed_at, id", (person_id,),
        )  # fmt: skip
        return [PersonStatement(str(i), str(p), str(d), int(q),
                                from_json(bodies.ConsentStatement, json.loads(st)), str(r))
                for i, p, d, q, st, r in rows]  # fmt: skip

    def apply_statement(self, statement: PersonStatement,
                        publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Keep a grant or revocation at once (see ``Store.apply_statement``)."""

        def act() -> bool:
            new = self._apply_statement(statement)
            if new:
                self._queue(publications)
            return new

        return bool(self._transaction("apply a consent statement", act))

    def _apply_statement(self, item: PersonStatement) -> bool:
        st = item.statement
        cur = self._conn.execute(
            b"INSERT INTO consent_statements VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            b" ON CONFLICT DO NOTHING",
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
        """As ``sqlite_person.PersonActs._withdraw``."""
        match = " OR ".join("(',' || categories || ',') LIKE %s" for _ in categories)
        sql = ("SELECT id, fanout_id FROM exchange_log WHERE person_id = %s AND recipient = %s"  # noqa: S608
               " AND status = 'queued' AND (data_time >= %s OR categories = 'score')"
               f"{f' AND ({match})' if match else ''}")  # fmt: skip
        rows = self._conn.execute(sql.encode(), (person, recipient, since,
                                                 *[f"%,{c},%" for c in categories])).fetchall()
        if rows:
            self._conn.execute(b"DELETE FROM fanout WHERE id = ANY(%s)", ([f for _i, f in rows],))
            self._conn.execute(b"UPDATE exchange_log SET status = 'withdrawn' WHERE id = ANY(%s)",
                               ([i for i, _f in rows],))  # fmt: skip
            log.info("revocation of %s for %s withdrew %d queued publication(s)", person,
                     recipient, len(rows))  # fmt: skip
        return len(rows)

    def exchanges(self, person_id: str) -> Sequence[ExchangeRow]:
        """The person's exchange log, oldest first."""
        rows = self._rows(
            "SELECT person_id, recipient, kind, record, categories, data_time, consent,"
            " sent_at, status FROM exchange_log WHERE person_id = %s ORDER BY id", (person_id,),
        )  # fmt: skip
        return [ExchangeRow(Exchange(p, r, k, rec, tuple(c.split(",")) if c else (), dt, con),
                            sent, status)
                for p, r, k, rec, c, dt, con, sent, status in rows]  # fmt: skip

    def person_rows(self, person_id: str, table: str) -> Sequence[Mapping[str, object]]:
        """Every row of the person in ``table``, as column → value."""
        if table not in PERSON_TABLES:
            raise ValueError(f"not a table of a person's data: {table!r}")
        try:
            cur = self._live().execute(f"SELECT * FROM {table} WHERE person_id = %s".encode(),  # noqa: S608
                                       (person_id,))  # fmt: skip
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from None

    def erase_person(self, person_id: str,
                     publications: Sequence[Publication] = ()) -> Mapping[str, int]:  # fmt: skip
        """Delete the person's data but what the retention rule keeps."""

        def act() -> dict[str, int]:
            run = self._conn.execute
            done = {"records": run(b"UPDATE records SET jws = '' WHERE session IN"
                                   b" (SELECT id FROM sessions WHERE person_id = %s)",
                                   (person_id,)).rowcount}  # fmt: skip
            for table in ("trips", "events", "dtcs", "emergencies", "profiles", "sessions"):
                done[table] = run(f"DELETE FROM {table} WHERE person_id = %s".encode(),  # noqa: S608
                                  (person_id,)).rowcount  # fmt: skip
            done["card_certificates"] = run(b"DELETE FROM card_certificates WHERE person_id = %s",
                                            (person_id,)).rowcount  # fmt: skip
            queued = [int(r[0]) for r in run(
                b"UPDATE exchange_log SET status = 'withdrawn' WHERE person_id = %s"
                b" AND status = 'queued' RETURNING fanout_id", (person_id,)).fetchall()]
            if queued:
                run(b"DELETE FROM fanout WHERE id = ANY(%s)", (queued,))
            self._queue(publications)
            return done

        result: dict[str, int] = self._transaction(f"erase {person_id}", act)
        return result

    def log_exchanges(self, exchanges: Sequence[Exchange], status: str) -> int:
        """Write exchange-log rows of data shown outside a publication (see
        ``Store.log_exchanges``)."""
        now = now_text()

        def act() -> int:
            with self._conn.cursor() as cur:
                cur.executemany(
                    b"INSERT INTO exchange_log (person_id, recipient, kind, record, categories,"
                    b" data_time, consent, sent_at, status)"
                    b" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(e.person_id, e.recipient, e.kind, e.record, ",".join(e.categories),
                      e.data_time, e.consent, now, status) for e in exchanges],
                )  # fmt: skip
            return len(exchanges)

        return int(self._transaction("write the exchange log", act))

    def record_request(self, request: PersonRequest,
                       publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Note a request as answered with its reply (see ``Store.record_request``)."""

        def act() -> bool:
            cur = self._conn.execute(
                b"INSERT INTO person_requests VALUES (%s, %s, %s, %s, %s, %s)"
                b" ON CONFLICT DO NOTHING",
                (request.id, request.person_id, request.device, request.action,
                 request.signed_at, request.answered_at or now_text()),
            )  # fmt: skip
            if cur.rowcount == 0:
                return False
            self._queue(publications)
            return True

        return bool(self._transaction("record a request", act))
