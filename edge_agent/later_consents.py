"""Consent statements a driver signs after login, kept beside the outbox for the running agent.

``msp-agent card consent grant|revoke`` runs in its own process: it appends the card-signed
``consent`` record to the outbox (the registry applies it to everything it sends on) and one
line here, ``<outbox>.consents`` (0600, fsynced): the card certificate's SHA-256 and the
statement. The agent reads it for the one flow only the gateway can stop: contributions to
public statistics, which carry no session, so the registry cannot tell whose they are
(docs/public.md, docs/consent.md). A revocation of ``public`` signed during a trip keeps
that trip's contributions in the car; a grant counts from the next trip on (a consent is not
retroactive). A line that does not parse is skipped and logged, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from msp_protocol import bodies
from msp_protocol.codec import from_json, to_json
from msp_protocol.consent import REVOKE, ConsentLike
from msp_protocol.errors import ProtocolError
from msp_protocol.records import parse_ts

log = logging.getLogger(__name__)

SUFFIX = ".consents"


def beside(outbox: Path) -> Path:
    """The statements file of the outbox at ``outbox``."""
    return outbox.with_name(outbox.name + SUFFIX)


def add(path: Path, card_sha256: str, statement: bodies.ConsentStatement) -> None:
    """Append ``statement``, signed by the card of certificate hash ``card_sha256``, durably."""
    line = json.dumps({"card": card_sha256, "statement": to_json(statement)}, sort_keys=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def statements(path: Path, card_sha256: str) -> list[bodies.ConsentStatement]:
    """The statements the card of ``card_sha256`` signed, in the order they were added."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry.get("card") != card_sha256:
                continue
            statement = from_json(bodies.ConsentStatement, entry["statement"])
            parse_ts(statement.signed_at)
        except (ValueError, KeyError, TypeError, AttributeError, ProtocolError) as exc:
            log.warning("%s line %d: not a consent statement, skipped (%s)", path, number, exc)
            continue
        found.append(statement)
    return found


def in_force(login: Sequence[ConsentLike], later: Sequence[bodies.ConsentStatement],
             at: datetime) -> tuple[ConsentLike, ...]:  # fmt: skip
    """The consents in force at ``at``: the login's, with the later grants signed by then
    added and, for those signed by then, each revocation's categories taken away from its
    recipient (every category when it names none)."""
    signed = sorted((s for s in later if parse_ts(s.signed_at) <= at),
                    key=lambda s: parse_ts(s.signed_at))  # fmt: skip
    consents: list[ConsentLike] = list(login)
    for s in signed:
        if s.action == REVOKE:
            kept = []
            for c in consents:
                if c.recipient != s.recipient:
                    kept.append(c)
                    continue
                left = tuple(x for x in c.categories if s.categories and x not in s.categories)
                if left:
                    kept.append(bodies.Consent(c.recipient, left, c.until))
            consents = kept
        elif s.until is not None:
            consents.append(bodies.Consent(s.recipient, s.categories, s.until))
    return tuple(consents)
