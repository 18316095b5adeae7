"""The registry worker: subscribes to every gateway's records, ingests them, acks after commit.

paho's callbacks only put messages on a queue; the worker's own thread takes them in batches,
runs :class:`cloud_sync.ingest.Ingestor` (one transaction per batch, which also stores the
fleets' copies from ``cloud_sync.republish``), publishes the acks, and only then acknowledges
the messages to the broker (``manual_ack``), so a message the broker considers delivered is
committed. The fleets' copies are published from the store and deleted once the broker
acknowledges them, so they survive a registry crash too. The
session is persistent (MQTT 5 ``clean_start`` false with a session expiry; 3.1.1
``clean_session`` false), so records published while the registry was down are delivered
when it returns.

A batch whose ingest raises anything but ``StoreError`` (a bug the ingestor's own guards did
not catch) is ingested again message by message; a message that still fails alone is logged,
counted ``internal_error`` and acknowledged to the broker without a registry ack, so it is not
redelivered for ever (the gateway keeps and re-sends it). Only a failing database stops the
worker, unacknowledged, and the broker redelivers to the next registry.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from msp_protocol.topics import REC_FILTER, REC_SHARED_FILTER, ack_topic, encode_ack

from .errors import BrokerError, StoreError
from .ingest import Ack, Ingestor
from .store import Batch

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
_DISCONNECTED = -1


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """How the registry reaches the broker; ``url`` is ``mqtt://host:port`` or ``mqtts://``."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = "registry"
    password: str | None = None
    client_id: str = "msp-registry"
    mqtt5: bool = True
    shared: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30

    def endpoint(self) -> tuple[str, int, bool]:
        """Host, port and whether TLS is used, from ``url``."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BrokerError(f"broker URL {self.url!r}: expected mqtt://HOST:PORT or mqtts://")
        tls = parts.scheme == "mqtts"
        return parts.hostname, parts.port or (8883 if tls else 1883), tls


def make_client(config: BrokerConfig, *, manual_ack: bool) -> mqtt.Client:
    """A paho client (callback API v2) set up for ``config``, not yet connected."""
    protocol = mqtt.MQTTv5 if config.mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        protocol=protocol,
        clean_session=None if config.mqtt5 else False,
        manual_ack=manual_ack,
    )
    if config.username:
        client.username_pw_set(config.username, config.password)
    _host, _port, tls = config.endpoint()
    if tls:
        client.tls_set(
            ca_certs=str(config.ca_file) if config.ca_file else None,
            certfile=str(config.cert_file) if config.cert_file else None,
            keyfile=str(config.key_file) if config.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_socket_open = _no_delay
    return client


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    # Acks are small and latency-bound: without this, Nagle's algorithm holds one until the
    # previous packet is TCP-acked, which delayed acks stretch to ~40 ms.
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


class RegistryWorker:
    """One registry worker on one broker connection; :meth:`run` blocks until ``stop`` is set."""

    def __init__(
        self,
        ingestor: Ingestor,
        broker: BrokerConfig,
        *,
        batch_max: int = 500,
        fanout_window: int = 200,
    ) -> None:
        self.ingestor = ingestor
        self.broker = broker
        self.batch_max = batch_max
        self.fanout_window = fanout_window
        self.connected = threading.Event()
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._pubacks: queue.Queue[int] = queue.Queue()  # mids; _DISCONNECTED on a disconnect
        self._fanout_mids: dict[int, int] = {}  # MQTT mid -> fanout row id, in flight
        self._next_expiry_check = 0.0
        self._client = make_client(broker, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    # paho callbacks: network thread, paho's locks held; hand over and return
    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the registry: %s", rc)
            return
        topic = REC_SHARED_FILTER if self.broker.shared else REC_FILTER
        client.subscribe(topic, qos=1)
        self.connected.set()
        log.info("registry connected, subscribed to %s", topic)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connected.clear()
        self._pubacks.put(_DISCONNECTED)
        log.warning("registry disconnected from the broker: %s", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        if not rc.is_failure:
            self._pubacks.put(mid)

    def _connect(self) -> None:
        host, port, _tls = self.broker.endpoint()
        props = None
        if self.broker.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self._client.connect_async(
                host,
                port,
                keepalive=self.broker.keepalive,
                clean_start=False if self.broker.mqtt5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )
        except (OSError, ValueError) as exc:
            raise BrokerError(f"{self.broker.url}: {exc}") from exc

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; raises ``StoreError`` if the database fails (unacked
        messages are then redelivered to the next registry that connects)."""
        self._connect()
        self._client.loop_start()
        try:
            while not stop.is_set():
                # Records waiting for a predecessor (shared subscriptions split one device's
                # stream over workers) are retried often; otherwise idle quietly.
                self.step(timeout=0.02 if self.ingestor.waiting else 0.2)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def step(self, timeout: float) -> int:
        """Ingest one batch of what arrived (waiting up to ``timeout`` for the first message);
        returns how many messages it handled."""
        self._clear_expired()
        self._flush_fanout()
        try:
            batch = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            batch = []
            if not self.ingestor.waiting:
                return 0
            # records wait for a predecessor another worker may have committed meanwhile
        while batch and len(batch) < self.batch_max:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        acks = self._ingest([(m.topic, m.payload) for m in batch])
        for ack in acks:
            self._client.publish(ack_topic(ack.device), encode_ack(ack.seq), qos=1)
        for m in batch:
            if m.qos > 0:
                self._client.ack(m.mid, m.qos)
        self._flush_fanout()
        return len(batch)

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
        cleared = self.ingestor.store.clear_expired(
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
        if cleared:
            log.info("withdrew %d retained messages whose consent ended", cleared)

    def _flush_fanout(self) -> None:
        """Publish committed fleet/public copies (QoS 1); forget each once the broker acks it.
        Unacknowledged ones go out again after a reconnect or a restart: at least once."""
        done: list[int] = []
        while True:
            try:
                mid = self._pubacks.get_nowait()
            except queue.Empty:
                break
            if mid == _DISCONNECTED:
                self._fanout_mids.clear()
            elif mid in self._fanout_mids:
                done.append(self._fanout_mids.pop(mid))
        store = self.ingestor.store
        if done:
            store.fanout_done(done)
        room = self.fanout_window - len(self._fanout_mids)
        if not self.connected.is_set() or room <= 0:
            return
        in_flight = set(self._fanout_mids.values())
        for row_id, pub in store.fanout_pending(self.fanout_window):
            if row_id in in_flight:
                continue
            info = self._client.publish(pub.topic, pub.payload, qos=1, retain=pub.retain)
            self._fanout_mids[info.mid] = row_id
            room -= 1
            if room == 0:
                break
