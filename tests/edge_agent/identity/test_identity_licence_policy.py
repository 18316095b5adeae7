"""Licence check: categories per vehicle class, and expiry as a Japanese calendar day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from edge_agent.card.licence import LicenceData
from edge_agent.identity.errors import LicenceProblem, LicenceRefusedError
from edge_agent.identity.licence_policy import check_licence, check_vehicle_class

AT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
EXPIRY = date(2030, 1, 31)


@pytest.mark.parametrize(
    ("categories", "vehicle_class", "allowed"),
    [
        (("普通",), "car", True),
        (("準中型",), "car", True),
        (("大型",), "car", True),
        (("普二",), "car", True),
        (("原付", "普自二"), "car", False),
        ((), "car", False),
        (("普通",), "truck_semi_medium", False),
        (("準中型",), "truck_semi_medium", True),
        (("準中型",), "truck_medium", False),
        (("中型",), "truck_medium", True),
        (("中型",), "truck_large", False),
        (("大型",), "truck_large", True),
        (("普通", "大二"), "truck_large", True),
    ],
)
def test_categories_cover_vehicle_classes(
    categories: tuple[str, ...], vehicle_class: str, allowed: bool
) -> None:
    licence = LicenceData(EXPIRY, categories)
    if allowed:
        check_licence(licence, vehicle_class, AT)
        return
    with pytest.raises(LicenceRefusedError, match=f"do not cover a {vehicle_class}") as caught:
        check_licence(licence, vehicle_class, AT)
    assert caught.value.problem is LicenceProblem.CATEGORY


def test_valid_through_the_expiry_day_in_japan() -> None:
    licence = LicenceData(EXPIRY, ("普通",))
    check_licence(licence, "car", datetime(2030, 1, 31, 14, 59, tzinfo=UTC))  # 23:59 JST
    with pytest.raises(LicenceRefusedError, match="expired on 2030-01-31") as caught:
        check_licence(licence, "car", datetime(2030, 1, 31, 15, 0, tzinfo=UTC))  # 00:00 JST
    assert caught.value.problem is LicenceProblem.EXPIRED


def test_unknown_vehicle_class_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown vehicle class 'bus'.*truck_large"):
        check_vehicle_class("bus")
