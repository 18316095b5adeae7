"""Insurers: with ``score``, the person's portable score (as fleets get it); with ``driving``,
a monthly summary and nothing finer.

The summary of a Japan month (``YYYY-MM``): distance, number of trips, night share (of
driving time), events per 100 km and the share of driving time over the speed limit (the
``speeding`` events' durations over the trips' durations). It never carries an individual
event, a time finer than the month, a position, a VIN or a session: the insurer learns how
the person drives, not where or when. Trips (and speeding events) whose time the person's
``driving`` consent to the insurer did not cover are left out. Every message is signed by the
registry and names the person by the insurer's pairwise pseudonym.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from msp_protocol import consent as cats
from msp_protocol import roles
from msp_protocol.records import format_ts, parse_ts

from ..consents import ConsentView, Grant
from ..store import Accepted, Exchange, Publication, Store
from .directory import of_role, pseudonym
from .signing import RegistrySigner
from .summaries import month_bounds, sums, trip_end


def score_topic(insurer: str, name: str) -> str:
    """Retained topic of one person's score as ``insurer`` knows the person."""
    return roles.role_topic(roles.INSURER, insurer, "score", name)


class InsurerSender:
    """Scores for insurers after each trip (a ``RoleSender``)."""

    role = roles.INSURER

    def __init__(self, store: Store, signer: RegistrySigner) -> None:
        self.store = store
        self.signer = signer

    def for_record(self, acc: Accepted, person: str, view: ConsentView, at: datetime,
                   recipients: Sequence[str]) -> list[Publication]:  # fmt: skip
        """The person's new score for every insurer consented ``score`` (now, not revoked)."""
        if acc.record.kind != "trip":
            return []
        allowed: dict[str, Grant] = view.recipients(cats.SCORE, at, current=True)
        mine = [r for r in recipients if r in allowed]
        if not mine:
            return []
        from ..republish import score_of  # noqa: PLC0415 - republish imports this module

        score = score_of(self.store, person, at)
        secret = self.store.pseudonym_secret()
        rec = acc.record
        out = []
        for insurer in mine:
            grant = allowed[insurer]
            name = pseudonym(secret, insurer, person)
            value = {"kind": "score", "insurer": insurer, "person": name,
                     "score": None if score is None else round(score, 1),
                     "at": format_ts(at.timestamp()), "until": grant.until_text}  # fmt: skip
            exchange = Exchange(person, insurer, "score", f"{rec.device}/{rec.seq}",
                                (cats.SCORE,), format_ts(at.timestamp()), grant.ref)
            out.append(Publication(score_topic(insurer, name), self.signer.sign(value),
                                   retain=True, expires=format_ts(grant.until.timestamp()),
                                   exchange=exchange))  # fmt: skip
        return out


def monthly_summary(store: Store, person: str, insurer: str, month: str,
                    view: ConsentView | None = None) -> dict[str, object]:  # fmt: skip
    """The summary of ``person``'s driving in Japan ``month`` for ``insurer`` (see the module
    docstring); only trips and events the ``driving`` consent covered at their time."""
    start, end = month_bounds(month)
    view = view or ConsentView.of(store, person)

    def covered(at: datetime) -> bool:
        return view.allowing(insurer, cats.DRIVING, at) is not None

    trips = [r for r in store.person_rows(person, "trips")
             if start <= trip_end(r) < end and covered(trip_end(r))]  # fmt: skip
    over = sum(float(str(e["duration_s"])) for e in store.person_rows(person, "events")
               if e["type"] == "speeding" and start <= parse_ts(str(e["start"])) < end
               and covered(parse_ts(str(e["start"]))))  # fmt: skip
    total = sums(trips)
    return {"kind": "summary", "insurer": insurer, "month": month,
            "person": pseudonym(store.pseudonym_secret(), insurer, person),
            "trips": total.trips, "distance_km": round(total.distance_km, 1),
            "night_share": total.night_share, "events_per_100km": total.events_per_100km,
            "over_limit_share": None if total.duration_s <= 0
            else round(min(1.0, over / total.duration_s), 4)}  # fmt: skip


def summaries(store: Store, month: str) -> list[Publication]:
    """The summary of ``month`` for every insurer and every person who consented ``driving``
    to it at some point of the month (retained per person and month)."""
    start, end = month_bounds(month)
    insurers = sorted(of_role(store, roles.INSURER))
    signer = RegistrySigner(store)
    out: list[Publication] = []
    for person in store.persons():
        view = ConsentView.of(store, person.id)
        for insurer in insurers:
            grants = [g for g in view.grants if g.recipient == insurer
                      and cats.DRIVING in g.categories and g.signed_at < end
                      and g.until > start]  # fmt: skip
            if not grants:
                continue
            value = monthly_summary(store, person.id, insurer, month, view)
            last = end - timedelta(milliseconds=1)
            exchange = Exchange(person.id, insurer, "summary", None, (cats.DRIVING,),
                                format_ts(min(last, max(g.until for g in grants)
                                              - timedelta(milliseconds=1)).timestamp()),
                                grants[0].ref)  # fmt: skip
            topic = roles.role_topic(roles.INSURER, insurer, "summary", str(value["person"]),
                                     month)  # fmt: skip
            out.append(Publication(topic, signer.sign(value), retain=True, exchange=exchange))
    return out
