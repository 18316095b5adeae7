"""Guardians at the registry (real store on both back ends, real card keys, the live ingest and
fan-out path): an elderly driver's pedal misapplication reaches the guardian as it happens,
a minor event does not, nothing after the revocation; the daily digest in Japan days."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cloud_sync.pki import DeviceCa
from cloud_sync.recipients.directory import pseudonym
from cloud_sync.recipients.guardian import DANGEROUS, dangerous, digests
from cloud_sync.recipients.signing import open_signed
from cloud_sync.recipients.watch import Checker
from msp_protocol.records import format_ts
from tests.cloud_sync.recipient_kit import (
    FLEET,
    GUARDIAN,
    CareRegistry,
    consent_body,
    crash,
    event,
    logged_in,
)
from tests.cloud_sync.test_consent_statements import db_url  # noqa: F401 - fixture
from tests.sync_kit import T0, CardIssuer, Gateway, trip


def test_dangerous_is_decided_by_type_and_severity() -> None:
    assert dangerous(event("pedal_misapplication", "critical", T0))
    assert dangerous(event("speeding", "major", T0))
    assert not dangerous(event("speeding", "minor", T0))
    assert not dangerous(event("harsh_braking", "minor", T0))
    assert not dangerous(event("seatbelt", "critical", T0))
    assert set(DANGEROUS) == {"speeding", "harsh_braking", "pedal_misapplication",
                              "continuous_driving", "crash"}


def test_pedal_misapplication_reaches_the_guardian_a_minor_event_does_not(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(event("harsh_braking", "minor", T0 + 100), "event", "s-1"),
             gw.sign(event("pedal_misapplication", "critical", T0 + 200), "event", "s-1"))
    got = reg.messages("guardian", GUARDIAN)
    assert [v["type"] for _t, v in got] == ["pedal_misapplication"]
    topic, alert = got[0]
    assert topic == f"msp/v1/guardian/{GUARDIAN}/alert"
    person = reg.store.persons()[0].id
    assert alert["person"] == pseudonym(reg.store.pseudonym_secret(), GUARDIAN, person)
    assert alert["person"] != pseudonym(reg.store.pseudonym_secret(), FLEET, person)
    assert "location" not in alert and alert["at"] == format_ts(T0 + 200)
    log = [r.exchange for r in reg.store.exchanges(person) if r.exchange.recipient == GUARDIAN]
    assert [(e.kind, e.categories) for e in log] == [("alert", ("alerts",))]


def test_nothing_reaches_the_guardian_after_the_revocation(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(event("speeding", "major", T0 + 50), "event", "s-1"))
    reg.send(gw, gw.sign(consent_body(card, gw, "revoke", GUARDIAN, (), T0 + 60), "consent",
                         "s-1"))
    reg.send(gw, gw.sign(event("pedal_misapplication", "critical", T0 + 300), "event", "s-1"),
             gw.sign(event("harsh_braking", "major", T0 + 400), "event", "s-1"))
    assert [v["at"] for _t, v in reg.messages("guardian", GUARDIAN)] == [format_ts(T0 + 50)]


def test_a_consent_outside_the_role_is_refused_and_counted(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts", "location"),
                                      T0 + 1), "consent", "s-1"))  # fmt: skip
    reg.send(gw, gw.sign(event("pedal_misapplication", "critical", T0 + 200), "event", "s-1"))
    assert reg.messages("guardian", GUARDIAN) == []
    assert reg.acts.refused == {"role_category": 1}
    assert reg.store.rejections().get("role_category") == 1
    assert reg.store.consent_statements(reg.store.persons()[0].id) == []


def test_the_daily_digest_covers_one_japan_day(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    # T0 is 2026-11-18 11:06 UTC = 20:06 JST; a trip that day and one the next
    reg.send(gw, gw.sign(trip(20.0, 2.0, day=0), "trip", "s-1"),
             gw.sign(trip(30.0, 1.0, day=1), "trip", "s-1"))
    day0 = datetime.fromtimestamp(T0, UTC)
    assert day0.strftime("%Y-%m-%d %H") == "2026-11-18 11"
    pubs = digests(reg.store, datetime(2026, 11, 19, 3, 0, tzinfo=UTC))  # 12:00 JST on the 19th
    values = [open_signed(p.payload, reg.key) for p in pubs]
    assert [(v["day"], v["trips"], v["distance_km"]) for v in values] == [("2026-11-18", 1, 20.0)]
    assert values[0]["events_per_100km"] == 5.0  # one event in 20 km
    assert pubs[0].topic == f"msp/v1/guardian/{GUARDIAN}/digest"
    # 15:00 UTC on the 18th is already the 19th in Japan: the 18th's digest then
    late = digests(reg.store, datetime(2026, 11, 18, 15, 30, tzinfo=UTC))
    assert [open_signed(p.payload, reg.key)["day"] for p in late] == ["2026-11-18"]
    reg.send(gw, gw.sign(consent_body(card, gw, "revoke", GUARDIAN, (), T0 + 3 * 86400),
                         "consent", "s-1"))
    assert digests(reg.store, datetime(2026, 11, 25, 3, 0, tzinfo=UTC)) == []


def test_guardian_watch_prints_for_a_person_not_json(
        tmp_path: Path, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(f"sqlite:///{tmp_path / 'registry.db'}", card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(event("pedal_misapplication", "critical", T0 + 200, 12.0), "event",
                         "s-1"), gw.sign(trip(20.0, 2.0), "trip", "s-1"))  # fmt: skip
    checker = Checker(GUARDIAN, reg.key)
    pubs = [p for _i, p in reg.store.fanout_pending(100) if "/guardian/" in p.topic]
    pubs += digests(reg.store, datetime(2026, 11, 19, 3, 0, tzinfo=UTC))
    messages = [checker.feed(p.topic, p.payload) for p in pubs]
    lines = [line for m in messages if m is not None for line in m.lines]
    assert all(m is not None and m.check == "verified" for m in messages)
    assert lines[0].startswith("ALERT for fp-") and "pedal misapplication" in lines[0]
    assert "2026-11-18 20:10 JST, 12 km/h (critical)" in lines[0]
    assert lines[1].startswith("Daily digest for fp-") and "1 trip, 20.0 km" in lines[1]
    assert not any(line.lstrip().startswith("{") for line in lines)
    forged = checker.feed(pubs[0].topic, pubs[0].payload.replace(b".", b".x", 1))
    assert forged is not None and forged.check.startswith("REJECTED")


def test_a_crash_is_told_to_the_guardian_once(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    # the gateway writes an emergency record and a crash event for one crash
    reg.send(gw, gw.sign(crash(T0 + 300), "emergency", "s-1"),
             gw.sign(event("crash", "critical", T0 + 300), "event", "s-1"))
    assert [(v["type"], v["at"]) for _t, v in reg.messages("guardian", GUARDIAN)] == [
        ("crash", format_ts(T0 + 300))]


def test_the_registry_sends_each_day_s_digest_once_even_across_restarts(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    from cloud_sync.recipients.schedule import Timetable  # noqa: PLC0415

    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    logged_in(reg, card, gw)
    reg.send(gw, gw.sign(consent_body(card, gw, "grant", GUARDIAN, ("alerts",), T0 + 1),
                         "consent", "s-1"))
    reg.send(gw, gw.sign(trip(20.0, 2.0, day=0), "trip", "s-1"))
    clock = [datetime(2026, 11, 19, 3, 0, tzinfo=UTC)]  # 12:00 JST on the 19th
    timetable = Timetable(reg.store, lambda: clock[0])
    assert timetable.step() == 1
    assert timetable.step() == 0
    assert Timetable(reg.store, lambda: clock[0]).step() == 0  # a restart: the log says sent
    [(_topic, digest)] = [m for m in reg.messages("guardian", GUARDIAN) if m[1]["kind"] ==
                          "digest"]  # fmt: skip
    assert digest["day"] == "2026-11-18"
    clock[0] = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # the next day: the 19th's digest
    assert timetable.step() == 1


def test_a_login_consent_outside_the_role_is_counted_and_gives_nothing(
        db_url: str, card_issuer: CardIssuer, device_ca: DeviceCa) -> None:  # noqa: F811
    from msp_protocol.bodies import Consent  # noqa: PLC0415

    gw = Gateway("gw-eld", "JTDKB20U793100001")
    reg = CareRegistry(db_url, card_issuer, device_ca, gw)
    card = card_issuer.card()
    wrong = (Consent(GUARDIAN, ("driving", "location"), "2027-06-01T00:00:00.000Z"),)
    reg.send(gw, gw.sign(card.session_start(gw, "s-1", consents=wrong), "session.start", "s-1"))
    assert reg.store.rejections().get("consent_role_category") == 1
    reg.send(gw, gw.sign(event("pedal_misapplication", "critical", T0 + 200), "event", "s-1"))
    assert reg.messages("guardian", GUARDIAN) == []
