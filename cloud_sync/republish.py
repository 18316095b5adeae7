"""Republishing committed records to fleet operators and the public, by data tier.

* consent tier (trip, event, dtc, session.*): to each recipient the driver consented to in
  the session's card-signed statement, for that kind (a consent's ``categories`` are record
  kinds), while the consent is valid at the record's time. A record outside any driver
  session (no person in it) goes to the vehicle's own fleet only.
* ``emergency`` (consent given in advance): to the vehicle's own fleet and to consented
  recipients.
* public tier (``stats``): the body alone on ``msp/v1/public/stats``: no device, VIN or person.
* private tier (health, gap): never leaves the registry.

A fleet sees a person only as a per-fleet pseudonym (HMAC of the registry's secret, the
fleet and the person), so two fleets cannot join their data on it, and never the card
certificate. Each payload carries the original JWS for independent verification, except a
session start's, which holds the card certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence

from msp_protocol.codec import to_json
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import b64url
from msp_protocol.records import Tier, kind_info, parse_ts
from msp_protocol.topics import PUBLIC_STATS, fleet_topic

from .store import Accepted, Publication, Store

log = logging.getLogger(__name__)


def fleet_pseudonym(secret: bytes, fleet: str, person_id: str) -> str:
    """The name ``fleet`` knows ``person_id`` by; different for every fleet, stable over time."""
    mac = hmac.new(secret, f"{fleet}\x00{person_id}".encode(), hashlib.sha256).digest()
    return "fp-" + b64url(mac)[:22]


class Republisher:
    """Decides, from a committed batch, who receives what (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def publications(self, accepted: Sequence[Accepted]) -> list[Publication]:
        """The messages for these committed records, in record order."""
        out: list[Publication] = []
        for acc in accepted:
            try:
                out.extend(self._for(acc))
            except ProtocolError as exc:  # a recipient that is no valid fleet id
                log.warning("not republishing %s/%d: %s", acc.record.device, acc.record.seq, exc)
        return out

    def _for(self, acc: Accepted) -> list[Publication]:
        rec = acc.record
        info = kind_info(rec.kind)
        if info.tier is Tier.PUBLIC:
            body = json.dumps({"kind": rec.kind, "body": to_json(rec.body)}, sort_keys=True)
            return [Publication(PUBLIC_STATS, body.encode())]
        if info.tier is Tier.PRIVATE:
            return []
        device = self.store.device(rec.device)
        own_fleet = device.fleet if device is not None else None
        person = self.store.session_person(rec.session) if rec.session else None
        fleets: set[str] = set()
        if person is None or info.pre_consented:
            fleets.update([own_fleet] if own_fleet else [])
        if person is not None and rec.session is not None:
            at = parse_ts(rec.ts)
            for consent in self.store.session_consents(rec.session):
                if rec.kind in consent.categories and at <= parse_ts(consent.until):
                    fleets.add(consent.recipient)
        secret = self.store.pseudonym_secret()
        pubs = []
        for fleet in sorted(fleets):
            payload = {
                "kind": rec.kind, "vin": rec.vin, "seq": rec.seq, "ts": rec.ts,
                "person": fleet_pseudonym(secret, fleet, person) if person else None,
                "body": _public_body(acc),
                # a session start's JWS holds the card certificate: not for fleets' eyes
                "jws": None if rec.kind == "session.start" else acc.jws,
            }  # fmt: skip
            pubs.append(Publication(fleet_topic(fleet, rec.kind), json.dumps(payload).encode()))
        return pubs


def _public_body(acc: Accepted) -> object:
    """The body as a fleet sees it: a session start without the card certificate or its hash."""
    body = to_json(acc.record.body)
    if acc.record.kind == "session.start" and isinstance(body, dict):
        return {"statement": body["statement"]}
    return body
