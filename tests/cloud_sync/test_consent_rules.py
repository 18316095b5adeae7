"""``ConsentView``: what grants and revocations allow, against a reference model that replays
the person's statements in signing order (hypothesis, bounded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.consents import ConsentView, Grant
from msp_protocol.bodies import ConsentStatement
from msp_protocol.records import format_ts

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RECIPIENTS = ("acme", "haul")
CATEGORIES = ("driving", "score", "location")

# a statement: (hour signed, grant?, recipient, categories, hours it lasts)
statements = st.lists(st.tuples(st.integers(0, 48), st.booleans(), st.sampled_from(RECIPIENTS),
                                st.sets(st.sampled_from(CATEGORIES), max_size=3),
                                st.integers(1, 48)), max_size=8)  # fmt: skip


def view_of(items: list[tuple[int, bool, str, set[str], int]]) -> ConsentView:
    grants, revocations = [], []
    for i, (hour, grant, recipient, cats, hours) in enumerate(items):
        at = T0 + timedelta(hours=hour)
        chosen = tuple(c for c in CATEGORIES if c in cats)
        if grant and chosen:
            grants.append(Grant(recipient, chosen, at + timedelta(hours=hours), at, f"g{i}",
                                format_ts((at + timedelta(hours=hours)).timestamp())))
        elif not grant:
            revocations.append(ConsentStatement("revoke", recipient, chosen, None, "gw", "VIN00",
                                                format_ts(at.timestamp()), f"n{i}"))
    return ConsentView(grants, revocations)


def reference(items: list[tuple[int, bool, str, set[str], int]], recipient: str,
              category: str, at: datetime) -> bool:  # fmt: skip
    """Some grant signed at s <= at, lasting past at, with no revocation of it signed in
    [s, at] (a revocation at the grant's very instant counts: it withdraws)."""
    for hour, grant, rcpt, cats, hours in items:
        if not (grant and rcpt == recipient and category in cats):
            continue
        signed = T0 + timedelta(hours=hour)
        if not signed <= at < signed + timedelta(hours=hours):
            continue
        revoked = any(not g and r == recipient and (not c or category in c)
                      and signed <= T0 + timedelta(hours=h) <= at
                      for h, g, r, c, _ in items)  # fmt: skip
        if not revoked:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(statements, st.sampled_from(RECIPIENTS), st.sampled_from(CATEGORIES),
       st.integers(-2, 100))
def test_the_view_allows_exactly_what_the_statements_allow(items, recipient: str,
                                                           category: str, half: int) -> None:
    at = T0 + timedelta(minutes=30 * half)
    view = view_of(items)
    assert (view.allowing(recipient, category, at) is not None) == reference(
        items, recipient, category, at)
    if view.allowing(recipient, category, at) is None:
        assert view.why_not(recipient, category, at) in ("revoked", "expired", "not_consented")


@settings(max_examples=200, deadline=None)
@given(statements, st.integers(0, 100))
def test_a_current_value_stops_at_any_revocation_since_its_grant(items, half: int) -> None:
    at = T0 + timedelta(minutes=30 * half)
    view = view_of(items)
    current = view.recipients("score", at, current=True)
    for recipient, grant in current.items():
        assert view.allowing(recipient, "score", at) == grant
        assert not any(r.recipient == recipient and (not r.categories or "score" in r.categories)
                       and r.signed_at >= format_ts(grant.signed_at.timestamp())
                       for r in view.revocations)  # fmt: skip
