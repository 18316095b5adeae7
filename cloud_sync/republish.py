"""Republishing committed records to fleet operators and the public, by tier and consent.

* Vehicle data with no driver session goes to the vehicle's own fleet as is (``person``
  null). ``emergency`` (consent given in advance) goes to the vehicle's own fleet too.
* Data inside a driver session goes to the vehicle's own fleet only if that session's
  card-signed consents name the fleet, cover the record's category
  (``msp_protocol.consent``) and are still valid at the record's data time; otherwise it is
  withheld and counted (``withheld`` table: ``not_consented``, ``expired``). A session the
  registry could not verify (card refused) has no consents: ``unverified_session``.
* Positions are removed unless ``location`` is consented too (counted as ``location``); the
  copy then carries ``jws: null`` and ``redacted: ["body.location"]``, since the original
  JWS holds the position.
* Records go to the vehicle's own fleet only, never to other recipients: two fleets that
  both received one session's records could join them on the session id and link their
  pseudonyms. What crosses fleets is the score: after a trip, each fleet the person
  consented ``score`` to (in any session, valid at the trip's time) gets the person's
  portable score, pooled over every vehicle, retained on ``msp/v1/fleet/{f}/score/{p}``
  until the consent ends (then the store clears it: ``Store.clear_expired``).
* public tier (``stats``): the body alone on ``msp/v1/public/stats``; private tier (health,
  gap) never leaves the registry.

A fleet sees a person only as a pairwise pseudonym (HMAC of the registry's secret, the fleet
and the person's internal id), never the card certificate, its hash, its serial or the
internal id. A session start's copy carries only the statement, with the consents given to
that fleet.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from msp_protocol import consent as cats
from msp_protocol.bodies import SessionStart
from msp_protocol.codec import to_json
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import b64url
from msp_protocol.records import Record, Tier, format_ts, kind_info, parse_ts
from msp_protocol.scoring import TripTotals, person_score
from msp_protocol.topics import fleet_score_topic, fleet_topic

from .store import Accepted, Fanned, Publication, Store, Withheld

log = logging.getLogger(__name__)


def fleet_pseudonym(secret: bytes, fleet: str, person_id: str) -> str:
    """The name ``fleet`` knows ``person_id`` by; different for every fleet, stable over time."""
    mac = hmac.new(secret, f"{fleet}\x00{person_id}".encode(), hashlib.sha256).digest()
    return "fp-" + b64url(mac)[:22]


def score_of(store: Store, person_id: str, at: datetime | None = None) -> float | None:
    """The person's portable score (``msp_protocol.scoring.person_score``) over every trip of
    theirs in every vehicle, decayed to ``at`` (default now); ``None`` with too little driving."""
    trips = [TripTotals(parse_ts(t.end), t.distance_km, t.penalty_points)
             for t in store.trips(person_id)]  # fmt: skip
    return person_score(trips, at or datetime.now(UTC))


def score_recipients(store: Store, person_id: str, at: datetime) -> dict[str, str]:
    """The fleets the person has consented ``score`` to, valid at ``at``, each with the end
    of its longest such consent."""
    ends: dict[str, str] = {}
    for c in store.person_consents(person_id):
        longer = c.recipient not in ends or parse_ts(c.until) > parse_ts(ends[c.recipient])
        if longer and cats.grants(c, c.recipient, cats.SCORE, at):
            ends[c.recipient] = c.until
    return ends


def score_payload(fleet: str, pseudonym: str, score: float | None, at: datetime,
                  until: str) -> bytes:  # fmt: skip
    """The score message: the pseudonym, the score (``null`` below 20 km), its instant, and
    when the consent to show it ends (the registry then withdraws it)."""
    rounded = None if score is None else round(score, 1)
    value = {"fleet": fleet, "person": pseudonym, "score": rounded,
             "at": format_ts(at.timestamp()), "until": until}  # fmt: skip
    return json.dumps(value, sort_keys=True).encode()


class Republisher:
    """Decides, from a committed batch, who receives what (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def fanout(self, accepted: Sequence[Accepted]) -> Fanned:
        """The messages for these committed records, in record order, and what was withheld."""
        pubs: list[Publication] = []
        withheld: Counter[Withheld] = Counter()
        for acc in accepted:
            try:
                pubs.extend(self._for(acc, withheld))
            except ProtocolError as exc:  # a fleet or pseudonym that is no valid topic level
                log.warning("not republishing %s/%d: %s", acc.record.device, acc.record.seq, exc)
        return Fanned(pubs, dict(withheld))

    def _for(self, acc: Accepted, withheld: Counter[Withheld]) -> list[Publication]:
        rec = acc.record
        info = kind_info(rec.kind)
        if info.tier is Tier.PUBLIC:  # one vehicle's contributions: aggregated, never as is
            return []
        device = self.store.device(rec.device)
        if info.tier is Tier.PRIVATE or device is None:
            return []
        fleet = device.fleet
        if rec.session is None:
            return [self._copy(acc, fleet, None, redact=False)[0]]
        person = self.store.session_person(rec.session)
        if person is None:
            withheld[Withheld(fleet, rec.kind, "unverified_session")] += 1
            return []
        if info.pre_consented:
            return [self._copy(acc, fleet, person, redact=False)[0]]
        out = self._consented_copy(acc, fleet, person, withheld)
        if rec.kind == "trip":  # the score changes whether or not this fleet sees the trip
            out.extend(self._scores(person, cats.data_time(rec)))
        return out

    def _consented_copy(self, acc: Accepted, fleet: str, person: str,
                        withheld: Counter[Withheld]) -> list[Publication]:  # fmt: skip
        """The fleet's copy of a record inside a driver session, if the session's consents
        cover it; otherwise nothing, counted."""
        rec = acc.record
        assert rec.session is not None
        at = cats.data_time(rec)
        consents = [c for c in self.store.session_consents(rec.session) if c.recipient == fleet]
        category = cats.category_of(rec.kind)
        if category is None or not any(cats.grants(c, fleet, category, at) for c in consents):
            named = any(category in c.categories for c in consents)
            withheld[Withheld(fleet, rec.kind, "expired" if named else "not_consented")] += 1
            return []
        redact = not any(cats.grants(c, fleet, cats.LOCATION, at) for c in consents)
        copy, stripped = self._copy(acc, fleet, person, redact=redact)
        if stripped:
            withheld[Withheld(fleet, rec.kind, "location")] += 1
        return [copy]

    def _copy(self, acc: Accepted, fleet: str, person: str | None, *, redact: bool
              ) -> tuple[Publication, bool]:  # fmt: skip
        """One fleet's copy of a record: decoded body (filtered) beside the original JWS;
        and whether a position was removed."""
        rec = acc.record
        body, stripped = cats.strip_location(rec.body) if redact else (rec.body, False)
        payload: dict[str, object] = {
            "kind": rec.kind, "device": rec.device, "vin": rec.vin, "seq": rec.seq,
            "ts": rec.ts, "session": rec.session,
            "person": fleet_pseudonym(self.store.pseudonym_secret(), fleet, person)
            if person else None,
            "body": _fleet_body(rec, fleet) if rec.kind == "session.start" else to_json(body),
            # the original proves the copy, unless it holds what the fleet may not see: the
            # card certificate of a session start, a position without location consent
            "jws": None if stripped or rec.kind == "session.start" else acc.jws,
        }  # fmt: skip
        if stripped:
            payload["redacted"] = ["body.location"]
        return Publication(fleet_topic(fleet, rec.kind), json.dumps(payload).encode()), stripped

    def _scores(self, person: str, at: datetime) -> list[Publication]:
        """The person's new portable score for every fleet consented ``score`` to at ``at``."""
        fleets = score_recipients(self.store, person, at)
        if not fleets:
            return []
        score = score_of(self.store, person, at)
        secret = self.store.pseudonym_secret()
        pubs = []
        for fleet, until in sorted(fleets.items()):
            name = fleet_pseudonym(secret, fleet, person)
            pubs.append(Publication(fleet_score_topic(fleet, name),
                                    score_payload(fleet, name, score, at, until),
                                    retain=True,  # expiry in one format: the store compares text
                                    expires=format_ts(parse_ts(until).timestamp())))  # fmt: skip
        return pubs


def _fleet_body(rec: Record, fleet: str) -> object:
    """A session start as a fleet sees it: the statement, with only the consents given to
    that fleet; no card certificate, no hash of it, no signature over it."""
    body = rec.body
    assert isinstance(body, SessionStart)
    statement = to_json(body.statement)
    statement["consents"] = [c for c in statement["consents"] if c["recipient"] == fleet]
    return {"statement": statement}
