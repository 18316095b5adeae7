"""The registry worker: takes gateways' records from a broker transport, ingests them, acks after
commit. Broker-neutral: the transport (``cloud_sync.transport``; MQTT in ``transport.mqtt``)
delivers, settles and publishes; this loop decides when.

One step: take a batch (group commit: up to ``batch_max`` deliveries, or what arrived within
``linger_s`` of the first, cut at ``batch_records`` records), run
:class:`cloud_sync.ingest.Ingestor` on it (one transaction, which also stores the fleets'
copies from ``cloud_sync.republish``), publish the acks, and only then settle the deliveries
with the broker, so a message the broker forgets is committed. The fleets' copies are
published from the store and deleted once the broker has taken them, so they survive a
registry crash too.

A batch whose ingest raises anything but ``StoreError`` (a bug the ingestor's own guards did
not catch) is ingested again message by message; a message that still fails alone is logged,
counted ``internal_error`` and settled without a registry ack, so it is not redelivered for
ever (the gateway keeps and re-sends it). A failing database (``StoreError``) acks nothing and
settles nothing: the worker keeps the batch, waits (back-off up to ``STORE_RETRY_MAX_S``) and
commits it again, until the database is back or ``stop`` is set (then the broker redelivers
the batch to the next worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from msp_protocol.topics import ack_topic, encode_ack

from .errors import StoreError
from .ingest import Ack, Ingestor
from .store import Batch
from .transport.base import Delivery, Transport
from .transport.mqtt import BrokerConfig, MqttTransport, make_client

__all__ = ["BrokerConfig", "RegistryWorker", "make_client"]

log = logging.getLogger(__name__)

#: Longest wait between two attempts to commit a batch while the database is down, seconds.
STORE_RETRY_MAX_S = 5.0


class RegistryWorker:
    """One registry worker on one transport; :meth:`run` blocks until ``stop`` is set.

    ``broker`` may be a transport or, for MQTT, its ``BrokerConfig``."""

    def __init__(
        self,
        ingestor: Ingestor,
        broker: Transport | BrokerConfig,
        *,
        batch_max: int = 500,
        batch_records: int = 1000,
        linger_s: float = 0.003,
        fanout_window: int = 200,
    ) -> None:
        self.ingestor = ingestor
        self.transport: Transport = (
            MqttTransport(broker) if isinstance(broker, BrokerConfig) else broker
        )
        self.batch_max = batch_max
        self.batch_records = batch_records
        self.linger_s = linger_s
        self.fanout_window = fanout_window
        #: set once the transport is connected (for tests and the demo)
        self.connected = threading.Event()
        self._fanout_handles: dict[int, int] = {}  # transport handle -> fanout row id
        self._next_expiry_check = 0.0
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set. Raises ``BrokerError`` for a bad broker configuration;
        the database failing is waited out, not raised."""
        self._stop = stop
        self.transport.start()
        try:
            while not stop.is_set():
                # Records waiting for a predecessor (shared subscriptions split one device's
                # stream over workers) are retried often; otherwise idle quietly.
                self.step(timeout=0.02 if self.ingestor.waiting else 0.2)
        finally:
            self.transport.close()
            self.connected.clear()

    def step(self, timeout: float) -> int:
        """Ingest one batch of what arrived (waiting up to ``timeout`` for the first message);
        returns how many messages it handled."""
        self._clear_expired()
        self._flush_fanout()
        received = self.transport.receive(self.batch_max, self.linger_s, timeout)
        self._note_connection()
        if not received and not self.ingestor.waiting:
            return 0
        # with no message: records wait for a predecessor another worker may have committed
        for batch in self._bounded(received):
            acks = self._ingest_retrying(batch)
            if acks is None:  # stopping with the database down: the broker keeps the rest
                self.transport.release(received)
                return 0
            for ack in acks:
                self.transport.publish(ack_topic(ack.device), encode_ack(ack.seq))
            self.transport.settle(batch)
            self._flush_fanout()
        return len(received)

    def _bounded(self, received: list[Delivery]) -> list[list[Delivery]]:
        """``received`` cut into batches of at most ``batch_records`` records (a message may
        carry several, one per line), so that one transaction stays short."""
        batches: list[list[Delivery]] = [[]]
        records = 0
        for d in received:
            n = d.payload.count(b"\n") + 1
            if batches[-1] and records + n > self.batch_records:
                batches.append([])
                records = 0
            batches[-1].append(d)
            records += n
        return batches

    def _note_connection(self) -> None:
        if self.transport.connected:
            self.connected.set()
        else:
            self.connected.clear()

    def _ingest_retrying(self, batch: Sequence[Delivery]) -> list[Ack] | None:
        """The acks of ``batch`` once it is committed; while the database fails, wait and try
        again (``None`` if ``stop`` came first). Nothing is acked or settled meanwhile."""
        delay = 0.1
        while True:
            try:
                return self._ingest([(d.topic, d.payload) for d in batch])
            except StoreError as exc:
                log.error("the database failed (%s); %d messages held unacked, retrying in"
                          " %.1f s", exc, len(batch), delay)  # fmt: skip
            self.transport.idle(delay)
            if self._stop.is_set():
                return None
            delay = min(delay * 2, STORE_RETRY_MAX_S)

    def _ingest(self, messages: list[tuple[str, bytes]]) -> list[Ack]:
        """Ingest and commit ``messages``; the acks to publish. Raises only ``StoreError``."""
        try:
            return self.ingestor.ingest(messages).acks
        except StoreError:
            raise
        except Exception:  # last guard: no message may stop the worker
            if len(messages) > 1:
                log.exception("ingesting a batch of %d failed; trying each message alone",
                              len(messages))  # fmt: skip
                return [ack for m in messages for ack in self._ingest([m])]
            log.exception("internal error ingesting a message on %s: dropped (not acked to the"
                          " gateway, which re-sends it)", messages[0][0][:100] if messages
                          else "?")  # fmt: skip
        try:
            self.ingestor.store.commit(Batch(rejections={"internal_error": 1}))
        except StoreError:
            raise
        except Exception:  # counting is best effort, serving is not
            log.exception("could not count an internal error")
        return []

    def _clear_expired(self) -> None:
        """Once a second: withdraw retained messages whose consent has ended (wall clock: the
        registry's own time, not a record's)."""
        now = time.monotonic()
        if now < self._next_expiry_check:
            return
        self._next_expiry_check = now + 1.0
        try:
            cleared = self.ingestor.store.clear_expired(
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
        except StoreError as exc:  # the batch path waits the database out; this one retries
            log.warning("cannot clear expired messages: %s", exc)
            return
        if cleared:
            log.info("withdrew %d retained messages whose consent ended", cleared)

    def _flush_fanout(self) -> None:
        """Publish committed fleet/public copies (QoS 1); forget each once the broker took it.
        Those not taken go out again after a reconnect or a restart: at least once."""
        taken = self.transport.taken()
        if taken.lost:
            self._fanout_handles.clear()
        done = [self._fanout_handles.pop(h) for h in taken.handles if h in self._fanout_handles]
        store = self.ingestor.store
        try:
            if done:
                store.fanout_done(done)
            room = self.fanout_window - len(self._fanout_handles)
            if not self.transport.connected or room <= 0:
                return
            in_flight = set(self._fanout_handles.values())
            pending = store.fanout_pending(self.fanout_window)
        except StoreError as exc:
            # taken but not deleted: published again later (at least once); the batch path
            # waits the database out
            log.warning("fan-out bookkeeping failed: %s", exc)
            return
        for row_id, pub in pending:
            if row_id in in_flight:
                continue
            handle = self.transport.publish_tracked(pub.topic, pub.payload, retain=pub.retain)
            if handle is None:
                return
            self._fanout_handles[handle] = row_id
            room -= 1
            if room == 0:
                break
