"""Counts as people read them, for the CLI's and the service's human output."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` with ``noun`` in the right number and thousands separators: ``1 event``,
    ``0 events``, ``12,345 frames``; ``plural_noun`` for irregular plurals (``bus``,
    ``buses``)."""
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count:,} {word}"
