"""Counts in human output: the noun agrees with the number."""

from __future__ import annotations

import pytest

from edge_agent.text import plural


@pytest.mark.parametrize(
    ("count", "noun", "irregular", "text"),
    [
        (0, "event", None, "0 events"),
        (1, "event", None, "1 event"),
        (2, "event", None, "2 events"),
        (1, "bus", "buses", "1 bus"),
        (3, "bus", "buses", "3 buses"),
        (1234567, "frame", None, "1,234,567 frames"),
    ],
)
def test_plural(count: int, noun: str, irregular: str | None, text: str) -> None:
    assert plural(count, noun, irregular) == text
