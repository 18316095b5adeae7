"""The protocol's public tier: the ``public`` category and recipient, the stats body, its topic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_agent.errors import ConfigError
from edge_agent.identity.binding import Consent as EdgeConsent
from edge_agent.identity.consent import ConsentRequest
from msp_protocol import bodies
from msp_protocol.consent import (
    CATEGORIES,
    DEFAULT_ACCEPTED,
    PUBLIC,
    category_of,
    check_recipient,
    public_consented,
)
from msp_protocol.errors import ProtocolError, RecordError
from msp_protocol.records import body_from_json
from msp_protocol.topics import public_stats_topic
from tests.protocol_data import body_json

AT = datetime(2026, 11, 26, 8, tzinfo=UTC)
UNTIL = "2026-12-26T00:00:00.000Z"


def test_public_is_a_category_never_accepted_by_default() -> None:
    assert PUBLIC in CATEGORIES and PUBLIC not in DEFAULT_ACCEPTED
    assert set(DEFAULT_ACCEPTED) == set(CATEGORIES) - {PUBLIC}
    assert category_of("stats") == PUBLIC


def test_the_public_category_goes_to_the_public_recipient_only() -> None:
    check_recipient("public", ["public"])
    check_recipient("acme", ["driving", "score"])
    with pytest.raises(ProtocolError, match="'public' goes only to the recipient 'public'"):
        check_recipient("acme", ["driving", "public"])
    with pytest.raises(ProtocolError, match="may be given only the category 'public', not score"):
        check_recipient("public", ["public", "score"])
    # the edge's consent request refuses the mix at load, naming it
    with pytest.raises(ConfigError, match="goes only to the recipient 'public'"):
        ConsentRequest("acme", ("driving", "public"))
    assert ConsentRequest("public", ("public",)).categories == ("public",)


def test_public_consented_on_either_side_s_consents() -> None:
    for make in (bodies.Consent, EdgeConsent):
        assert public_consented([make("public", ("public",), UNTIL)], AT)
        assert not public_consented([make("acme", ("driving",), UNTIL)], AT)
        assert not public_consented([make("public", ("public",), "2026-11-26T08:00:00.000Z")], AT)
        assert not public_consented([make("other", ("public",), UNTIL)], AT)


def test_the_stats_body_is_per_hour_and_h3_cell_with_nothing_finer() -> None:
    body = body_from_json("stats", body_json("stats"))
    assert isinstance(body, bodies.Stats) and len(body.cells) == 2
    for field, value, why in (
        ("hour", "2026-11-26T08:30:00Z", "does not match"),  # not on the hour
        ("cells", [], "at least 1"),
    ):
        bad = body_json("stats")
        bad[field] = value
        with pytest.raises(RecordError, match=why):
            body_from_json("stats", bad)
    for key, value, why in (
        ("cell", "882f5a32dbfffff", "does not match"),  # resolution 8
        ("cell", "xn76ur", "does not match"),  # a geohash
        ("duration_s", 3600.5, "above the maximum"),
        ("lat", 35.68, "unknown field"),  # no position
    ):
        bad = body_json("stats")
        bad["cells"][0][key] = value
        with pytest.raises(RecordError, match=why):
            body_from_json("stats", bad)


def test_the_public_topic_is_per_cell() -> None:
    assert public_stats_topic("872f5aadeffffff") == "msp/v1/public/stats/872f5aadeffffff"
    for bad in ("#", "872f5aadeffffff/x", "882f5a32dbfffff", ""):
        with pytest.raises(ProtocolError):
            public_stats_topic(bad)
