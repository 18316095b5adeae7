"""What each recipient may see, computed by the same rules as MQTT (``cloud_sync.republish``).

A fleet's view of a record is the copy :class:`cloud_sync.republish.Republisher` makes for it
from the stored record: the same consents, validity, unverified sessions and position
stripping, the same pairwise pseudonym, so the web can never show more than the fleet's MQTT
feed carried. Scores follow ``score_recipients`` and ``score_of``; a pseudonym is resolved by
``cloud_sync.fleets.person_of``. The operator sees its gateways' health (private tier, never a
person) and rejection counts. Nothing here writes to the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from msp_protocol import consent as cats
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import split
from msp_protocol.records import KINDS, Tier, format_ts, parse_record, parse_ts
from msp_protocol.scoring import TripTotals, person_score
from msp_protocol.topics import fleet_topic

from ..consents import ConsentView
from ..fleets import FleetError, person_of
from ..republish import Republisher, fleet_pseudonym, score_of, score_recipients
from ..store import Accepted, Device, Store, StoredRecord
from .errors import NotFound
from .exchange_log import Shown

log = logging.getLogger(__name__)

#: How many of a vehicle's newest trips are looked at for its last one the fleet received (a
#: trip the fleet was not given is skipped, not shown as "no trip").
_LAST_TRIPS = 20
#: The kinds a fleet can receive a copy of (consent tier); health, gap and stats never.
FLEET_KINDS = tuple(name for name, info in KINDS.items() if info.tier is Tier.CONSENT)


@dataclass(frozen=True, slots=True)
class Copy:
    """One record as its fleet received it (the republished JSON, ``body`` filtered), with
    when the registry stored it. ``person_id`` is internal: for the exchange log only."""

    kind: str
    device: str
    vin: str
    seq: int
    ts: str
    person: str | None
    body: dict[str, Any]
    received_at: str
    redacted: tuple[str, ...] = ()
    person_id: str | None = field(default=None, repr=False)
    #: the reference of the consent it was given under (the exchange log's ``consent``)
    consent: str = field(default="pre-consented", repr=False)

    @property
    def record(self) -> str:
        """``device/seq``."""
        return f"{self.device}/{self.seq}"

    def shown(self, recipient: str) -> Shown | None:
        """The exchange-log entry for showing this copy, if it holds a person's data."""
        if self.person_id is None:
            return None
        at = max((self.ts, *(str(self.body[k]) for k in ("end", "start") if k in self.body)),
                 key=parse_ts)  # fmt: skip
        return Shown(self.person_id, recipient, self.kind, self.record,
                     cats.category_of(self.kind), at, self.consent)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """The portable score as the fleet was sent it after one trip (in any vehicle)."""

    at: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Driver:
    """A person as one fleet knows them: the pseudonym, the portable score now (``None``
    with too little driving), its history, and until when the fleet may see it (``None``:
    no valid ``score`` consent, so no score)."""

    pseudonym: str
    score: float | None
    until: str | None
    history: tuple[ScorePoint, ...]
    trips: int
    person_id: str = field(repr=False, default="")
    consent: str = field(repr=False, default="")  # the score consent's exchange-log reference

    @property
    def trend(self) -> float | None:
        """The change of the score over the last trip, if two scores are known."""
        known = [p.score for p in self.history if p.score is not None]
        return round(known[-1] - known[-2], 1) if len(known) >= 2 else None

    def shown(self, recipient: str) -> Shown | None:
        """The exchange-log entry for showing this score, if one is shown."""
        if self.until is None or not self.history:
            return None
        return Shown(self.person_id, recipient, "score", None, cats.SCORE, self.history[-1].at,
                     self.consent)


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle of the fleet: its gateways, when the registry last heard of it, its last
    trip the fleet received."""

    vin: str
    vehicle_class: str | None
    devices: tuple[str, ...]
    last_seen: str | None
    last_trip: Copy | None


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway as its operator sees it: its latest health record and its last ack."""

    device: str
    vin: str
    fleet: str
    revoked_at: str | None
    health_at: str | None
    queue_depth: int | None
    frames_per_s: float | None
    errors: dict[str, int]
    last_ack: str | None
    last_ack_age_s: float | None


