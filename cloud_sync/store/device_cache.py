"""What a store remembers of enrolled devices between calls of ``Store.device``.

Ingest and republishing ask for a device once per record each; its key, certificate, VIN and
fleet never change after enrolment, so a store reads them once per process and afterwards
reads only ``revoked_at`` (which ``msp-registry revoke`` may set from another process at any
time). ``forget`` drops a device (this process revoked it).
"""

from __future__ import annotations

import dataclasses
import threading

from .base import Device


class DeviceCache:
    """Immutable device rows by id, bounded (the oldest half goes when it is full)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._rows: dict[str, Device] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, device_id: str) -> Device | None:
        """The cached row of ``device_id`` (its ``revoked_at`` possibly stale), or ``None``."""
        return self._rows.get(device_id)

    def put(self, device: Device) -> Device:
        """Remember ``device``; returns it."""
        with self._lock:
            if len(self._rows) >= self._limit:
                for old in list(self._rows)[: self._limit // 2]:
                    del self._rows[old]
            self._rows[device.id] = device
        return device

    def revocation(self, cached: Device, revoked_at: str | None) -> Device:
        """``cached`` with the ``revoked_at`` just read (the cache keeps the newer row)."""
        if cached.revoked_at == revoked_at:
            return cached
        return self.put(dataclasses.replace(cached, revoked_at=revoked_at))

    def forget(self, device_id: str) -> None:
        """Drop ``device_id`` (revoked, or its row otherwise changed)."""
        with self._lock:
            self._rows.pop(device_id, None)
