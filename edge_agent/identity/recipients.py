"""The recipients a person may name in a consent: the registry's list, as the gateway has it.

The registry writes the list (``msp-registry recipients --json --out FILE``: every enrolled
or registered fleet with role ``fleet``, and the built-in ``public``); the gateway's operator
installs it with the agent's other provisioning files (default ``/etc/msp/recipients.json``,
env ``MSP_RECIPIENTS``), as the trust anchors are. A grant or a login consent naming a
recipient not on it is refused at the gateway, with a message listing the known ones,
instead of being signed and then silently withheld by the registry.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from msp_protocol.consent import PUBLIC_RECIPIENT
from msp_protocol.errors import ProtocolError
from msp_protocol.roles import check_categories
from msp_protocol.topics import check_id

from ..errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("/etc/msp/recipients.json")
#: Roles a recipient may have (DESIGN.md, Consent and recipients).
ROLES = frozenset({"fleet", "insurer", "guardian", "responder", "public"})


@dataclass(frozen=True, slots=True)
class Recipient:
    """A registered recipient: its id (a topic level) and role."""

    id: str
    role: str


@dataclass(frozen=True, slots=True)
class KnownRecipients:
    """The registered recipients, by id."""

    recipients: tuple[Recipient, ...]

    @classmethod
    def load(cls, path: Path) -> KnownRecipients:
        """Read the registry's list; ``ConfigError`` naming the file and the entry at fault."""
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the recipients list: {exc} (write it "
                              "with msp-registry recipients --json --out FILE)") from None
        items = value.get("recipients") if isinstance(value, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"{path}: expected {{\"recipients\": [{{\"id\", \"role\"}}, ...]}}")
        found: list[Recipient] = []
        for i, item in enumerate(items):
            where = f"{path}: recipients[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise ConfigError(f"{where}: expected an object with a string 'id'")
            try:
                check_id(item["id"], "id")
            except ProtocolError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            role = item.get("role")
            if role not in ROLES:
                raise ConfigError(f"{where}: role {role!r} is not one of {sorted(ROLES)}")
            found.append(Recipient(item["id"], role))
        if not any(r.id == PUBLIC_RECIPIENT for r in found):
            found.append(Recipient(PUBLIC_RECIPIENT, "public"))
        return cls(tuple(found))

    def ids(self) -> list[str]:
        """The recipients' ids, sorted."""
        return sorted(r.id for r in self.recipients)

    def check(self, recipient: str, categories: Sequence[str] = ()) -> Recipient:
        """The recipient named ``recipient``; ``ConfigError`` listing the known ones, or
        naming the ``categories`` its role may not be given (``msp_protocol.roles``)."""
        for r in self.recipients:
            if r.id == recipient:
                try:
                    check_categories(r.role, [c.strip() for c in categories if c.strip()],
                                     recipient)  # fmt: skip
                except ProtocolError as exc:
                    raise ConfigError(str(exc)) from None
                return r
        raise ConfigError(f"unknown recipient {recipient!r}: the registry knows "
                          f"{', '.join(self.ids()) or 'none'}")  # fmt: skip


def check_known(recipient: str, path: Path | None = None,
                env: Mapping[str, str] | None = None,
                categories: Sequence[str] = ()) -> None:  # fmt: skip
    """Refuse (``ConfigError`` listing the known ones) a consent request naming a recipient
    the registry does not know. ``path`` given: that list must exist; otherwise
    ``$MSP_RECIPIENTS`` or :data:`DEFAULT_PATH`, and a gateway without a list (not yet
    provisioned) is let through, logged."""
    environ = os.environ if env is None else env
    where = path or Path(environ.get("MSP_RECIPIENTS") or DEFAULT_PATH)
    if path is None and not where.exists():
        log.info("no recipients list at %s: consent recipient %r not checked", where, recipient)
        return
    KnownRecipients.load(where).check(recipient, categories)
