"""The person's consents as the registry applies them: login consents, card-signed grants and
revocations, and what they allow at a given instant.

A ``consent`` record carries a statement the person's card signed (``msp_protocol.bodies.
ConsentStatement``). The registry checks the signature against the card key it knows for
that certificate (from the person's ``session.start``: a consent can only come from a card
that logged in at some gateway), then applies it at once: the ingestor calls
:meth:`PersonActs.early` (its ``on_early`` hook) as soon as the record's device signature
verifies, before the chain records ahead of it arrive; the record's turn in the chain applies
it again
(idempotent: a statement is keyed by its card signature).

Rules (docs/consent.md):

* a grant (at login or later) lets its recipient have its categories for data of instants
  from its signing to its ``until`` (not retroactive);
* a revocation signed at T withdraws the categories it names (none named: all) from the
  recipient, for data of instant T or later, from every grant signed before it; a grant
  signed after it is unaffected;
* on a revocation the registry drops every queued publication it covers (their exchanges
  turn ``withdrawn``), and empties the retained score of the recipient if ``score`` is
  withdrawn; later records it covers are withheld (``revoked``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from msp_protocol import consent as cats
from msp_protocol import roles
from msp_protocol.bodies import (
    CardConsent,
    CardProfile,
    CardRequest,
    Consent,
    ConsentStatement,
)
from msp_protocol.errors import SealError
from msp_protocol.jws import b64url
from msp_protocol.records import Record, format_ts, parse_ts
from msp_protocol.sealed import seal_reply
from msp_protocol.topics import fleet_score_topic, reply_topic

from .cards import CardRejected, TrustAnchors, card_key, check_card_certificate, key_sha256
from .cards import verify_card_signature as _verify_signature
from .errors import StoreError
from .store import Accepted, Batch, PersonStatement, Publication, Store

log = logging.getLogger(__name__)


def statement_id(card_signature: str) -> str:
    """The id of a card-signed statement: base64url SHA-256 of its signature's text."""
    return b64url(hashlib.sha256(card_signature.encode("ascii")).digest())


def normal_ts(text: str) -> str:
    """A wire instant in the one form the store compares as text (milliseconds, ``Z``)."""
    return format_ts(parse_ts(text).timestamp())


def verify_card_act(store: Store, anchors: TrustAnchors, record: Record,
                    body: CardConsent | CardRequest | CardProfile) -> str:  # fmt: skip
    """Check the card evidence of a person's act and return the person's id.

    The statement must name the record's device and VIN; the signing card must be one the
    registry knows (its certificate came with a ``session.start``), still trusted at the
    signing time, and not superseded by a successor card. Raises ``CardRejected``.
    """
    st = body.statement
    for name, inner, outer in (("device", st.device, record.device), ("vin", st.vin, record.vin)):
        if inner != outer:
            raise CardRejected("statement_mismatch", f"statement {name} {inner!r} != {outer!r}")
    sha = body.card_certificate_sha256
    der = store.card_certificate(sha)
    person = store.card_person(sha)
    if der is None or person is None:
        raise CardRejected("card_certificate_unknown",
                           f"certificate {sha} never logged in at a gateway")  # fmt: skip
    key = card_key(der)
    _verify_signature(key, cats.statement_bytes(st), body.card_signature)
    check_card_certificate(der, anchors, parse_ts(st.signed_at))
    if store.key_succeeded(key_sha256(key)):
        raise CardRejected("card_succeeded", "this card was replaced by a successor card")
    return person


def registered_recipients(store: Store) -> dict[str, str]:
    """Every recipient a consent may name, with its role: each fleet (of an enrolled device
    or registered operator), each recipient of another role (``cloud_sync.recipients``) and
    the built-in ``public`` (``msp-registry recipients``)."""
    from .recipients.directory import roles_of  # noqa: PLC0415 - it imports this module's users

    return roles_of(store)


def unknown_recipients(store: Store, recipients: Sequence[str]) -> list[str]:
    """Those of ``recipients`` the registry does not know (logged with the known ones): a
    consent to them can never let anything flow."""
    known = registered_recipients(store)
    unknown = sorted({r for r in recipients if r not in known})
    if unknown:
        log.warning("consent names unknown recipient(s) %s (known: %s): nothing flows to "
                    "them", ", ".join(unknown), ", ".join(known))  # fmt: skip
    return unknown


def _known(categories: Sequence[str]) -> list[str]:
    """The categories this registry knows (a newer gateway may offer more: ignored here)."""
    return [c for c in categories if c in cats.CATEGORIES or c == roles.PUBLIC_CATEGORY]


