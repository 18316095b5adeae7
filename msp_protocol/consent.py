"""Consent categories, the record kinds each covers, and whether a consent covers a record.

One definition for both sides: the edge offers and signs these categories at login
(``msp-agent card login --consent driving,score``), the registry filters on them
(``cloud_sync.republish``).

| category      | what a recipient gets                                               |
|---------------|---------------------------------------------------------------------|
| ``driving``   | ``session.start``, ``session.end``, ``trip``, ``event`` records       |
| ``maintenance``| ``dtc`` records                                                    |
| ``score``     | the person's portable score, pooled over every vehicle and fleet     |
| ``location``  | positions inside the records above (stripped without it)             |
| ``public``    | ``stats`` records: contributions to k-anonymous, noised statistics    |
| ``alerts``    | a guardian: dangerous events as they happen, a daily digest          |
| ``emergency`` | a responder: crash data and the person's sealed emergency profile     |

Which role may be given which category is fixed in ``msp_protocol.roles``.

``emergency`` is consented in advance (``KindInfo.pre_consented``) and belongs to no
category; ``health`` and ``gap`` are private: none of them is consentable. ``public`` is
never accepted by default (``DEFAULT_ACCEPTED`` leaves it out) and goes only to the built-in
recipient ``public``, which may be given nothing else (``check_recipient``; docs/public.md).
Categories a registry does not know are ignored there (a newer gateway may offer more), and
refused by the edge, which offers only these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Final, Protocol

from . import bodies
from .errors import ProtocolError
from .records import Record, parse_ts

DRIVING: Final = "driving"
MAINTENANCE: Final = "maintenance"
SCORE: Final = "score"
LOCATION: Final = "location"
#: dangerous events as they happen and a daily digest (guardians; ``msp_protocol.roles``)
ALERTS: Final = "alerts"
#: crash data and the sealed emergency profile (responders; ``msp_protocol.roles``)
EMERGENCY: Final = "emergency"

# -- public statistics (issue 14): the category, its recipient --------------------------------
#: The category of contributions to public statistics (``stats`` records).
PUBLIC: Final = "public"
#: The one built-in recipient of the ``public`` category (DESIGN.md, Consent and recipients).
PUBLIC_RECIPIENT: Final = "public"
# -- end of public statistics -------------------------------------------------------------------

#: Every category, in the order a login offers them.
CATEGORIES: Final[tuple[str, ...]] = (DRIVING, MAINTENANCE, SCORE, LOCATION, ALERTS, EMERGENCY,
                                      PUBLIC)
#: The categories a request may take as accepted without asking each one (``public`` never is).
DEFAULT_ACCEPTED: Final[tuple[str, ...]] = tuple(c for c in CATEGORIES if c != PUBLIC)

#: The record kinds a category lets through (``score`` and ``location`` cover no kind:
#: the score is derived by the registry, locations are fields inside other kinds).
KINDS_OF: Final[dict[str, frozenset[str]]] = {
    DRIVING: frozenset({"session.start", "session.end", "trip", "event"}),
    MAINTENANCE: frozenset({"dtc"}),
    SCORE: frozenset(),
    LOCATION: frozenset(),
    PUBLIC: frozenset({"stats"}),
    # what guardians and responders get is made by the registry (``cloud_sync.recipients``)
    ALERTS: frozenset(),
    EMERGENCY: frozenset(),
}
_CATEGORY_OF_KIND: Final = {kind: cat for cat, kinds in KINDS_OF.items() for kind in kinds}


def category_of(kind: str) -> str | None:
    """The category that covers records of ``kind``; ``None`` for a kind no consent covers
    (pre-consented, public, private or unknown)."""
    return _CATEGORY_OF_KIND.get(kind)


def parse_categories(text: str | Iterable[str]) -> tuple[str, ...]:
    """Categories from ``"driving,score"`` (or an iterable), deduplicated, in the canonical
    order; raises ``ProtocolError`` naming an unknown one and the known ones."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = {item.strip() for item in items if item.strip()}
    unknown = sorted(wanted - set(CATEGORIES))
    if unknown:
        raise ProtocolError(
            f"unknown consent categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(CATEGORIES)})",
            "categories",
        )
    return tuple(c for c in CATEGORIES if c in wanted)


