"""Topics and the ack payload: built from ids, parsed strictly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.errors import ProtocolError
from msp_protocol.topics import (
    PUBLIC_STATS,
    REC_FILTER,
    REC_SHARED_FILTER,
    ack_topic,
    device_of_rec_topic,
    encode_ack,
    fleet_filter,
    fleet_topic,
    parse_ack,
    rec_topic,
)


def test_topics_follow_the_design() -> None:
    assert rec_topic("gw-0001") == "msp/v1/dev/gw-0001/rec"
    assert ack_topic("gw-0001") == "msp/v1/dev/gw-0001/ack"
    assert fleet_topic("tokyo-taxi", "trip") == "msp/v1/fleet/tokyo-taxi/trip"
    assert fleet_filter("tokyo-taxi") == "msp/v1/fleet/tokyo-taxi/#"
    assert PUBLIC_STATS == "msp/v1/public/stats"
    assert REC_FILTER == "msp/v1/dev/+/rec"
    assert REC_SHARED_FILTER == "$share/registry/msp/v1/dev/+/rec"
    assert device_of_rec_topic("msp/v1/dev/gw-0001/rec") == "gw-0001"


@pytest.mark.parametrize("bad", ["", "+", "#", "a/b", "gw 1", "-gw", "x" * 65, "gw\u00e9"])
def test_ids_that_would_escape_their_topic_level_are_refused(bad: str) -> None:
    with pytest.raises(ProtocolError, match="is not an id") as info:
        rec_topic(bad)
    assert info.value.field == "device"


def test_unknown_kind_and_foreign_topics_are_refused() -> None:
    with pytest.raises(ProtocolError, match="unknown kind"):
        fleet_topic("f1", "selfie")
    with pytest.raises(ProtocolError, match="is not a record topic"):
        device_of_rec_topic("msp/v1/dev/gw-0001/ack")
    with pytest.raises(ProtocolError, match="is not a record topic"):
        device_of_rec_topic("msp/v1/dev/a/b/rec")


@settings(max_examples=50, deadline=None)
@given(seq=st.integers(min_value=0, max_value=2**53 - 1))
def test_ack_round_trips(seq: int) -> None:
    assert parse_ack(encode_ack(seq)) == seq


@pytest.mark.parametrize(
    "payload",
    [b"", b"42", b'{"seq": -1}', b'{"seq": 1.5}', b'{"seq": true}', b'{"seq": 1, "x": 2}',
     b"\xff", b'{"seq": "1"}', b'{"seq": 9007199254740992}', b" " * 300],
)  # fmt: skip
def test_bad_acks_are_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_ack(payload)
    assert info.value.field.startswith("ack")
