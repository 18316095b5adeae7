"""A new card is the same person, end to end: two virtual cards in the two slots of a real
pcscd/vpcd reader, ``msp-agent card succeed``, the registry process on mosquitto. After the
move, the new card logs in as the same person (same trips, same consents); the old card is
refused, at login and for consents."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from cloud_sync.store.sqlite import SqliteStore
from edge_agent.card.image import make_test_card
from edge_agent.card.licence import LicenceData
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.cli import main as agent_main
from edge_agent.identity.binding import Consent, iso_utc
from edge_agent.identity.pin_entry import FixedPinEntry
from edge_agent.identity.session import DriverSession, LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.records import session_start_body
from edge_agent.uplink import MqttUplink
from tests.cloud_sync.test_consent_flow import FLEET, PIN, ConsentKit, trip_ending
from tests.sync_deploy import UplinkThread, wait_for

OLD_READER, NEW_READER = f"{READER_NAME} 00 00", f"{READER_NAME} 00 01"


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def login(kit: ConsentKit, reader: str) -> DriverSession:
    """The real login over PC/SC at the kit's gateway, consenting driving to the fleet."""
    until = iso_utc(datetime.now(UTC) + timedelta(days=30))
    config = LoginConfig(kit.gw.vin, kit.gw.device, "car",
                         TrustStore((kit.issuer.certificate,)),
                         (Consent(FLEET, ("driving",), until),))  # fmt: skip
    transport = PcscTransport(reader)
    wait_for(transport.card_present, f"a card in {reader}")
    try:
        return SessionManager(config, FixedPinEntry(PIN)).login(transport)
    finally:
        transport.disconnect()


def upload(kit: ConsentKit, outbox: Outbox, records: list[NewRecord]) -> None:
    outbox.append_many(records)
    with UplinkThread(MqttUplink(kit.deploy.uplink_config(kit.gw), outbox)):
        wait_for(lambda: outbox.stats().rows == 0, "the records acked")


def test_the_new_card_is_the_same_person_and_the_old_one_is_refused(
    tmp_path: Path, pcscd: PrivatePcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = ConsentKit.make(tmp_path)
    licence = LicenceData(date(2030, 1, 31), ("普通",))
    old = VpcdCard(VirtualCard(make_test_card(kit.issuer, pin=PIN, licence=licence)),
                   port=pcscd.port)  # fmt: skip
    new = VpcdCard(VirtualCard(make_test_card(kit.issuer, pin=PIN, licence=licence)),
                   port=pcscd.port + 1)  # fmt: skip
    outbox = kit.gw.open_outbox()
    try:
        kit.deploy.start_registry()
        capsys.readouterr()
        old.insert()
        new.insert()
        first = login(kit, OLD_READER)
        at = first.started.timestamp()
        upload(kit, outbox, [NewRecord(session_start_body(first.start), at, first.id),
                             NewRecord(trip_ending(at + 0.1, km=30.0), at + 0.1, first.id)])
        with UplinkThread(MqttUplink(kit.deploy.uplink_config(kit.gw), outbox)):
            code = agent_main(["card", "succeed", "--new-reader", NEW_READER, "--json",
                               *kit.card_args(), *kit.reply_args()])  # fmt: skip
        answer = json.loads(capsys.readouterr().out)
        assert code == 0 and answer["succeeded"] is True
        # the new card logs in: the same person; the old card's login binds nobody now
        second = login(kit, NEW_READER)
        third = login(kit, OLD_READER)
        now = time.time()
        upload(kit, outbox, [
            NewRecord(session_start_body(second.start), second.started.timestamp(), second.id),
            NewRecord(trip_ending(now + 0.1, km=20.0), now + 0.1, second.id),
            NewRecord(session_start_body(third.start), third.started.timestamp(), third.id),
        ])  # fmt: skip
        # a consent signed with the old card is refused by the registry
        assert agent_main(["card", "consent", "grant", FLEET, "--categories", "score",
                           "--days", "10", *kit.card_args()]) == 0  # fmt: skip
        upload(kit, outbox, [])
        wait_for(lambda: "card act seq" in (kit.deploy.root / "registry.log").read_text(),
                 "the registry refusing the old card's consent")  # fmt: skip
    finally:
        old.remove()
        new.remove()
        outbox.close()
        kit.deploy.stop()

    store = SqliteStore(kit.deploy.db)
    try:
        (person,) = store.persons()
        sessions = {s.id: s.person_id for s in store.sessions()}
        trips = store.trips(person.id)
        rejections = store.rejections()
        statements = store.consent_statements(person.id)
    finally:
        store.close()
    assert sessions == {first.id: person.id, second.id: person.id}  # the old card's: none
    assert [t.distance_km for t in trips] == [30.0, 20.0]  # everything under one person
    assert rejections["card_succeeded"] == 2  # the old card's login and its consent
    assert statements == []
