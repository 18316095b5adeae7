"""What the registry worker needs from a broker, whatever the broker: the transport protocol.

The worker loop (``cloud_sync.worker``) is broker-neutral. A transport gives it the records
gateways publish, in batches of :class:`Delivery` ``(topic, payload, token)``, and carries what
the worker sends back. The contract, which every implementation keeps:

* **At least once in, settle after commit.** :meth:`Transport.receive` hands out deliveries;
  the broker keeps each one until the worker calls :meth:`Transport.settle` on it, which the
  worker does only after the database commit of the batch that held it (a rejected record is
  settled too: its rejection is committed, counted). A delivery never settled is delivered
  again: to this worker after a reconnect, or to another worker of the group after a crash.
  The worker may hold a batch unsettled for as long as the database is down, retrying.
  MQTT (``cloud_sync.transport.mqtt``): settle = the PUBACK of a ``manual_ack`` client on a
  persistent session. JetStream pull consumer: settle = ``msg.ack()`` after the commit;
  :meth:`Transport.release` = ``msg.nak()`` (redeliver now, to any consumer of the group).
* **Acks are fire and forget.** :meth:`Transport.publish` sends a registry ack (QoS 1); losing
  one costs nothing, the next ack is cumulative and the gateway re-sends what it lacks.
* **Fan-out is tracked.** :meth:`Transport.publish_tracked` sends a fleet/public copy and
  returns a handle; :meth:`Transport.taken` reports the handles the broker has taken since the
  last call (MQTT: PUBACK; JetStream: the stream's publish ack), and ``lost`` when the
  connection dropped: every handle not yet reported will never be, and the worker publishes
  those rows again from the store. The store deletes a fan-out row only once it was taken.
* **One thread.** Every method is called from the worker's thread only; a transport that
  needs a network thread (or an asyncio loop, as nats-py does) hides it. :meth:`receive` and
  :meth:`idle` are where a single-threaded transport does its network I/O (keepalive,
  reconnect with back-off): the worker calls one of them at least every few hundred ms.
* **Grouping is the broker's.** Several workers share the device stream as one group (MQTT 5
  shared subscription ``$share/registry/...``; a JetStream durable consumer bound by every
  worker). A device's records may land on different workers in any order; the ingestor and
  the database keep the chain (``cloud_sync.ingest``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message from a gateway's record topic; ``token`` is the transport's own handle for
    settling it (opaque to the worker)."""

    topic: str
    payload: bytes
    token: object = None


@dataclass(frozen=True, slots=True)
class Taken:
    """What :meth:`Transport.taken` reports: handles of tracked publications the broker took,
    and whether the connection was lost meanwhile (every other handle is then void)."""

    handles: Sequence[int] = field(default_factory=tuple)
    lost: bool = False


class Transport(Protocol):
    """A broker connection for one registry worker; see the module docstring."""

    @property
    def connected(self) -> bool:
        """True while the broker connection is up and subscribed."""

    def start(self) -> None:
        """Connect (asynchronously: a broker that is down is retried, not an error) and
        subscribe to every device's records. Raises ``BrokerError`` for a bad configuration."""

    def receive(self, max_count: int, linger_s: float, timeout_s: float) -> list[Delivery]:
        """Up to ``max_count`` deliveries: waits up to ``timeout_s`` for the first, then up to
        ``linger_s`` more for others (group commit); ``[]`` if none came."""

    def idle(self, seconds: float) -> None:
        """Keep the connection for ``seconds`` without taking deliveries (the worker waits for
        the database)."""

    def settle(self, deliveries: Sequence[Delivery]) -> None:
        """The deliveries' batch is committed: the broker may forget them."""

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """The worker will not settle these (it stops with the database down): let the broker
        deliver them again, to whichever worker."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Send a registry ack (QoS 1, not tracked)."""

    def publish_tracked(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Send a fan-out publication (QoS 1); its handle for :meth:`taken`, or ``None`` when
        not connected (nothing was sent)."""

    def taken(self) -> Taken:
        """Tracked handles the broker has taken since the last call, and whether the
        connection was lost meanwhile."""

    def close(self) -> None:
        """Disconnect; unsettled deliveries stay with the broker."""