def data_time(record: Record) -> datetime:
    """The latest instant a record's data covers (its ``ts``, a trip's end, an event's
    start): a consent must still be valid then for the record to flow."""
    times = [record.ts]
    body = record.body
    if isinstance(body, bodies.Trip):
        times.append(body.end)
    elif isinstance(body, bodies.Event):
        times.append(body.start)
    elif isinstance(body, bodies.SessionEnd):
        times.append(body.ended_at)
    return max(parse_ts(t) for t in times)


def valid_at(consent: bodies.Consent, at: datetime) -> bool:
    """True while the consent has not expired (``until`` is exclusive)."""
    try:
        return at < parse_ts(consent.until)
    except ValueError:
        return False  # schema-valid but not a real instant: covers nothing


def grants(consent: bodies.Consent, recipient: str, category: str, at: datetime) -> bool:
    """True if ``consent`` lets ``recipient`` have ``category`` data of instant ``at``."""
    return consent.recipient == recipient and category in consent.categories and valid_at(
        consent, at
    )


def strip_location(body: bodies.Body) -> tuple[bodies.Body, bool]:
    """The body without positions, and whether one was removed (``location`` → ``None``)."""
    if isinstance(body, bodies.Event | bodies.Emergency) and body.location is not None:
        return replace(body, location=None), True
    return body, False


# -- public statistics (issue 14) -------------------------------------------------------------
def check_recipient(recipient: str, categories: Iterable[str]) -> None:
    """Refuse (``ProtocolError``) a consent that mixes the public tier with the others: the
    ``public`` category goes only to the recipient ``public``, which gets nothing else."""
    wanted = set(categories)
    if recipient == PUBLIC_RECIPIENT and wanted - {PUBLIC}:
        raise ProtocolError(
            f"the recipient {PUBLIC_RECIPIENT!r} may be given only the category {PUBLIC!r}, "
            f"not {', '.join(sorted(wanted - {PUBLIC}))}",
            "categories",
        )
    if recipient != PUBLIC_RECIPIENT and PUBLIC in wanted:
        raise ProtocolError(
            f"the category {PUBLIC!r} goes only to the recipient {PUBLIC_RECIPIENT!r}, "
            f"not to {recipient!r}",
            "recipient",
        )


class ConsentLike(Protocol):
    """A consent as either side holds it (``bodies.Consent``, the edge's binding consent)."""

    @property
    def recipient(self) -> str: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def until(self) -> str: ...


def public_consented(consents: Iterable[ConsentLike], at: datetime) -> bool:
    """True if one of ``consents`` gives the recipient ``public`` the category ``public``,
    valid at ``at``: the gateway then contributes the trip to public statistics."""
    for c in consents:
        if c.recipient == PUBLIC_RECIPIENT and PUBLIC in c.categories:
            try:
                if at < parse_ts(c.until):
                    return True
            except ValueError:
                continue  # not a real instant: covers nothing
    return False


# -- end of public statistics -------------------------------------------------------------------


# -- consents as the person's own acts (``consent`` records, issue 14) -------------------------

#: ``ConsentStatement.action`` values.
GRANT: Final = "grant"
REVOKE: Final = "revoke"


def statement_bytes(statement: bodies.ConsentStatement | bodies.RequestStatement
                    | bodies.ProfileStatement) -> bytes:
    """The RFC 8785 bytes a card signs for a consent, request or profile statement (via SHA-256, RSA
    PKCS#1 v1.5, as the binding statement of a login)."""
    from .canonical import canonical_json  # noqa: PLC0415 - keeps this module's imports light
    from .codec import to_json  # noqa: PLC0415

    return canonical_json(to_json(statement))


def revokes(statement: bodies.ConsentStatement, recipient: str, category: str,
            at: datetime) -> bool:  # fmt: skip
    """True if the revocation ``statement`` withdraws ``category`` from ``recipient`` for data
    of instant ``at`` (a revocation covers what happens from its signing on; no categories
    named: every category)."""
    if statement.action != REVOKE or statement.recipient != recipient:
        return False
    if statement.categories and category not in statement.categories:
        return False
    return at >= parse_ts(statement.signed_at)
