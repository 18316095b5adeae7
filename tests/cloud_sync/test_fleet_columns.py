"""``msp-registry fleet watch`` with several fleets: one column each, a cut line says so."""

from __future__ import annotations

from cloud_sync.commands.fleet import side_by_side


def test_a_line_that_fits_is_kept_whole() -> None:
    assert side_by_side("✓ trip JT1 #1", 0, 20) == "✓ trip JT1 #1"
    assert side_by_side("x" * 19, 1, 20) == " " * 20 + "x" * 19


def test_a_longer_line_is_cut_with_an_ellipsis_and_keeps_the_gap() -> None:
    text = "✓ trip JTHAUL00000000001 #3 fp-WaMGX_iDXbBmvEAqvEgcqz 9.569 km score 75"
    cut = side_by_side(text, 1, 30)
    assert cut == " " * 30 + text[:28] + "…"
    assert len(cut) == 30 + 29  # one column plus the text, a space short of the next column
