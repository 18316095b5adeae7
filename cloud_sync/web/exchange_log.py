"""Every page or API answer that shows a person's data is written to that person's exchange
log, as every MQTT copy is (docs/consent.md): who saw what, from which record, when.

:func:`log_shown` is the one place the web side calls; the store's exchange-log method (the
``consent`` work, issue 14) plugs in here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Shown:
    """One item of a person's data shown to ``recipient``: the record it is (``device/seq``)
    or was derived from, its kind (``trip``, ``event``, ``score``...), the consent category
    it was shown under (``None``: pre-consented) and the instant of the data."""

    person_id: str
    recipient: str
    kind: str
    record: str | None
    category: str | None
    data_time: str
    channel: str = "web"


def log_shown(store: Store, shown: Iterable[Shown]) -> int:
    """Write what an answer showed to each person's exchange log; returns how many entries."""
    items = list(dict.fromkeys(shown))
    if not items:
        return 0
    # TODO(issue 14): store.log_exchanges(...) once the consent branch's exchange log is merged
    for item in items:
        log.debug("shown to %s: %s %s (%s)", item.recipient, item.kind, item.record,
                  item.channel)  # fmt: skip
    log.info("exchange log: %d item(s) of %d person(s) shown to %s",
             len(items), len({i.person_id for i in items}), items[0].recipient)  # fmt: skip
    return len(items)
