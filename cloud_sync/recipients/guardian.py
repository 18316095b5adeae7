"""Guardians (``alerts``): dangerous events as they happen, and once a day a digest.

What counts as dangerous is decided here only, by event type and severity
(:data:`DANGEROUS`): major speeding, harsh braking, pedal misapplication (always critical),
continuous driving over the limit, and a crash. A minor event, or an event of another type
(idling, a seat belt), is never sent. A crash is told once, from its ``emergency`` record
(the gateway writes one with every ``crash`` event, which is then not told again).

Every message is signed by the registry (``cloud_sync.recipients.signing``) and names the
person only by the guardian's pairwise pseudonym; it carries no position (a guardian is told
*that* the driving turned dangerous, not where). The digest covers one Japan day (trips,
distance, events per 100 km, the score at the day's end against the day before).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

from msp_protocol import consent as cats
from msp_protocol import roles
from msp_protocol.bodies import Emergency, Event
from msp_protocol.records import format_ts

from ..consents import ConsentView
from ..store import Accepted, Exchange, Publication, Store
from .directory import of_role, pseudonym
from .signing import RegistrySigner
from .summaries import day_bounds, japan_day, sums, trip_end

#: The event types a guardian is told of, each with the severities that make it dangerous.
DANGEROUS: Final[dict[str, frozenset[str]]] = {
    "speeding": frozenset({"major", "critical"}),
    "harsh_braking": frozenset({"major", "critical"}),
    "pedal_misapplication": frozenset({"minor", "major", "critical"}),
    "continuous_driving": frozenset({"major", "critical"}),
    "crash": frozenset({"minor", "major", "critical"}),
}


def dangerous(event: Event) -> bool:
    """True if a guardian is to be told of ``event`` at once (:data:`DANGEROUS`)."""
    return event.severity in DANGEROUS.get(event.type, frozenset())


class GuardianSender:
    """Alerts for guardians, from committed records (a ``RoleSender``)."""

    role = roles.GUARDIAN

    def __init__(self, store: Store, signer: RegistrySigner) -> None:
        self.store = store
        self.signer = signer

    def for_record(self, acc: Accepted, person: str, view: ConsentView, at: datetime,
                   recipients: Sequence[str]) -> list[Publication]:  # fmt: skip
        """An alert for each guardian with ``alerts`` consented at ``at``, if the record is a
        dangerous event or a crash."""
        rec = acc.record
        body = rec.body
        if isinstance(body, Event) and dangerous(body) and body.type != "crash":
            alert = {"type": body.type, "severity": body.severity, "at": body.start,
                     "speed_kmh": body.speed_kmh, "peak": body.peak,
                     "duration_s": body.duration_s}  # fmt: skip
        elif isinstance(body, Emergency):
            alert = {"type": "crash", "severity": "critical", "at": body.detected_at,
                     "speed_kmh": body.speed_kmh, "peak": body.peak_decel_ms2,
                     "duration_s": 0.0}  # fmt: skip
        else:
            return []
        secret = self.store.pseudonym_secret()
        out = []
        for guardian in recipients:
            grant = view.allowing(guardian, cats.ALERTS, at)
            if grant is None:
                continue
            value = {"kind": "alert", "guardian": guardian,
                     "person": pseudonym(secret, guardian, person), **alert}  # fmt: skip
            exchange = Exchange(person, guardian, "alert", f"{rec.device}/{rec.seq}",
                                (cats.ALERTS,), format_ts(at.timestamp()), grant.ref)
            out.append(Publication(roles.role_topic(self.role, guardian, "alert"),
                                   self.signer.sign(value), exchange=exchange))  # fmt: skip
        return out


def digests(store: Store, now: datetime, day: date | None = None) -> list[Publication]:
    """The daily digest of every person for every guardian given ``alerts``: of ``day`` (a
    Japan day; default the day before ``now``'s, the last one that has ended), sent only if
    the consent is valid at the day's end. Trips outside the consent's time are left out."""
    if day is None:
        day = japan_day(now) - timedelta(days=1)
    start, end = day_bounds(day)
    guardians = sorted(of_role(store, roles.GUARDIAN))
    if not guardians:
        return []
    from ..republish import score_of  # noqa: PLC0415 - republish imports the role modules

    signer = RegistrySigner(store)
    secret = store.pseudonym_secret()
    out: list[Publication] = []
    for person in store.persons():
        view = ConsentView.of(store, person.id)
        rows = [r for r in store.person_rows(person.id, "trips") if start <= trip_end(r) < end]
        last = end - timedelta(milliseconds=1)
        for guardian in guardians:
            grant = view.allowing(guardian, cats.ALERTS, last)
            if grant is None:
                continue
            mine = [r for r in rows
                    if view.allowing(guardian, cats.ALERTS, trip_end(r)) is not None]
            total = sums(mine)
            score, before = score_of(store, person.id, end), score_of(store, person.id, start)
            value = {"kind": "digest", "guardian": guardian, "day": day.isoformat(),
                     "person": pseudonym(secret, guardian, person.id), "trips": total.trips,
                     "distance_km": round(total.distance_km, 1),
                     "events_per_100km": total.events_per_100km,
                     "score": None if score is None else round(score, 1),
                     "score_before": None if before is None else round(before, 1)}  # fmt: skip
            exchange = Exchange(person.id, guardian, "digest", None, (cats.ALERTS,),
                                format_ts(last.timestamp()), grant.ref)
            out.append(Publication(roles.role_topic(roles.GUARDIAN, guardian, "digest"),
                                   signer.sign(value), exchange=exchange))  # fmt: skip
    return out
