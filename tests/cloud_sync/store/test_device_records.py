"""``Store.device_records``, the read the web dashboard makes (``cloud_sync.web``): a device's
accepted records with their JWS and arrival, by kind, the last few, on every back end."""

from __future__ import annotations

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import Store
from msp_protocol.jws import record_hash
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, event, trip


def test_device_records_by_kind_and_last(store: Store, device_ca: DeviceCa,
                                         card_issuer: CardIssuer) -> None:  # fmt: skip
    gw = Gateway("gw-1", "JT1234567")
    store.enroll(gw.device_row(device_ca))
    tokens = [gw.sign(trip(), "trip"), gw.sign(event(), "event"), gw.sign(trip(3.0), "trip")]
    ingestor = Ingestor(store, card_issuer.anchors())
    ingestor.process([(rec_topic("gw-1"), t.encode()) for t in tokens])
    rows = store.device_records("gw-1")
    kinds = ("trip", "event", "trip")
    assert [(r.seq, r.kind, r.jws, r.hash) for r in rows] == [
        (i + 1, k, t, record_hash(t)) for i, (k, t) in enumerate(zip(kinds, tokens, strict=True))
    ]
    assert all(r.device == "gw-1" and r.session is None and r.received_at for r in rows)
    assert [r.seq for r in store.device_records("gw-1", ["trip"])] == [1, 3]
    assert [r.seq for r in store.device_records("gw-1", ["trip"], last=1)] == [3]
    assert [r.seq for r in store.device_records("gw-1", last=2)] == [2, 3]
    assert store.device_records("gw-1", []) == []
    assert store.device_records("nope") == []
