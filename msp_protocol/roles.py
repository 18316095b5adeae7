"""Recipient roles, the categories each may be given, and their topics (DESIGN.md, Consent and
recipients). One table for both sides: the gateway refuses a consent outside it before the
card signs, the registry refuses (counts, logs) one that arrives anyway.

| role        | topics it reads              | categories it may be given                  |
|-------------|------------------------------|---------------------------------------------|
| ``fleet``   | ``msp/v1/fleet/{id}/#``      | driving, maintenance, score, location       |
| ``insurer`` | ``msp/v1/insurer/{id}/#``    | score, driving (as a monthly summary only)  |
| ``guardian``| ``msp/v1/guardian/{id}/#``   | alerts (dangerous events, a daily digest)   |
| ``responder``| ``msp/v1/responder/{id}/#`` | emergency (crash data, the sealed profile)  |
| ``public``  | ``msp/v1/public/#`` (anyone) | public (k-anonymous statistics)             |

The ``operator`` sees gateway health and rejections only, never a person's data: it is no
recipient and may be given nothing. Everything the registry itself makes for a recipient is
signed with the registry's key, published retained on :data:`REGISTRY_KEY_TOPIC`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from . import consent as cats
from .errors import ProtocolError
from .topics import PREFIX, check_id

FLEET: Final = "fleet"
INSURER: Final = "insurer"
GUARDIAN: Final = "guardian"
RESPONDER: Final = "responder"
PUBLIC: Final = "public"
#: The public tier's category (given only to the built-in ``public`` recipient).
PUBLIC_CATEGORY: Final = "public"

#: Categories each role may be given; a role not here (``operator``) may be given none.
ALLOWED: Final[dict[str, frozenset[str]]] = {
    FLEET: frozenset({cats.DRIVING, cats.MAINTENANCE, cats.SCORE, cats.LOCATION}),
    INSURER: frozenset({cats.SCORE, cats.DRIVING}),
    GUARDIAN: frozenset({cats.ALERTS}),
    RESPONDER: frozenset({cats.EMERGENCY}),
    PUBLIC: frozenset({PUBLIC_CATEGORY}),
}
#: Roles a recipient registered with ``msp-registry recipient add`` may have (``public`` is
#: built in).
REGISTRABLE: Final[tuple[str, ...]] = (FLEET, INSURER, GUARDIAN, RESPONDER)
#: Where the registry's public signing key is retained; every broker user may read it.
REGISTRY_KEY_TOPIC: Final = f"{PREFIX}/registry/key"
#: The ``kid`` of the registry's own JWS.
REGISTRY_KID: Final = "msp-registry"


def refused_categories(role: str, categories: Iterable[str]) -> list[str]:
    """The categories of ``categories`` a recipient of ``role`` may not be given, sorted."""
    allowed = ALLOWED.get(role, frozenset())
    return sorted({c for c in categories if c not in allowed})


def check_categories(role: str, categories: Iterable[str], recipient: str = "") -> None:
    """Raise ``ProtocolError`` (field ``categories``) naming what a ``role`` may not be given
    and what it may."""
    refused = refused_categories(role, categories)
    if refused:
        allowed = ", ".join(sorted(ALLOWED.get(role, ()))) or "nothing"
        who = f"{recipient!r} ({role})" if recipient else f"a {role}"
        raise ProtocolError(f"{who} may not be given {', '.join(refused)} (may: {allowed})",
                            "categories")  # fmt: skip


def role_topic(role: str, recipient: str, *levels: str) -> str:
    """A topic under ``msp/v1/{role}/{recipient}/``; every level checked as an id."""
    if role not in ALLOWED:
        raise ProtocolError(f"unknown role {role!r} (known: {', '.join(ALLOWED)})", "role")
    tail = "/".join(check_id(level, "topic") for level in levels)
    return f"{PREFIX}/{role}/{check_id(recipient, 'recipient')}/{tail}"


def role_filter(role: str, recipient: str) -> str:
    """Subscription filter of everything the registry sends one recipient."""
    if role not in ALLOWED:
        raise ProtocolError(f"unknown role {role!r}", "role")
    return f"{PREFIX}/{role}/{check_id(recipient, 'recipient')}/#"
