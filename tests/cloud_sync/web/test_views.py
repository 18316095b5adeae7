"""What the dashboard shows a fleet is exactly what its MQTT feed carried: the copies the
registry committed for publication, by the same consent rules; scores only under consent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.republish import Republisher
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.web.exchange_log import log_shown
from cloud_sync.web.views import FleetView, OperatorView, shown_of
from msp_protocol import bodies
from msp_protocol.topics import PREFIX, rec_topic
from tests.cloud_sync.web.conftest import Registry
from tests.cloud_sync.web.seed import person_of_card, seed
from tests.sync_kit import CardIssuer, Gateway, trip
from tests.sync_kit import event as sync_event


def test_fleet_copies_are_the_published_ones(registry: Registry) -> None:
    store = SqliteStore(registry.db)
    try:
        published: dict[str, list[dict[str, object]]] = {}
        for _id, pub in store.fanout_pending(1000):
            parts = pub.topic.split("/")
            if pub.topic.startswith(f"{PREFIX}/fleet/") and parts[4] not in ("score", "keys"):
                published.setdefault(parts[3], []).append(json.loads(pub.payload))
        for fleet in ("acme", "globex"):
            copies = FleetView(store, fleet).copies()
            mine = [(c.kind, c.device, c.seq, c.person, c.body) for c in copies]
            sent = [(p["kind"], p["device"], p["seq"], p["person"], p["body"])
                    for p in published[fleet]]
            assert sorted(mine, key=str) == sorted(sent, key=str) and mine
        acme = FleetView(store, "acme").copies()
        assert {c.device for c in acme} == {"gw-1", "gw-2"}  # never globex's vehicle
        assert all(c.kind != "health" for c in acme)
    finally:
        store.close()


def test_positions_only_where_consented(registry: Registry) -> None:
    store = SqliteStore(registry.db)
    try:
        events = FleetView(store, "acme").copies(("event",))
        by_driver = {c.person: c for c in events}
        alice, bob = registry.seeded.alice["acme"], registry.seeded.bob["acme"]
        assert by_driver[alice].body["location"] == {"lat": 35.68, "lon": 139.76}
        assert by_driver[alice].redacted == ()
        assert by_driver[bob].body["location"] is None
        assert by_driver[bob].redacted == ("body.location",)
    finally:
        store.close()


def test_drivers_by_pseudonym_with_consented_scores(registry: Registry) -> None:
    store = SqliteStore(registry.db)
    try:
        at = datetime(2026, 12, 1, tzinfo=UTC)
        drivers = {d.pseudonym: d for d in FleetView(store, "acme").drivers(at)}
        alice, bob = registry.seeded.alice, registry.seeded.bob
        assert set(drivers) == {alice["acme"], bob["acme"]}
        a = drivers[alice["acme"]]
        # alice's score pools her globex trip too: 4 acme trips and 1 globex trip
        assert a.trips == 4 and len(a.history) == 5 and a.score is not None
        assert a.until == "2027-11-26T00:00:00.000Z"
        assert a.trend == round(a.history[-1].score - a.history[-2].score, 1)  # type: ignore[operator]
        globex = {d.pseudonym: d for d in FleetView(store, "globex").drivers(at)}
        assert set(globex) == {alice["globex"]}  # bob never drove for globex nor consented it
        assert globex[alice["globex"]].score == a.score  # one portable score, two pseudonyms
        assert alice["acme"] != alice["globex"]
    finally:
        store.close()


def test_no_score_without_score_consent(tmp_path: Path, device_ca: DeviceCa,
                                        card_issuer: CardIssuer) -> None:  # fmt: skip
    store = SqliteStore(tmp_path / "r.db")
    try:
        gw = Gateway("gw-7", "JTNOSCORE01")
        store.enroll(gw.device_row(device_ca, "acme"))
        card = card_issuer.card()
        start = card.session_start(gw, "s-7", consents=(
            bodies.Consent("acme", ("driving",), "2027-11-26T00:00:00.000Z"),))
        tokens = [gw.sign(start, "session.start", "s-7"), gw.sign(trip(40.0, 2.0), "trip", "s-7")]
        ingestor = Ingestor(store, card_issuer.anchors())
        ingestor.process([(rec_topic("gw-7"), t.encode()) for t in tokens])
        [driver] = FleetView(store, "acme").drivers()
        assert driver.trips == 1 and driver.score is None and driver.until is None
        assert driver.history == () and driver.shown("acme") is None
        [copy] = FleetView(store, "acme").copies(("trip",))
        shown = copy.shown("acme")
        assert shown is not None and shown.person_id == person_of_card(card)
        assert shown.category == "driving" and shown.record == "gw-7/2"
        assert FleetView(store, "other").drivers() == []
    finally:
        store.close()


def test_every_shown_item_of_a_person_is_logged(registry: Registry) -> None:
    store = SqliteStore(registry.db)
    try:
        view = FleetView(store, "acme")
        copies = view.copies()
        shown = shown_of("acme", [*copies, *view.drivers()])
        with_person = [c for c in copies if c.person is not None]
        assert len(shown) == len(with_person) + 2  # every copy of a person, and two scores
        assert {s.recipient for s in shown} == {"acme"}
        assert log_shown(store, shown) == len(shown)
        # each person's log now holds exactly what was shown, with the consent behind it
        for person in {s.person_id for s in shown}:
            rows = [r for r in store.exchanges(person) if r.status == "shown"]
            mine = sorted((s.kind, s.record, s.data_time, s.consent) for s in shown
                          if s.person_id == person)  # fmt: skip
            assert sorted((r.exchange.kind, r.exchange.record, r.exchange.data_time,
                           r.exchange.consent) for r in rows) == mine  # fmt: skip
            assert all(r.exchange.recipient == "acme" for r in rows)
            assert all(r.exchange.consent.startswith(("session:", "consent:", "pre-consented"))
                       for r in rows)  # fmt: skip
            scores = [r for r in rows if r.exchange.kind == "score"]
            assert all(r.exchange.categories == ("score",) and r.exchange.consent
                       for r in scores)  # fmt: skip
    finally:
        store.close()


def test_operator_sees_health_and_rejections(registry: Registry) -> None:
    store = SqliteStore(registry.db)
    try:
        view = OperatorView(store)
        gateways = {g.device: g for g in view.gateways()}
        assert gateways["gw-2"].queue_depth == 57 and gateways["gw-2"].errors == {"can_bus_off": 1}
        assert gateways["gw-1"].frames_per_s == 412.0 and gateways["gw-3"].fleet == "globex"
        assert all(gateways[d].last_ack_age_s is not None and gateways[d].last_ack_age_s >= 0  # type: ignore[operator]
                   for d in ("gw-1", "gw-2", "gw-3"))
        assert view.rejections() == {"malformed": 1}
    finally:
        store.close()


def test_seed_is_repeatable_on_a_fresh_store(tmp_path: Path, device_ca: DeviceCa,
                                             card_issuer: CardIssuer) -> None:  # fmt: skip
    store = SqliteStore(tmp_path / "again.db")
    try:
        seeded = seed(store, device_ca, card_issuer)
        assert len(FleetView(store, "acme").vehicles()) == 2
        assert seeded.alice["acme"].startswith("fp-")
    finally:
        store.close()


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.sets(st.sampled_from(("driving", "maintenance", "score", "location")),
                        min_size=1),
                min_size=1, max_size=3),
       st.booleans())  # fmt: skip
def test_view_equals_the_published_copies_under_any_consents(
        tmp_path_factory: pytest.TempPathFactory, device_ca: DeviceCa, card_issuer: CardIssuer,
        consents: list[set[str]], other_fleet: bool) -> None:  # fmt: skip
    store = SqliteStore(tmp_path_factory.mktemp("prop") / "r.db")
    try:
        gw = Gateway("gw-p", "JTPROP00001")
        store.enroll(gw.device_row(device_ca, "acme"))
        ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
        card = card_issuer.card()
        tokens = []
        for n, categories in enumerate(consents):
            sid = f"s-{n}"
            grant = bodies.Consent("globex" if other_fleet and n == 0 else "acme",
                                   tuple(sorted(categories)), "2027-11-26T00:00:00.000Z")
            tokens.append(gw.sign(card.session_start(gw, sid, consents=(grant,)),
                                  "session.start", sid))  # fmt: skip
            tokens += [gw.sign(trip(20.0 + n, 1.0), "trip", sid),
                       gw.sign(sync_event(), "event", sid),
                       gw.sign(bodies.Dtc((bodies.TroubleCode("P0301", "stored"),), True, None),
                               "dtc", sid)]  # fmt: skip
        tokens.append(gw.sign(trip(5.0, 0.0), "trip"))  # no session: the fleet's as is
        ingestor.process([(rec_topic("gw-p"), t.encode()) for t in tokens])
        sent = sorted((json.loads(p.payload) for _, p in store.fanout_pending(1000)
                       if p.topic.split("/")[3:4] == ["acme"]
                       and p.topic.split("/")[4] not in ("score", "keys")), key=str)  # fmt: skip
        view = FleetView(store, "acme")
        mine = sorted(({"kind": c.kind, "device": c.device, "vin": c.vin, "seq": c.seq,
                        "ts": c.ts, "person": c.person, "body": c.body}
                       for c in view.copies()), key=str)  # fmt: skip
        assert mine == sorted(({k: p[k] for k in ("kind", "device", "vin", "seq", "ts", "person",
                                                   "body")} for p in sent), key=str)  # fmt: skip
        scored = [d for d in view.drivers() if d.until is not None]
        assert bool(scored) == any("score" in c for i, c in enumerate(consents)
                                   if not (other_fleet and i == 0))
    finally:
        store.close()
