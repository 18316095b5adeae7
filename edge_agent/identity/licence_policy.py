"""Which licence categories allow which vehicle class, and the licence check at login.

A higher category covers the lower ones (大型 ⊃ 中型 ⊃ 準中型 ⊃ 普通, Road Traffic Act §85),
and a class-2 (二種, passenger-carrying) category covers its class-1 counterpart.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from ..card.licence import LicenceData
from .errors import LicenceProblem, LicenceRefusedError

log = logging.getLogger(__name__)

#: Japan Standard Time: a licence is valid through its expiry date in Japan.
JST = timezone(timedelta(hours=9), "JST")

#: vehicle class → the licence categories any one of which allows driving it.
VEHICLE_CLASSES: dict[str, frozenset[str]] = {
    "car": frozenset({"普通", "準中型", "中型", "大型", "普二", "中二", "大二"}),
    "truck_semi_medium": frozenset({"準中型", "中型", "大型", "中二", "大二"}),
    "truck_medium": frozenset({"中型", "大型", "中二", "大二"}),
    "truck_large": frozenset({"大型", "大二"}),
}


def check_vehicle_class(vehicle_class: str) -> str:
    """Return ``vehicle_class`` if known; raises ValueError listing the known ones."""
    if vehicle_class not in VEHICLE_CLASSES:
        known = ", ".join(VEHICLE_CLASSES)
        raise ValueError(f"unknown vehicle class {vehicle_class!r} (known: {known})")
    return vehicle_class


def licence_day(at: datetime) -> date:
    """The calendar day in Japan at instant ``at`` (an aware datetime)."""
    return at.astimezone(JST).date()


def check_licence(licence: LicenceData, vehicle_class: str, at: datetime) -> None:
    """Raise LicenceRefusedError unless ``licence`` is unexpired at ``at`` and holds a
    category that covers ``vehicle_class``."""
    today = licence_day(at)
    if today > licence.expiry:
        raise LicenceRefusedError(
            LicenceProblem.EXPIRED, f"the driving licence expired on {licence.expiry.isoformat()}"
        )
    allowed = VEHICLE_CLASSES[check_vehicle_class(vehicle_class)]
    if not allowed.intersection(licence.categories):
        held = "、".join(licence.categories) or "none"
        needed = "、".join(sorted(allowed))
        raise LicenceRefusedError(
            LicenceProblem.CATEGORY,
            f"the licence categories ({held}) do not cover a {vehicle_class}; "
            f"one of {needed} is needed",
        )
    log.info("licence valid until %s covers vehicle class %s", licence.expiry, vehicle_class)