def instant(text: str) -> datetime:
    """A stored instant (wire form, or the store's own with microseconds) as a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now_utc() -> datetime:
    """The current instant (UTC)."""
    return datetime.now(UTC)


class FleetView:
    """Everything ``fleet`` may see, read from the store on demand."""

    def __init__(self, store: Store, fleet: str) -> None:
        self.store = store
        self.fleet = fleet
        self._republisher = Republisher(store)

    def devices(self) -> list[Device]:
        """The fleet's gateways (revoked or not), by id."""
        return [d for d in self.store.devices() if d.fleet == self.fleet]

    def copies(self, kinds: Sequence[str] = FLEET_KINDS, *, vin: str | None = None,
               last: int | None = None) -> list[Copy]:  # fmt: skip
        """The copies the fleet received of its vehicles' records (of ``kinds``, of one
        vehicle), oldest first; ``last``: only the newest so many per device."""
        out: list[Copy] = []
        for device in self.devices():
            if vin is None or device.vin == vin:
                rows = self.store.device_records(device.id, kinds, last=last)
                out.extend(c for row in rows if (c := self._copy(row)) is not None)
        out.sort(key=lambda c: (parse_ts(c.ts), c.device, c.seq))
        return out

    def _copy(self, row: StoredRecord) -> Copy | None:
        try:
            record = parse_record(split(row.jws).payload)
        except ProtocolError as exc:  # stored means verified: only a damaged database
            log.warning("%s/%d: stored record unreadable: %s", row.device, row.seq, exc)
            return None
        fanned = self._republisher.fanout([Accepted(record, row.jws, row.hash)])
        topic = fleet_topic(self.fleet, record.kind)
        for pub in fanned.publications:
            if pub.topic == topic:
                value = json.loads(pub.payload)
                person_id = (self.store.session_person(record.session)
                             if value["person"] and record.session else None)
                consent = pub.exchange.consent if pub.exchange else "pre-consented"
                return Copy(record.kind, record.device, record.vin, record.seq, record.ts,
                            value["person"], value["body"], row.received_at,
                            tuple(value.get("redacted", ())), person_id, consent)  # fmt: skip
        return None

    def vehicles(self) -> list[Vehicle]:
        """The fleet's vehicles, by VIN, with last seen and last trip."""
        classes = {v.vin: v.vehicle_class for v in self.store.vehicles()}
        by_vin: dict[str, list[Device]] = {}
        for device in self.devices():
            by_vin.setdefault(device.vin, []).append(device)
        out = []
        for vin, devices in sorted(by_vin.items()):
            seen = [r.received_at for d in devices for r in self.store.device_records(d.id, last=1)]
            trips = self.copies(("trip",), vin=vin, last=_LAST_TRIPS)
            out.append(Vehicle(vin, classes.get(vin), tuple(d.id for d in devices),
                               max(seen) if seen else None, trips[-1] if trips else None))
        return out

    def vehicle(self, vin: str) -> Vehicle:
        """One of the fleet's vehicles; raises ``NotFound`` for any other VIN."""
        for vehicle in self.vehicles():
            if vehicle.vin == vin:
                return vehicle
        raise NotFound(f"fleet {self.fleet!r} has no vehicle {vin!r}")

    def drivers(self, at: datetime | None = None) -> list[Driver]:
        """Every person the fleet knows: who drove its vehicles under a consent it received,
        and who consented ``score`` to it; by pseudonym."""
        at = at or now_utc()
        secret = self.store.pseudonym_secret()
        trips: dict[str, int] = {}
        for copy in self.copies(("trip", "session.start")):
            if copy.person_id is not None:
                trips[copy.person_id] = trips.get(copy.person_id, 0) + (copy.kind == "trip")
        persons = set(trips)
        for person in self.store.persons():
            if person.id not in persons and any(c.recipient == self.fleet
                                                for c in self.store.person_consents(person.id)):
                persons.add(person.id)
        drivers = [self._driver(p, fleet_pseudonym(secret, self.fleet, p), trips.get(p, 0), at)
                   for p in persons]  # fmt: skip
        return sorted(drivers, key=lambda d: d.pseudonym)

    def driver(self, pseudonym: str, at: datetime | None = None) -> tuple[Driver, list[Copy]]:
        """The person the fleet knows as ``pseudonym`` and their trips in its vehicles;
        raises ``NotFound`` for a pseudonym the fleet does not know."""
        try:
            person = person_of(self.store, self.fleet, pseudonym)
        except FleetError:
            raise NotFound(f"fleet {self.fleet!r} knows no driver {pseudonym!r}") from None
        trips = [c for c in self.copies(("trip",)) if c.person_id == person]
        known = {d.person_id for d in self.drivers(at)}
        if person not in known:  # a person of another fleet only
            raise NotFound(f"fleet {self.fleet!r} knows no driver {pseudonym!r}")
        return self._driver(person, pseudonym, len(trips), at or now_utc()), trips

    def _driver(self, person: str, pseudonym: str, trips: int, at: datetime) -> Driver:
        grant = ConsentView.of(self.store, person).recipients(cats.SCORE, at, current=True).get(
            self.fleet)
        score = score_of(self.store, person, at) if grant is not None else None
        return Driver(pseudonym, None if score is None else round(score, 1),
                      None if grant is None else grant.until_text,
                      tuple(self.score_history(person)), trips, person,
                      "" if grant is None else grant.ref)  # fmt: skip

    def score_history(self, person: str) -> list[ScorePoint]:
        """The scores the fleet was sent: after every trip of the person (in any vehicle) at
        whose end a ``score`` consent to the fleet was valid, the score over the trips up
        to it."""
        rows = list(self.store.trips(person))
        totals = [TripTotals(parse_ts(t.end), t.distance_km, t.penalty_points) for t in rows]
        points = []
        for i, row in enumerate(rows):
            end = parse_ts(row.end)
            if self.fleet in score_recipients(self.store, person, end):
                score = person_score(totals[: i + 1], end)
                points.append(ScorePoint(format_ts(end.timestamp()),
                                         None if score is None else round(score, 1)))
        return points