def role_refusals(store: Store, consents: Sequence[Consent]) -> list[str]:
    """The login consents (``recipient: categories``) that give a recipient what its role may
    not be given (``msp_protocol.roles``), logged: they never let those categories flow."""
    known = registered_recipients(store)
    refused = []
    for consent in consents:
        role = known.get(consent.recipient)
        bad = [] if role is None else roles.refused_categories(role, _known(consent.categories))
        if bad:
            refused.append(f"{consent.recipient}: {','.join(bad)}")
    if refused:
        log.warning("login consent(s) outside the recipients' roles, nothing of them flows: %s",
                    "; ".join(refused))  # fmt: skip
    return refused


def verify_consent(store: Store, anchors: TrustAnchors, record: Record) -> PersonStatement:
    """The verified statement of a ``consent`` record; raises ``CardRejected``."""
    body = record.body
    if not isinstance(body, CardConsent):
        raise TypeError(f"not a consent record: {record.kind}")
    st = body.statement
    if st.action == cats.GRANT and st.until is None:
        raise CardRejected("bad_consent", "a grant must say until when")
    if st.action == cats.GRANT and not st.categories:
        raise CardRejected("bad_consent", "a grant must name its categories")
    person = verify_card_act(store, anchors, record, body)
    if st.action == cats.GRANT and unknown_recipients(store, [st.recipient]):
        raise CardRejected("unknown_recipient", f"no recipient {st.recipient!r} is registered")
    if st.action == cats.GRANT:
        role = registered_recipients(store)[st.recipient]
        refused = roles.refused_categories(role, _known(st.categories))
        if refused:  # the role table (msp_protocol.roles): counted as role_category
            log.warning("consent of %s to %s (%s) refused: a %s may not be given %s", person,
                        st.recipient, role, role, ",".join(refused))  # fmt: skip
            raise CardRejected("role_category", f"a {role} may not be given {', '.join(refused)}")
    normal = ConsentStatement(
        st.action, st.recipient, st.categories,
        None if st.until is None else normal_ts(st.until), st.device, st.vin,
        normal_ts(st.signed_at), st.nonce,
    )  # fmt: skip
    return PersonStatement(statement_id(body.card_signature), person, record.device,
                           record.seq, normal)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Grant:
    """A consent as the registry weighs it: what it gives, when it was signed, its reference
    in the exchange log (``session:<id>`` or ``consent:<statement id>``)."""

    recipient: str
    categories: tuple[str, ...]
    until: datetime
    signed_at: datetime
    ref: str
    until_text: str  # as the card signed it

    def gives(self, recipient: str, category: str, at: datetime) -> bool:
        """True if this grant covers ``category`` data of instant ``at`` for ``recipient``: from
        its signing (a consent is not retroactive) to its ``until`` (exclusive)."""
        return (recipient == self.recipient and category in self.categories
                and self.signed_at <= at < self.until)


class ConsentView:
    """Everything a person has granted and revoked (all of it, or one session's login
    consents with every later statement), and what that allows at an instant."""

    def __init__(self, grants: Sequence[Grant], revocations: Sequence[ConsentStatement]) -> None:
        self.grants = tuple(grants)
        self.revocations = tuple(revocations)

    @classmethod
    def of(cls, store: Store, person: str, session: str | None = None) -> ConsentView:
        """The person's view: the login consents of ``session`` (or of every session) and
        every card-signed grant and revocation."""
        grants: list[Grant] = []
        for g in store.session_grants(person, session):
            try:
                grants.append(Grant(g.consent.recipient, g.consent.categories,
                                    parse_ts(g.consent.until), parse_ts(g.started_at),
                                    f"session:{g.session}", g.consent.until))  # fmt: skip
            except ValueError:
                continue  # schema-valid but no real instant: covers nothing
        revocations: list[ConsentStatement] = []
        for item in store.consent_statements(person):
            st = item.statement
            if st.action == cats.REVOKE:
                revocations.append(st)
            elif st.until is not None:
                grants.append(Grant(st.recipient, st.categories, parse_ts(st.until),
                                    parse_ts(st.signed_at), f"consent:{item.id}",
                                    st.until))  # fmt: skip
        return cls(grants, revocations)

    def _revoked(self, grant: Grant, category: str, at: datetime) -> bool:
        return any(cats.revokes(r, grant.recipient, category, at)
                   and parse_ts(r.signed_at) >= grant.signed_at
                   for r in self.revocations)  # fmt: skip

    def allowing(self, recipient: str, category: str, at: datetime) -> Grant | None:
        """The grant that lets ``recipient`` have ``category`` data of ``at`` (the one lasting
        longest), or None."""
        live = [g for g in self.grants
                if g.gives(recipient, category, at) and not self._revoked(g, category, at)]
        return max(live, key=lambda g: g.until, default=None)

    def why_not(self, recipient: str, category: str | None, at: datetime) -> str:
        """The withheld reason when nothing allows it: ``revoked``, ``expired`` or
        ``not_consented``."""
        named = [g for g in self.grants if g.recipient == recipient and category in g.categories]
        if any(g.gives(recipient, category, at) for g in named if category is not None):
            return "revoked"
        return "expired" if named else "not_consented"

    def recipients(self, category: str, at: datetime, *, current: bool = False
                   ) -> dict[str, Grant]:  # fmt: skip
        """Every recipient allowed ``category`` data of ``at``, each with its grant. With
        ``current`` (a value shown as it is now, such as the retained score), a grant revoked
        at any time since it was signed allows nothing, whatever ``at``."""
        out: dict[str, Grant] = {}
        for recipient in sorted({g.recipient for g in self.grants}):
            grant = self.allowing(recipient, category, at)
            if grant is not None and current:
                later = [r for r in self.revocations
                         if cats.revokes(r, recipient, category, parse_ts(r.signed_at))
                         and parse_ts(r.signed_at) >= grant.signed_at]  # fmt: skip
                grant = None if later else grant
            if grant is not None:
                out[recipient] = grant
        return out


