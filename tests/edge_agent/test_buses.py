"""Bus filters: the filters handed to python-can pass exactly the wanted IDs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.buses import can_filters

standard = st.integers(0, 0x7FF)
extended = st.integers(0x800, 0x1FFFFFFF)


def _passes(filters: list, can_id: int) -> bool:  # type: ignore[type-arg]
    return any((can_id & f["can_mask"]) == (f["can_id"] & f["can_mask"]) for f in filters)


@settings(max_examples=200)
@given(st.sets(standard, max_size=60))
def test_standard_ids_pass_exactly(ids: set[int]) -> None:
    filters = can_filters(frozenset(ids))
    assert {i for i in range(0x800) if _passes(filters, i)} == ids


@settings(max_examples=100)
@given(st.integers(0x18DA0000 >> 8, 0x18DAFFFF >> 8), st.sets(st.integers(0, 255), max_size=40))
def test_extended_ranges_pass_exactly(block: int, low: set[int]) -> None:
    ids = frozenset((block << 8) | x for x in low)
    filters = can_filters(ids)
    window = range(block << 8, (block + 1) << 8)
    assert {i for i in window if _passes(filters, i)} == ids


def test_aligned_runs_collapse_into_mask_filters() -> None:
    obd = frozenset(range(0x7E8, 0x7F0)) | frozenset(range(0x18DAF100, 0x18DAF200))
    assert can_filters(obd) == [
        {"can_id": 0x7E8, "can_mask": 0x7F8},
        {"can_id": 0x18DAF100, "can_mask": 0x1FFFFF00},
    ]
