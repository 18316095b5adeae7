"""Answers to the person's own requests: their data, sealed to a key only they hold.

A ``request`` record (``msp-agent card my-data``) carries a statement the person's card
signed with a fresh X25519 public key (``reply_key``). The registry answers on the device's
own channel, ``msp/v1/dev/{device}/reply`` (only that gateway may read it), with the answer
sealed to ``reply_key`` by HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-128-GCM): neither the broker, the gateway's operator nor the registry's logs
(which name the request, never its content) can read it.

Actions: ``my_data`` (consents, exchange log, score history), ``export`` (all the person's
trips, events, trouble codes, emergencies, sessions, scores and consents: data portability),
``erase`` (``Store.erase_person`` under the retention rule of docs/consent.md; every recipient
holding a retained message of the person gets an empty retained message on its topic, which
makes the broker drop it), ``succeed`` (``cloud_sync.succession``).

A reply is JSON ``{"request", "nonce", "part", "parts", "sealed"}``; the plaintext is cut into
parts of at most :data:`PART_BYTES` (the broker's packet bound), each sealed on its own with
``info`` = ``msp/v1 reply {request} {part}/{parts}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from msp_protocol.bodies import CardRequest
from msp_protocol.codec import to_json
from msp_protocol.records import Record, format_ts
from msp_protocol.sealed import SealError, seal_reply
from msp_protocol.topics import fleet_score_topic, reply_topic

from .consents import normal_ts, statement_id
from .errors import RegistryError
from .republish import fleet_pseudonym, score_of
from .store import PersonRequest, Publication, Store
from .store.base import PERSON_TABLES

log = logging.getLogger(__name__)

def _text(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


class RequestError(RegistryError):
    """A request the registry cannot answer."""


class MyData:
    """Answers verified ``request`` records (the early hook of ``cloud_sync.consents``)."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 succeed: Callable[[Record, str], Mapping[str, object]] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.succeed = succeed

    def answer(self, record: Record, person: str) -> None:
        """Act on the request and queue its sealed reply (once per request)."""
        body = record.body
        assert isinstance(body, CardRequest)
        st = body.statement
        request = PersonRequest(statement_id(body.card_signature), person, record.device,
                                st.action, normal_ts(st.signed_at))  # fmt: skip
        content: Mapping[str, object]
        withdrawals: list[Publication] = []
        if st.action == "my_data":
            content = self.my_data(person)
        elif st.action == "export":
            content = self.export(person)
        elif st.action == "erase":
            withdrawals = self.retained_of(person)
            content = {"erased": dict(self.store.erase_person(person, ())),
                       "withdrawn_retained": [p.topic for p in withdrawals]}  # fmt: skip
        elif st.action == "succeed" and self.succeed is not None:
            content = self.succeed(record, person)
        else:
            content = {"error": f"action {st.action!r} is not served by this registry"}
        replies: list[Publication] = list(withdrawals)
        if st.reply_key is not None:
            value = {"request": request.id, "action": st.action, "person": "you",
                     "answered_at": format_ts(self.clock().timestamp()), **content}
            plaintext = json.dumps(value, ensure_ascii=False, sort_keys=True,
                                   default=_text).encode()  # fmt: skip
            try:
                sealed = seal_reply(request.id, st.nonce, plaintext, st.reply_key)
            except SealError as exc:
                log.warning("request %s of %s: no reply: %s", request.id, record.device, exc)
                sealed = []
            replies += [Publication(reply_topic(record.device), m) for m in sealed]
        if self.store.record_request(request, replies):
            log.info("request %s (%s) of seq %d of %s answered in %d message(s)", request.id,
                     st.action, record.seq, record.device, len(replies))  # fmt: skip

    def my_data(self, person: str) -> dict[str, object]:
        """The person's consents (login and card-signed), exchange log and score history."""
        logins = [{"session": g.session, "signed_at": g.started_at, "action": "grant",
                   **to_json(g.consent)} for g in self.store.session_grants(person)]
        statements = [{"id": s.id, "device": s.device, **to_json(s.statement)}
                      for s in self.store.consent_statements(person)]
        exchanges = [{**to_json(row.exchange), "sent_at": row.sent_at, "status": row.status}
                     for row in self.store.exchanges(person)]
        for item in exchanges:
            item.pop("person_id", None)
        trips = self.store.trips(person)
        scores = [{"trip_end": t.end, "vin": t.vin, "distance_km": t.distance_km,
                   "trip_score": t.score} for t in trips]
        return {"consents": {"at_login": logins, "statements": statements},
                "exchanges": exchanges,
                "scores": {"now": score_of(self.store, person, self.clock()), "trips": scores}}

    def export(self, person: str) -> dict[str, object]:
        """Everything the registry keeps of the person (data portability)."""
        out: dict[str, object] = dict(self.my_data(person))
        for table in PERSON_TABLES:
            rows = [{k: v for k, v in row.items() if k != "person_id"}
                    for row in self.store.person_rows(person, table)]
            out[table] = rows
        return out

    def retained_of(self, person: str) -> list[Publication]:
        """An empty retained message for every recipient that got the person's score."""
        secret = self.store.pseudonym_secret()
        fleets = sorted({row.exchange.recipient for row in self.store.exchanges(person)
                         if row.exchange.kind == "score"})  # fmt: skip
        return [Publication(fleet_score_topic(f, fleet_pseudonym(secret, f, person)), b"",
                            retain=True) for f in fleets]  # fmt: skip
