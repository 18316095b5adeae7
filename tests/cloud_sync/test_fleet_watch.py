"""The reference fleet subscriber's checks, fed the registry's real copies and key messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.broker_process import MosquittoProcess, free_port
from cloud_sync.fleet_watch import FleetChecker, FleetMessage, describe, watch
from cloud_sync.fleets import key_publication
from cloud_sync.republish import Republisher
from cloud_sync.store import Publication
from cloud_sync.worker import BrokerConfig
from msp_protocol import bodies
from msp_protocol.topics import rec_topic
from tests.sync_kit import Gateway, event, trip


def copies(ingestor, store, device_ca, card_issuer) -> tuple[Publication, list[Publication]]:
    gw = Gateway("gw-1", "JTCAR00001")
    device = gw.device_row(device_ca, fleet="acme")
    store.enroll(device)
    card = card_issuer.card()
    start = card.session_start(gw, "s-1", consents=(bodies.Consent(
        "acme", ("driving",), "2027-01-01T00:00:00Z"),))  # fmt: skip
    tokens = [gw.sign(trip(), "trip"), gw.sign(start, "session.start", "s-1"),
              gw.sign(event(), "event", "s-1")]  # fmt: skip
    outcome = ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])
    return key_publication("acme", device), list(Republisher(store).fanout(outcome.accepted)
                                                 .publications)  # fmt: skip


def test_records_wait_for_their_key_then_verify(ingestor, store, device_ca, card_issuer):
    key, pubs = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    trip_copy, start_copy, event_copy = pubs
    assert checker.feed(trip_copy.topic, trip_copy.payload) == []  # no key yet: held
    released = checker.feed(key.topic, key.payload)
    assert [(m.kind, m.check) for m in released] == [("keys", "registry"), ("trip", "verified")]
    assert [m.check for p in (start_copy, event_copy) for m in checker.feed(p.topic, p.payload)] \
        == ["no jws (carries the card certificate)", "no jws (body.location)"]


def test_a_copy_that_differs_from_what_was_signed_is_rejected(ingestor, store, device_ca,
                                                             card_issuer):  # fmt: skip
    key, (trip_copy, *_rest) = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    checker.feed(key.topic, key.payload)
    value = json.loads(trip_copy.payload)
    for field, forged in (("body", {**value["body"], "distance_km": 1.0}), ("seq", 9),
                          ("vin", "JTOTHER001")):  # fmt: skip
        [msg] = checker.feed(trip_copy.topic, json.dumps({**value, field: forged}).encode())
        assert msg.check == f"REJECTED: the copy's {field} is not what was signed"
    other = Gateway("gw-1", "JTCAR00001")  # same id, another key: a forged signature
    token = other.sign(trip(), "trip")
    [msg] = checker.feed(trip_copy.topic, json.dumps({**value, "jws": token}).encode())
    assert msg.check == "REJECTED: jws: jws.signature: signature does not verify"
    [msg] = checker.feed("msp/v1/fleet/acme/event", trip_copy.payload)
    assert msg.check == "REJECTED: a trip record on the event topic"


def test_bad_messages_are_named(ingestor, store, device_ca, card_issuer):
    key, _pubs = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    [msg] = checker.feed("msp/v1/fleet/other/trip", b"{}")
    assert msg.check == "REJECTED: not a topic of fleet acme"
    [msg] = checker.feed("msp/v1/fleet/acme/trip", b"\xff{")
    assert msg.check.startswith("REJECTED: payload is not JSON")
    [msg] = checker.feed("msp/v1/fleet/acme/trip", b"[1]")
    assert msg.check == "REJECTED: payload is not JSON: not a JSON object"
    bad_key = json.dumps({**json.loads(key.payload), "public_key_pem": "junk"}).encode()
    [msg] = checker.feed(key.topic, bad_key)
    assert msg.check.startswith("REJECTED: device gw-1: key: not a usable PEM public key")


def test_a_withdrawn_score_is_said_so() -> None:
    [msg] = FleetChecker("rental").feed("msp/v1/fleet/rental/score/fp-abc", b"")
    assert (msg.kind, msg.check, msg.text) == ("score", "registry",
                                               "score fp-abc withdrawn (consent ended)")


# --- what a person reads, and hostile messages: each rejected, counted, and the watch goes on


def test_human_lines_hold_no_python_values(ingestor, store, device_ca, card_issuer) -> None:
    key, (trip_copy, start_copy, event_copy) = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    lines = [m.text for p in (key, trip_copy, start_copy, event_copy)
             for m in checker.feed(p.topic, p.payload)]  # fmt: skip
    assert lines[0] == "key of gw-1 (EdDSA)"
    assert lines[1] == "trip JTCAR00001 #1 no driver 12.0 km, score 80.0"
    assert lines[2].endswith(" consents acme: driving until 2027-01-01T00:00:00Z")
    assert lines[3].endswith(" harsh_braking at (location withheld)")
    value = json.loads(event_copy.payload)
    shown = {
        "event": {**value, "body": {**value["body"], "location": {"lat": 35.68, "lon": 139.76}}},
        "trip": {**value, "person": None, "vin": None, "body": {"distance_km": 0.4, "score": None}},
        "dtc": {**value, "body": {"codes": [{"code": "P0301", "status": "confirmed"}]}},
        "emergency": {**value, "body": {"trigger": "crash", "speed_kmh": 48.0, "location": None}},
        "session.end": {**value, "body": {"reason": "card_removed"}},
        "score": {"person": "fp-1", "score": None, "at": "2026-11-26T01:00:00Z"},
    }
    texts = {kind: describe(kind, v) for kind, v in shown.items()}
    assert texts["event"].endswith(" harsh_braking at 35.68000,139.76000")
    assert texts["trip"] == "trip ? #3 no driver 0.4 km, no score (under 1 km)"
    assert texts["dtc"].endswith(" P0301") and texts["session.end"].endswith(" card_removed")
    assert texts["emergency"].endswith(" crash at (location withheld), 48.0 km/h")
    assert texts["score"] == "score fp-1 = none yet (too little driving) at 2026-11-26T01:00:00Z"
    for text in [*lines, *texts.values()]:
        assert "None" not in text and "{'" not in text and "['" not in text


def test_control_characters_are_escaped_and_long_values_cut() -> None:
    text = describe("session.end", {"vin": "\x1b[2J\x1b]0;owned\x07", "seq": 1,
                                    "body": {"reason": "x" * 500}})  # fmt: skip
    assert "\x1b" not in text and "\\x1b[2J" in text and "\\x07" in text
    assert text.endswith("…") and len(text) < 200


HOSTILE = [
    ("msp/v1/fleet/acme/trip", b"[" * 5000),  # json.loads: RecursionError
    ("msp/v1/fleet/acme/trip", b'{"seq": ' + b"9" * 5000 + b"}"),  # ValueError: int digits
    ("msp/v1/fleet/acme/trip", b'{"jws": 5, "device": "gw-1"}'),  # waits for gw-1's key
    ("msp/v1/fleet/acme/trip", b'{"jws": "a.b.c", "device": ["gw-1"]}'),
    ("msp/v1/fleet/acme/event", b'{"body": "x", "redacted": [1, {"a": null}]}'),
    ("msp/v1/fleet/acme/dtc", b'{"body": {"codes": [1, null, "P0"]}}'),
    ("msp/v1/fleet/acme/keys/gw-1", b'{"device": "gw-1", "public_key_pem": 7}'),
    ("msp/v1/fleet/acme/keys/gw-2", b'{"device": "gw-1", "public_key_pem": "x"}'),
    ("msp/v1/fleet/acme/keys", b"{}"),
    ("msp/v1/fleet/acme/nosuchkind", b"{}"),
    ("msp/v1/fleet/acme/trip/extra", b"{}"),
    ("msp/v1/fleet/acme/score/fp-1/x", b"{}"),
]


def test_hostile_messages_are_rejected_and_counted_and_the_feed_goes_on(
    ingestor, store, device_ca, card_issuer
) -> None:
    key, (trip_copy, *_rest) = copies(ingestor, store, device_ca, card_issuer)
    checker = FleetChecker("acme")
    results = [checker.feed(topic, payload) for topic, payload in HOSTILE]
    checks = [m.check for r in results for m in r]
    assert results[4][0].check == "no jws (1, {\"a\":null})"  # no JWS: shown, not verified
    assert results[5][0].text.endswith(" 1,?,P0")
    assert results[2] == []  # held until its device's key comes
    rejected = [c for c in checks if c.startswith("REJECTED")]
    assert len(rejected) == len(HOSTILE) - 3 == sum(checker.rejected.values())
    assert "REJECTED: payload is not JSON: nested too deeply" in checks
    released = checker.feed(key.topic, key.payload) + checker.feed(trip_copy.topic,
                                                                   trip_copy.payload)
    assert [(m.kind, m.check) for m in released] == [
        ("keys", "registry"), ("trip", "REJECTED: jws: not a string"), ("trip", "verified")]
    assert sum(checker.rejected.values()) == len(HOSTILE) - 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["kind", "device", "vin", "seq", "body", "jws", "person", "redacted",
                         "codes", "code", "location", "statement", "consents", "public_key_pem",
                         "score", "lat", "lon", "categories"]), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
topics = st.one_of(
    st.builds(lambda kind, rest: f"msp/v1/fleet/acme/{kind}{rest}",
              st.sampled_from(["trip", "event", "dtc", "emergency", "session.start",
                               "session.end", "score", "keys", "health", "x", ""]),
              st.sampled_from(["", "/gw-1", "/fp-1", "/a/b"])),
    st.text(max_size=30),
)  # fmt: skip
payloads = st.one_of(st.binary(max_size=200),
                     json_values.map(lambda v: json.dumps(v).encode()),
                     st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(0, 20_000)))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(messages=st.lists(st.tuples(topics, payloads), min_size=1, max_size=4))
def test_any_message_is_checked_or_rejected_and_never_stops_the_feed(
    messages: list[tuple[str, bytes]], fleet_copies: tuple[Publication, list[Publication]]
) -> None:
    key, (trip_copy, *_rest) = fleet_copies
    checker = FleetChecker("acme")
    for topic, payload in messages:
        for message in checker.feed(topic, payload):
            assert isinstance(message, FleetMessage) and isinstance(message.text, str)
            assert "None" not in message.text or "None" in topic + payload.decode(errors="replace")
    before = sum(checker.rejected.values())
    released = checker.feed(key.topic, key.payload) + checker.feed(trip_copy.topic,
                                                                   trip_copy.payload)
    assert ("trip", "verified") in [(m.kind, m.check) for m in released]
    assert sum(checker.rejected.values()) == before


@pytest.fixture
def fleet_copies(ingestor, store, device_ca, card_issuer) -> tuple[Publication, list[Publication]]:
    return copies(ingestor, store, device_ca, card_issuer)


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[int]:
    """A loopback mosquitto that lets anyone in (the feed's messages are what is tested)."""
    if not MosquittoProcess.available():
        pytest.skip("mosquitto is not installed")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    with MosquittoProcess(config, (port,)):
        yield port


def test_watch_on_a_real_broker_prints_rejections_and_goes_on(
    open_broker: int, fleet_copies: tuple[Publication, list[Publication]]
) -> None:
    key, (trip_copy, *_rest) = fleet_copies
    url = f"mqtt://127.0.0.1:{open_broker}"
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="feed")
    publisher.connect("127.0.0.1", open_broker)
    publisher.loop_start()
    hostile = [("msp/v1/fleet/acme/event", b"[" * 5000),
               ("msp/v1/fleet/acme/dtc", b'{"seq": ' + b"9" * 5000 + b"}"),
               ("msp/v1/fleet/acme/health", b"\xff\xfe")]  # fmt: skip
    for topic, payload in [*hostile, (key.topic, key.payload), (trip_copy.topic,
                                                                 trip_copy.payload)]:
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    publisher.loop_stop()
    publisher.disconnect()
    broker = BrokerConfig(url=url, username=None, client_id="watcher")
    seen = list(watch("acme", broker, timeout=10, count=4))
    checks = sorted(m.check.split(":")[0] for m in seen)
    assert checks == ["REJECTED", "REJECTED", "REJECTED", "registry", "verified"]
