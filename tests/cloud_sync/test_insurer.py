"""Insurers at the registry (both back ends, real card keys, the live path): the portable score
with ``score``, signed, under the insurer's own topic and pseudonym; with ``driving`` a monthly
summary equal to the sums over the person's trips, carrying no time finer than the month."""

from __future__ import annotations

import json
import re

from cloud_sync.pki import DeviceCa
from cloud_sync.recipients.insurer import monthly_summary, summaries
from cloud_sync.recipients.signing import open_signed
from cloud_sync.republish import score_of
from msp_protocol import bodies
from msp_protocol.records import format_ts, parse_ts
from tests.cloud_sync.recipient_kit import INSURER, CareRegistry, consent_body, logged_in
from tests.cloud_sync.test_consent_statements import db_url  # noqa: F401 - fixture
from tests.sync_kit import T0, CardIssuer, Gateway

#: Anything in a summary that looks like a day, a time or an instant.
FINER_THAN_MONTH = re.compile(r"\d{4}-\d{2}-\d{2}|T\d{2}:|\d{2}:\d{2}")


def trip_of(start: float, km: float, duration: float, night: float,
            events: dict[str, int]) -> bodies.Trip:  # fmt: skip
    return bodies.Trip(format_ts(start), format_ts(start + duration), km, None, duration,
                       90.0, None, None, 10.0, night, events, 2.0, 80.0)  # fmt: skip


def test_summary_equals_the_sums_and_names_no_finer_time(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-ins", "JTDKB20U793100002")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", INSURER, ("score", "driving"), T0 + 1),
                         "consent", "s-1"))
    trips = [trip_of(T0 + 100, 12.5, 1200, 0.0, {"harsh_braking": 1}),
             trip_of(T0 + 86400, 40.0, 2400, 0.5, {"speeding": 2, "harsh_braking": 1}),
             trip_of(T0 + 3 * 86400, 7.5, 600, 1.0, {})]
    speeding = bodies.Event("speeding", format_ts(T0 + 86400 + 60), 120.0, 82.0, 80.0, "major",
                            bodies.Location(35.1, 139.1))  # fmt: skip
    reg.send(gw, *(gw.sign(t, "trip", "s-1") for t in trips), gw.sign(speeding, "event", "s-1"))
    pubs = summaries(reg.store, "2026-11")
    assert len(pubs) == 1
    value = open_signed(pubs[0].payload, reg.key)
    assert value["distance_km"] == round(sum(t.distance_km for t in trips), 1) == 60.0
    assert value["trips"] == 3
    duration = sum(t.duration_s for t in trips)
    assert value["night_share"] == round(sum(t.night_share * t.duration_s for t in trips)
                                         / duration, 4)  # fmt: skip
    assert value["events_per_100km"] == round(100 * 4 / 60.0, 2)
    assert value["over_limit_share"] == round(120.0 / duration, 4)
    text = json.dumps(value)
    assert value["month"] == "2026-11" and not FINER_THAN_MONTH.search(text), text
    assert not {"location", "lat", "events", "vin", "session", "start", "end"} & set(value)
    assert pubs[0].topic == f"msp/v1/insurer/{INSURER}/summary/{value['person']}/2026-11"
    # the score, after each trip: signed, on the insurer's own topics, never a fleet's
    scores = reg.messages("insurer", INSURER)
    assert [t.split("/")[4] for t, _v in scores] == ["score"] * 3
    person = reg.store.persons()[0].id
    last = scores[-1][1]
    expected = score_of(reg.store, person, parse_ts(last["at"]))
    assert expected is not None and last["score"] == round(expected, 1)
    assert not [p for _i, p in reg.store.fanout_pending(1000)
                if p.topic.startswith(f"msp/v1/fleet/{INSURER}/")]


def test_no_summary_without_driving_and_none_of_trips_before_the_consent(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-ins", "JTDKB20U793100002")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    early = trip_of(T0 - 4000, 50.0, 3000, 0.0, {})  # ended before any consent
    reg.send(gw, gw.sign(early, "trip", "s-1"))
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", INSURER, ("score",), T0 + 10),
                         "consent", "s-1"))
    assert summaries(reg.store, "2026-11") == []  # score only: no summary
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", INSURER, ("driving",), T0 + 20),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(trip_of(T0 + 500, 10.0, 600, 0.0, {}), "trip", "s-1"))
    person = reg.store.persons()[0].id
    assert monthly_summary(reg.store, person, INSURER, "2026-11")["distance_km"] == 10.0
    assert monthly_summary(reg.store, person, INSURER, "2026-12")["trips"] == 0
