"""Every page or API answer that shows a person's data is written to that person's exchange
log, as every MQTT copy is (docs/consent.md): who saw what, from which record, when.

:func:`log_shown` is the one place the web side calls; it writes through
``Store.log_exchanges`` with the status ``shown``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..store import Exchange, Store

log = logging.getLogger(__name__)

#: The exchange-log status of data a page or API answer showed (MQTT copies are ``queued``,
#: then ``delivered`` or ``withdrawn``).
SHOWN = "shown"


@dataclass(frozen=True, slots=True)
class Shown:
    """One item of a person's data shown to ``recipient``: the record it is (``device/seq``)
    or was derived from, its kind (``trip``, ``event``, ``score``...), the consent category
    it was shown under (``None``: pre-consented), the instant of the data and the reference
    of the consent that allowed it (as on the MQTT copy: ``session:<id>``,
    ``consent:<statement id>``)."""

    person_id: str
    recipient: str
    kind: str
    record: str | None
    category: str | None
    data_time: str
    consent: str
    channel: str = "web"


def log_shown(store: Store, shown: Iterable[Shown]) -> int:
    """Write what an answer showed to each person's exchange log; returns how many entries."""
    items = list(dict.fromkeys(shown))
    if not items:
        return 0
    store.log_exchanges([Exchange(i.person_id, i.recipient, i.kind, i.record,
                                  () if i.category is None else (i.category,), i.data_time,
                                  i.consent) for i in items], status=SHOWN)  # fmt: skip
    log.info("exchange log: %d item(s) of %d person(s) shown to %s",
             len(items), len({i.person_id for i in items}), items[0].recipient)  # fmt: skip
    return len(items)
