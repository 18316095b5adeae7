"""The consent statements kept beside the outbox for the running agent: durable, private,
per card, and read so that a damaged line never stops the agent."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from edge_agent import later_consents
from msp_protocol import bodies
from msp_protocol.consent import GRANT, REVOKE

UNTIL = "2027-01-01T00:00:00.000Z"


def _statement(action: str, recipient: str, categories: tuple[str, ...], signed_at: str,
               until: str | None = None) -> bodies.ConsentStatement:  # fmt: skip
    return bodies.ConsentStatement(action, recipient, categories, until, "gw-1", "JTXXX000001",
                                   signed_at, "AAECAwQFBgcICQoLDA0ODw")  # fmt: skip


def test_statements_are_kept_0600_per_card_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    path = later_consents.beside(tmp_path / "outbox.db")
    assert path.name == "outbox.db.consents"
    assert later_consents.statements(path, "card-a") == []  # no file yet
    mine = _statement(GRANT, "public", ("public",), "2026-12-01T10:00:00.000Z", UNTIL)
    theirs = _statement(REVOKE, "public", (), "2026-12-01T10:05:00.000Z")
    later_consents.add(path, "card-a", mine)
    with path.open("ab") as f:
        f.write(b"{not json\n\xff\xfe\n" + b'{"card": "card-a", "statement": {"action": 1}}\n')
    later_consents.add(path, "card-b", theirs)
    later_consents.add(path, "card-a", theirs)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert later_consents.statements(path, "card-a") == [mine, theirs]
    assert later_consents.statements(path, "card-b") == [theirs]


def test_in_force_adds_grants_and_takes_revoked_categories_from_their_time_on() -> None:
    login = (bodies.Consent("acme", ("driving", "score"), UNTIL),)
    later = [
        _statement(GRANT, "public", ("public",), "2026-12-01T10:00:00.000Z", UNTIL),
        _statement(REVOKE, "acme", ("score",), "2026-12-01T11:00:00.000Z"),
        _statement(REVOKE, "public", (), "2026-12-01T12:00:00.000Z"),
    ]

    def at(hour: int) -> set[tuple[str, str]]:
        when = datetime(2026, 12, 1, hour, 30, tzinfo=UTC)
        return {(c.recipient, x) for c in later_consents.in_force(login, later, when)
                for x in c.categories}  # fmt: skip

    assert at(9) == {("acme", "driving"), ("acme", "score")}
    assert at(10) == {("acme", "driving"), ("acme", "score"), ("public", "public")}
    assert at(11) == {("acme", "driving"), ("public", "public")}
    assert at(12) == {("acme", "driving")}
