"""What a role module offers the fan-out (``cloud_sync.republish``): from one committed record
of a person, the registry's own messages for that role's recipients."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ..consents import ConsentView
from ..store import Accepted, Publication


class RoleSender(Protocol):
    """One role's part of the fan-out: signed messages, each with its exchange-log entry."""

    role: str

    def for_record(self, acc: Accepted, person: str, view: ConsentView, at: datetime,
                   recipients: Sequence[str]) -> list[Publication]:  # fmt: skip
        """What ``recipients`` (registered, of this role) get from ``acc`` of ``person``,
        under ``view`` at data time ``at``; nothing they have no consent for."""