def shown_of(recipient: str, items: Iterable[Copy | Driver]) -> list[Shown]:
    """The exchange-log entries for showing ``items`` to ``recipient``."""
    return [s for item in items if (s := item.shown(recipient)) is not None]


class OperatorView:
    """The registry operator's view: gateways with their latest health, rejections."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def gateways(self, at: datetime | None = None) -> list[Gateway]:
        """Every enrolled gateway, by id, with its latest health record and last ack."""
        at = at or now_utc()
        out = []
        for device in self.store.devices():
            health = self.store.device_records(device.id, ("health",), last=1)
            last = self.store.device_records(device.id, last=1)
            body: dict[str, Any] = {}
            if health:
                try:
                    body = json.loads(split(health[0].jws).payload)["body"]
                except (ProtocolError, ValueError, KeyError) as exc:
                    log.warning("%s: health record unreadable: %s", device.id, exc)
            ack = last[0].received_at if last else None
            out.append(Gateway(
                device.id, device.vin, device.fleet, device.revoked_at,
                health[0].ts if health else None, body.get("queue_depth"),
                body.get("frames_per_s"), dict(body.get("errors", {})), ack,
                None if ack is None else max(0.0, (at - instant(ack)).total_seconds()),
            ))  # fmt: skip
        return out

    def rejections(self) -> dict[str, int]:
        """Rejected records by reason since the store was created."""
        return dict(sorted(self.store.rejections().items()))
