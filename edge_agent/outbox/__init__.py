"""The durable outbox: records signed, chained and kept in SQLite until the registry acks them.

``Outbox.open(path, signer, vin, limits)`` then ``append(body, ts, session)`` /
``append_many([NewRecord, ...])`` to store, ``pending(limit)`` to send, ``ack(seq)`` when the
registry confirms, ``stats()`` and ``health_body(...)`` to report. Seqs are reserved in a
chain-state file beside the database (``chainstate``); a lost or damaged file is rebuilt
from its intact rows (``salvage``, ``recovery``). See docs/records.md.
"""

from __future__ import annotations

from .database import (
    OutboxFullError,
    OutboxLimits,
    OutboxSchemaError,
    OutboxStats,
    OutboxStorageError,
    StoredRecord,
    connect,
    iter_records,
    read_anchor,
    stats_of,
)
from .eviction import PRIORITY
from .store import NewRecord, Outbox

__all__ = [
    "PRIORITY",
    "NewRecord",
    "Outbox",
    "OutboxFullError",
    "OutboxLimits",
    "OutboxSchemaError",
    "OutboxStats",
    "OutboxStorageError",
    "StoredRecord",
    "connect",
    "iter_records",
    "read_anchor",
    "stats_of",
]
