"""What an uplink needs from the outbox, what it promises, and an in-memory uplink.

An uplink drains the durable outbox (``edge_agent.outbox``) to the registry and prunes it on
the registry's cumulative acks. ``MqttUplink`` does it over MQTT; ``MemoryUplink`` hands the
records to a function in the same process (a registry ingestor in tests and demos).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import AgentError


class UplinkError(AgentError):
    """The uplink cannot be set up (bad broker address, unreadable TLS files)."""


class OutboxRecord(Protocol):
    """A signed record waiting in the outbox."""

    @property
    def seq(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def jws(self) -> str: ...


class OutboxCounters(Protocol):
    """The outbox statistics an uplink watches: both grow when a gap record is written;
    ``last_seq`` with every record written (by this process or another)."""

    @property
    def last_seq(self) -> int: ...

    @property
    def evicted_total(self) -> int: ...

    @property
    def lost_total(self) -> int: ...


class Outbox(Protocol):
    """The part of ``edge_agent.outbox.Outbox`` an uplink uses."""

    def stats(self) -> OutboxCounters:
        """Counters of the outbox; ``evicted_total`` grows when records are evicted,
        ``lost_total`` when a damaged outbox file was rebuilt without some seqs."""

    def pending(self, limit: int = 100) -> Sequence[OutboxRecord]:
        """Unacked records due for sending, in seq order."""

    def ack(self, seq: int) -> int:
        """Delete every record with a seq <= ``seq``; returns how many were deleted."""

    def records(self, kind: str | None = None, after: int = 0) -> Iterator[OutboxRecord]:
        """Every stored record (of ``kind`` only, if given; of seqs above ``after``) in seq
        order."""


@dataclass(frozen=True, slots=True)
class UplinkStats:
    """Counters of an uplink since it started."""

    published: int = 0
    resent: int = 0
    acked: int = 0
    refused: int = 0
    connects: int = 0
    messages: int = 0  # MQTT messages published (a batch is one)
    acks: int = 0  # ack messages received from the registry
    tls_resumed: int = 0  # connections that resumed the previous TLS session
    failovers: int = 0  # moves from one broker to another (failing over or back)

    def bump(self, **deltas: int) -> UplinkStats:
        """A copy with the named counters increased."""
        return dataclasses.replace(
            self, **{name: getattr(self, name) + delta for name, delta in deltas.items()}
        )


#: Delivers one record JWS for a device; returns the registry's ack seq, or None for no ack.
Deliver = Callable[[str, str], int | None]


class MemoryUplink:
    """Hands outbox records to ``deliver`` in the same process and applies the acks it returns."""

    def __init__(self, device: str, outbox: Outbox, deliver: Deliver) -> None:
        self.device = device
        self.outbox = outbox
        self._deliver = deliver
        self._stats = UplinkStats()

    def stats(self) -> UplinkStats:
        """Counters since creation."""
        return self._stats

    def flush(self, batch: int = 100) -> int:
        """Send everything pending, in seq order, until the outbox is empty or the registry
        stops acking; returns how many records were acked."""
        acked = 0
        while True:
            records = list(self.outbox.pending(batch))
            if not records:
                return acked
            ack = None
            for record in records:
                ack = self._deliver(self.device, record.jws)
            self._stats = self._stats.bump(published=len(records))
            if ack is None:
                return acked
            pruned = self.outbox.ack(ack)
            acked += pruned
            self._stats = self._stats.bump(acked=pruned)
            if pruned == 0:
                return acked
