"""What the vehicle's operator asks the driver to consent to, and what the driver accepts.

The operator's request is the ``[card.consent]`` table of the agent's configuration
(``/etc/msp/agent.toml``, docs/configuration.md), read by ``msp-agent run`` and by
``msp-agent card login --consent-request /etc/msp/agent.toml`` alike::

    [card.consent]
    recipient = "acme"                          # the fleet id the registry enrolled it in
    categories = ["driving", "maintenance", "score", "location"]
    days = 90                                   # each consent lasts this long from login

At login the driver is shown each requested category and accepts some, all or none
(``msp-agent card login --consent driving,score``, or one question each at a terminal). Only
what the driver accepted goes into the statement the card signs; the categories are those of
``msp_protocol.consent``, the registry's too.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from msp_protocol.consent import check_recipient, parse_categories
from msp_protocol.errors import ProtocolError
from msp_protocol.topics import check_id

from ..config import parse_consent
from ..errors import ConfigError
from .binding import Consent, iso_utc

log = logging.getLogger(__name__)

#: What each category means, in the words a driver is asked in.
DESCRIPTIONS: dict[str, str] = {
    "driving": "your trips and driving events (harsh braking, speeding, ...)",
    "maintenance": "the vehicle's diagnostic trouble codes while you drive",
    "score": "your portable safe-driving score, from every vehicle you drive",
    "location": "positions inside your trips and events",
    "public": "coarse per-area, per-hour totals of your trips (distance, time, fuel, CO2), "
              "added into public statistics of at least 5 drivers, with noise",
    "alerts": "a message at once when your driving turns dangerous, and a daily digest",
    "emergency": "on a crash: where, how hard, the vehicle, and your sealed emergency profile",
}

#: Asks the driver one yes/no question; True is yes.
Confirm = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """The operator's request: which categories, for whom, for how long."""

    recipient: str
    categories: tuple[str, ...]
    days: float = 90.0

    def __post_init__(self) -> None:
        try:
            check_id(self.recipient, "recipient")
            check_recipient(self.recipient, parse_categories(self.categories))
        except ProtocolError as exc:
            raise ConfigError(f"consent request: {exc}") from None
        if not 0 < self.days <= 3660:
            raise ConfigError(f"consent request: days: {self.days} is not in (0, 3660]")

    @classmethod
    def load(cls, path: Path) -> ConsentRequest:
        """Read the ``[card.consent]`` table of a TOML file (the agent's configuration, or a
        file holding only that table) with the agent's own checks; raises ``ConfigError``
        naming the file and the key at fault."""
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if "consent" in document:
            raise ConfigError(f"{path}: [consent]: the consent request is the [card.consent] "
                              "table, as in the agent's configuration")  # fmt: skip
        try:
            found = parse_consent(document)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if found is None:
            raise ConfigError(f"{path}: no [card.consent] table")
        return cls(found.recipient, found.categories, found.days)

    def accept(self, accepted: Iterable[str], now: datetime) -> tuple[Consent, ...]:
        """The consent to sign for the categories the driver ``accepted`` (none: no consent).
        Raises ``ConfigError`` for a category the operator did not ask for."""
        try:
            chosen = parse_categories(accepted)
        except ProtocolError as exc:
            raise ConfigError(str(exc)) from None
        extra = [c for c in chosen if c not in self.categories]
        if extra:
            raise ConfigError(f"{self.recipient} did not ask for {', '.join(extra)} "
                              f"(it asks for {', '.join(self.categories) or 'nothing'})")
        if not chosen:
            log.info("driver accepted no consent for %s", self.recipient)
            return ()
        until = iso_utc(now + timedelta(days=self.days))
        return (Consent(self.recipient, chosen, until),)

    def ask(self, confirm: Confirm) -> tuple[str, ...]:
        """Ask the driver about each requested category; returns those accepted."""
        return tuple(c for c in parse_categories(self.categories)
                     if confirm(f"Share {DESCRIPTIONS[c]} with {self.recipient} "
                                f"for {self.days:g} days?"))  # fmt: skip


def answer(text: str) -> tuple[str, ...]:
    """The categories of a ``--consent`` answer: ``driving,score``; ``none`` for nothing."""
    return () if text.strip().lower() == "none" else tuple(text.split(","))
