"""The registry's stores: the :class:`Store` protocol and the rows it exchanges (``base``),
and one module per back end (``sqlite``, the embedded default).
"""

from .base import (
    Accepted,
    Batch,
    CardIdentity,
    ChainHead,
    Device,
    Eviction,
    Fanned,
    Fanout,
    Fleet,
    Person,
    Publication,
    Quarantined,
    SessionRow,
    Store,
    TripRow,
    VehicleRow,
    Withheld,
)

__all__ = [
    "Accepted",
    "Batch",
    "CardIdentity",
    "ChainHead",
    "Device",
    "Eviction",
    "Fanned",
    "Fanout",
    "Fleet",
    "Person",
    "Publication",
    "Quarantined",
    "SessionRow",
    "Store",
    "TripRow",
    "VehicleRow",
    "Withheld",
]
