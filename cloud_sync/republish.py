"""Republishing committed records to fleet operators and the public, by tier and consent.

* Vehicle data with no driver session goes to the vehicle's own fleet as is (``person``
  null). ``emergency`` (consent given in advance) goes to the vehicle's own fleet too.
* Data inside a driver session goes to the vehicle's own fleet only if a consent of the
  person allows it at the record's data time (``cloud_sync.consents.ConsentView``: the
  session's card-signed login consents and the person's later card-signed grants, less what
  a revocation withdrew from its signing time on), naming the fleet and covering the
  record's category (``msp_protocol.consent``); otherwise it is withheld and counted
  (``withheld`` table: ``not_consented``, ``expired``, ``revoked``). A session the
  registry could not verify (card refused) has no consents: ``unverified_session``.
* Every copy of a person's data carries its exchange-log entry (``Exchange``: recipient,
  kind, record, categories, data time, the consent that allowed it), which the store writes
  in the transaction that queues the copy.
* ``consent`` and ``request`` records (the person's own acts) are never republished; a
  revocation's turn in the chain re-queues its withdrawals of retained scores.
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

Recipients of the other roles (``cloud_sync.recipients``: guardians, insurers, responders)
get what the registry makes for them from the same committed records, signed with the
registry's key, each under its own role's rules (:class:`RoleFanout`); the vehicle's fleet
gets the record as before.

A fleet sees a person only as a pairwise pseudonym (HMAC of the registry's secret, the fleet
and the person's internal id), never the card certificate, its hash, its serial or the
internal id. A session start's copy carries only the statement, with the consents given to
that fleet.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from msp_protocol import consent as cats
from msp_protocol import roles
from msp_protocol.bodies import SessionStart
from msp_protocol.codec import to_json
from msp_protocol.errors import ProtocolError
from msp_protocol.records import Record, Tier, format_ts, kind_info, parse_ts
from msp_protocol.scoring import TripTotals, person_score
from msp_protocol.topics import fleet_score_topic, fleet_topic

from .consents import ConsentView, Grant, withdrawals
from .recipients.base import RoleSender
from .recipients.directory import pseudonym
from .recipients.guardian import GuardianSender
from .recipients.insurer import InsurerSender
from .recipients.responder import EmergencyDispatch
from .recipients.signing import RegistrySigner
from .store import Accepted, Exchange, Fanned, Publication, Store, Withheld

log = logging.getLogger(__name__)


def fleet_pseudonym(secret: bytes, fleet: str, person_id: str) -> str:
    """The name ``fleet`` knows ``person_id`` by; different for every fleet, stable over time
    (``cloud_sync.recipients.directory.pseudonym``: every recipient's)."""
    return pseudonym(secret, fleet, person_id)


def score_of(store: Store, person_id: str, at: datetime | None = None) -> float | None:
    """The person's portable score (``msp_protocol.scoring.person_score``) over every trip of
    theirs in every vehicle, decayed to ``at`` (default now); ``None`` with too little driving."""
    trips = [TripTotals(parse_ts(t.end), t.distance_km, t.penalty_points)
             for t in store.trips(person_id)]  # fmt: skip
    return person_score(trips, at or datetime.now(UTC))


def score_recipients(store: Store, person_id: str, at: datetime) -> dict[str, str]:
    """The fleets the person has consented ``score`` to, valid at ``at`` and not revoked,
    each with the end of its longest such consent."""
    view = ConsentView.of(store, person_id)
    return {r: g.until_text for r, g in view.recipients(cats.SCORE, at, current=True).items()}


def score_payload(fleet: str, pseudonym: str, score: float | None, at: datetime,
                  until: str, *, signer: RegistrySigner | None = None) -> bytes:  # fmt: skip
    """The score message: the pseudonym, the score (``null`` below 20 km), its instant, and
    when the consent to show it ends (the registry then withdraws it); with ``signer``, also
    ``registry_jws``: the registry's JWS over the other fields (``cloud_sync.recipients.
    signing``), so the fleet can prove the score came from this registry."""
    rounded = None if score is None else round(score, 1)
    value: dict[str, object] = {"fleet": fleet, "person": pseudonym, "score": rounded,
                                "at": format_ts(at.timestamp()), "until": until}  # fmt: skip
    if signer is not None:
        value = signer.with_signature(value)
    return json.dumps(value, sort_keys=True).encode()


class RoleFanout:
    """What guardians, insurers and responders get from one committed record of a person:
    each role module's ``RoleSender`` over the registered recipients of its role."""

    def __init__(self, store: Store, emergencies: EmergencyDispatch | None = None) -> None:
        self.store = store
        self._senders: list[RoleSender] | None = None
        self._signer: RegistrySigner | None = None
        self._emergencies = emergencies
        #: recipient id -> role, of the non-fleet recipients (read once per batch)
        self.roles: dict[str, str] = {}

    def refresh(self) -> None:
        """Read the registered recipients again (once per batch)."""
        self.roles = {r.id: r.role for r in self.store.recipients()}

    def signer(self) -> RegistrySigner:
        """The registry's signer, made on first use (the key is read then)."""
        if self._signer is None:
            self._signer = RegistrySigner(self.store)
        return self._signer

    def senders(self) -> list[RoleSender]:
        """The role modules, made on first use."""
        if self._senders is None:
            signer = self.signer()
            emergencies = self._emergencies or EmergencyDispatch(self.store, None, signer)
            self._senders = [GuardianSender(self.store, signer),
                             InsurerSender(self.store, signer), emergencies]  # fmt: skip
        return self._senders

    def for_record(self, acc: Accepted, person: str, view: ConsentView) -> list[Publication]:
        """Every role's messages from ``acc`` (none when no recipient of a role is known)."""
        if not self.roles:
            return []
        at = cats.data_time(acc.record)
        out: list[Publication] = []
        for sender in self.senders():
            mine = sorted(r for r, role in self.roles.items() if role == sender.role)
            if mine:
                out.extend(sender.for_record(acc, person, view, at, mine))
        return out


class Republisher:
    """Decides, from a committed batch, who receives what (see the module docstring)."""

    def __init__(self, store: Store, roles_fanout: RoleFanout | None = None) -> None:
        self.store = store
        self._views: dict[tuple[str, str | None], ConsentView] = {}
        self.roles = roles_fanout or RoleFanout(store)

    def fanout(self, accepted: Sequence[Accepted]) -> Fanned:
        """The messages for these committed records, in record order, and what was withheld."""
        pubs: list[Publication] = []
        withheld: Counter[Withheld] = Counter()
        self._views.clear()  # a batch may carry a consent record: read them afresh
        self.roles.refresh()
        for acc in accepted:
            try:
                pubs.extend(self._for(acc, withheld))
            except ProtocolError as exc:  # a fleet or pseudonym that is no valid topic level
                log.warning("not republishing %s/%d: %s", acc.record.device, acc.record.seq, exc)
        return Fanned(pubs, dict(withheld))

    def _for(self, acc: Accepted, withheld: Counter[Withheld]) -> list[Publication]:
        rec = acc.record
        info = kind_info(rec.kind)
        if info.person_act:
            self._views.clear()
            return withdrawals(self.store, acc.statement) if acc.statement else []
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
        others = self.roles.for_record(acc, person, self._view(person, None))
        if info.pre_consented:
            exchange = Exchange(person, fleet, rec.kind, f"{rec.device}/{rec.seq}", (),
                                format_ts(cats.data_time(rec).timestamp()), "pre-consented")
            return [self._copy(acc, fleet, person, redact=False, exchange=exchange)[0],
                    *others]  # fmt: skip
        out = self._consented_copy(acc, fleet, person, withheld)
        if rec.kind == "trip":  # the score changes whether or not this fleet sees the trip
            out.extend(self._scores(acc, person, cats.data_time(rec)))
        return out + others

    def _consented_copy(self, acc: Accepted, fleet: str, person: str,
                        withheld: Counter[Withheld]) -> list[Publication]:  # fmt: skip
        """The fleet's copy of a record inside a driver session, if the session's consents
        cover it; otherwise nothing, counted."""
        rec = acc.record
        assert rec.session is not None
        at = cats.data_time(rec)
        view = self._view(person, rec.session)
        category = cats.category_of(rec.kind)
        grant = None if category is None else view.allowing(fleet, category, at)
        if grant is None:
            withheld[Withheld(fleet, rec.kind, view.why_not(fleet, category, at))] += 1
            return []
        assert category is not None
        located = view.allowing(fleet, cats.LOCATION, at)
        categories = (category,) if located is None else (category, cats.LOCATION)
        exchange = Exchange(person, fleet, rec.kind, f"{rec.device}/{rec.seq}", categories,
                            format_ts(at.timestamp()), grant.ref)  # fmt: skip
        copy, stripped = self._copy(acc, fleet, person, redact=located is None,
                                    exchange=exchange)  # fmt: skip
        if stripped:
            withheld[Withheld(fleet, rec.kind, "location")] += 1
        return [copy]

    def _view(self, person: str, session: str | None) -> ConsentView:
        """The person's consents (of one session's login and every later statement)."""
        key = (person, session)
        if key not in self._views:
            self._views[key] = ConsentView.of(self.store, person, session)
        return self._views[key]

    def _copy(self, acc: Accepted, fleet: str, person: str | None, *, redact: bool,
              exchange: Exchange | None = None) -> tuple[Publication, bool]:  # fmt: skip
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
            if exchange is not None:  # what the fleet got: the record without its positions
                exchange = replace(exchange, categories=tuple(
                    c for c in exchange.categories if c != cats.LOCATION))
        return Publication(fleet_topic(fleet, rec.kind), json.dumps(payload).encode(),
                           exchange=exchange), stripped

    def _scores(self, acc: Accepted, person: str, at: datetime) -> list[Publication]:
        """The person's new portable score for every fleet consented ``score`` to at ``at``."""
        # the retained score is shown as it is now: a revocation since the grant stops it
        fleets: dict[str, Grant] = {
            r: g for r, g in self._view(person, None).recipients(cats.SCORE, at, current=True
                                                                 ).items()
            if self.roles.roles.get(r, roles.FLEET) == roles.FLEET}  # insurers: RoleFanout
        if not fleets:
            return []
        score = score_of(self.store, person, at)
        secret = self.store.pseudonym_secret()
        rec = acc.record
        pubs = []
        for fleet, grant in sorted(fleets.items()):
            name = fleet_pseudonym(secret, fleet, person)
            exchange = Exchange(person, fleet, "score", f"{rec.device}/{rec.seq}",
                                (cats.SCORE,), format_ts(at.timestamp()), grant.ref)
            pubs.append(Publication(fleet_score_topic(fleet, name),
                                    score_payload(fleet, name, score, at, grant.until_text,
                                                  signer=self.roles.signer()),
                                    retain=True,  # expiry in one format: the store compares text
                                    expires=format_ts(grant.until.timestamp()),
                                    exchange=exchange))  # fmt: skip
        return pubs


def _fleet_body(rec: Record, fleet: str) -> object:
    """A session start as a fleet sees it: the statement, with only the consents given to
    that fleet; no card certificate, no hash of it, no signature over it."""
    body = rec.body
    assert isinstance(body, SessionStart)
    statement = to_json(body.statement)
    statement["consents"] = [c for c in statement["consents"] if c["recipient"] == fleet]
    return {"statement": statement}