def withdrawals(store: Store, statement: PersonStatement) -> list[Publication]:
    """What a revocation makes the registry publish at once: an empty retained message on
    every retained topic of the person it covers (the recipient's score), so the broker
    forgets it."""
    st = statement.statement
    if st.action != cats.REVOKE or (st.categories and cats.SCORE not in st.categories):
        return []
    from .recipients.directory import pseudonym  # noqa: PLC0415 - republish imports this module

    name = pseudonym(store.pseudonym_secret(), st.recipient, statement.person_id)
    role = registered_recipients(store).get(st.recipient, roles.FLEET)
    if role == roles.INSURER:  # an insurer's score lives under its own role's topics
        return [Publication(roles.role_topic(role, st.recipient, "score", name), b"",
                            retain=True)]  # fmt: skip
    return [Publication(fleet_score_topic(st.recipient, name), b"", retain=True)]


#: Answers a verified request record (``cloud_sync.my_data``): ``(record, person)``.
RequestHandler = Callable[[Record, str], None]


class PersonActs:
    """The ingestor's early hook: applies ``consent`` records and answers ``request`` records
    as soon as their device signature verifies (``Ingestor(on_early=PersonActs(...).early)``)."""

    def __init__(self, store: Store, anchors: TrustAnchors,
                 requests: RequestHandler | None = None) -> None:  # fmt: skip
        self.store = store
        self.anchors = anchors
        self.requests = requests
        self.refused: dict[str, int] = {}

    def early(self, accepted: Accepted) -> None:
        """Act on a verified record of the person (others are ignored). A card check that
        fails is counted in :attr:`refused` and logged; the record's turn in the chain
        counts it as a rejection."""
        record = accepted.record
        try:
            if isinstance(record.body, CardConsent):
                statement = verify_consent(self.store, self.anchors, record)
                if self.store.apply_statement(statement, withdrawals(self.store, statement)):
                    st = statement.statement
                    log.info("%s of %s to %s (%s) signed %s applied", st.action,
                             statement.person_id, st.recipient,
                             ",".join(st.categories) or "all", st.signed_at)  # fmt: skip
            elif isinstance(record.body, CardRequest) and self.requests is not None:
                person = verify_card_act(self.store, self.anchors, record, record.body)
                self.requests(record, person)
        except CardRejected as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            log.warning("card act seq %d of %s refused: %s", record.seq, record.device, exc)
            if isinstance(record.body, CardRequest):
                self._refuse_request(record, record.body, exc)
        except StoreError:
            raise

    def _refuse_request(self, record: Record, body: CardRequest, exc: CardRejected) -> None:
        """Count the refusal (a request's chain turn does not check the card again: an erasure
        or a succession it asked for may have changed it) and tell the requester why, sealed
        to its key (the answer names no one and says only the reason), rather than leave
        ``my-data`` waiting for an answer that never comes."""
        st = body.statement
        if st.reply_key is None:
            self.store.commit(Batch(rejections={exc.reason: 1}))
            return
        value = {"request": statement_id(body.card_signature), "action": st.action,
                 "refused": exc.reason, "message": str(exc)}
        try:
            sealed = seal_reply(str(value["request"]), st.nonce,
                                json.dumps(value, sort_keys=True).encode(), st.reply_key)
        except SealError:
            sealed = []
        self.store.commit(Batch(rejections={exc.reason: 1}, publications=[
            Publication(reply_topic(record.device), m) for m in sealed]))

