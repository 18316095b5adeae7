"""The registry worker's transport on a NATS cluster: JetStream in, NATS publishes out.

* **The cluster holds every record until it is stored.** A JetStream stream
  (:data:`STREAM`, subjects ``msp.v1.dev.*.rec``, file storage, ``num_replicas`` 3 on a
  three-node cluster, work-queue retention) captures every QoS 1 MQTT publish of the gateways
  on NATS's MQTT listener. Every worker binds the one durable pull consumer
  (:data:`DURABLE`), so the group gets each message once; :meth:`JetStreamTransport.settle`
  acks it to JetStream after the database commit, :meth:`~JetStreamTransport.release` NAKs it
  (redelivered at once, to any worker); a message never acked is redelivered after
  ``ack_wait_s``, to whichever worker pulls (a worker that died holding a batch).
* **Acks and fan-out by NATS publish.** A registry ack ``msp.v1.dev.{id}.ack`` reaches the
  gateway's MQTT subscription on ``msp/v1/dev/{id}/ack``; fleet copies go the same way. A
  tracked publication is taken once a flush (PING/PONG) after it came back: the server has
  it. A NATS publish cannot carry MQTT's retain flag, so retained publications (device keys,
  scores) go over the cluster's MQTT listener with the registry's own certificate
  (``CN=registry``, issued by ``nats-config``) and are taken on their PUBACK; without that
  certificate they stay in the store, unpublished, logged once.
* **One thread to the worker.** nats-py is asyncio: the loop runs on a daemon thread of its
  own and every method hands it a coroutine and waits for it; the worker sees a blocking
  transport like the MQTT one. Connection loss and reconnection to another node are
  nats-py's (``servers`` lists every node).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ..errors import BrokerError
from .base import Delivery, Taken

log = logging.getLogger(__name__)

STREAM: Final = "MSP_REC"
REC_SUBJECTS: Final = "msp.v1.dev.*.rec"
DURABLE: Final = "registry"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JetStreamConfig:
    """How a registry worker reaches the cluster: every node's ``nats://`` URL, the registry's
    NATS user and password; for retained publications the MQTT listeners (``mqtts://``) and
    the registry's client certificate, key and the servers' CA."""

    urls: tuple[str, ...]
    user: str = "registry"
    password: str | None = None
    replicas: int = 3
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20_000
    mqtt_urls: tuple[str, ...] = ()
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str = "msp-registry"

    def __post_init__(self) -> None:
        if not self.urls:
            raise BrokerError("no NATS server URL")
        for url in (*self.urls, *self.mqtt_urls):
            parts = urlsplit(url)
            want = "nats" if url in self.urls else "mqtts"
            if parts.scheme != want or not parts.hostname:
                raise BrokerError(f"broker URL {url!r}: expected {want}://HOST:PORT")


def config_from_dir(nats_dir: Path, urls: Sequence[str] = (),
                    client_id: str = "msp-registry") -> JetStreamConfig:  # fmt: skip
    """The connection ``msp-registry nats-config`` prepared in ``nats_dir``: the nodes' URLs
    (``urls`` instead, if given), the registry's password, MQTT certificate and the CA."""
    try:
        cluster = json.loads((nats_dir / "cluster.json").read_text())
        password = (nats_dir / "registry.secret").read_text().strip()
        client_urls = tuple(urls) or tuple(str(u) for u in cluster["client_urls"])
        mqtt_urls = tuple(str(u) for u in cluster["mqtt_urls"])
        replicas = int(cluster.get("replicas", 3))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerError(f"{nats_dir}: not a usable nats-config directory ({exc})") from None
    return JetStreamConfig(client_urls, password=password, replicas=replicas, mqtt_urls=mqtt_urls,
                           ca_file=nats_dir / "device-ca.pem",
                           cert_file=nats_dir / "registry-mqtt.pem",
                           key_file=nats_dir / "registry-mqtt.key",
                           client_id=client_id)  # fmt: skip


class _RetainPublisher:
    """A paho MQTT 3.1.1 client on its network thread, for retained publications only; it
    moves to the next MQTT listener when one cannot be reached."""

    def __init__(self, config: JetStreamConfig) -> None:
        self.config = config
        self._endpoints = [(urlsplit(u).hostname or "", urlsplit(u).port or 8883)
                           for u in config.mqtt_urls]  # fmt: skip
        self._index = 0
        self._lock = threading.Lock()
        self._taken: list[int] = []
        self._lost = False
        self.up = False
        self._client = self._make()

    def _make(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cfg.client_id}-retain",
                             protocol=mqtt.MQTTv311, clean_session=True)  # fmt: skip
        try:
            client.tls_set(ca_certs=str(cfg.ca_file), certfile=str(cfg.cert_file),
                           keyfile=str(cfg.key_file), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"registry MQTT certificate ({cfg.cert_file}): {exc}") from exc
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = lambda _c, _u: self._next()
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.up = not rc.is_failure
        if rc.is_failure:
            log.error("NATS's MQTT listener refused the registry: %s", rc)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                       _p: Any) -> None:  # fmt: skip
        with self._lock:
            self.up = False
            self._lost = True
        self._next()

    def _next(self) -> None:
        # paho retries the host it was given: point its next attempt at the next listener
        self._index = (self._index + 1) % len(self._endpoints)
        host, port = self._endpoints[self._index]
        self._client.connect_async(host, port, keepalive=30)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        if not rc.is_failure:
            with self._lock:
                self._taken.append(mid)

    def start(self) -> None:
        host, port = self._endpoints[0]
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> int | None:
        if not self.up:
            return None
        info = self._client.publish(topic, payload, qos=1, retain=True)
        return int(info.mid) if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def taken(self) -> tuple[list[int], bool]:
        with self._lock:
            taken, self._taken = self._taken, []
            lost, self._lost = self._lost, False
        return taken, lost

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class JetStreamTransport:
    """A :class:`cloud_sync.transport.Transport` on a NATS cluster (module docstring)."""

    #: handles of retained publications (MQTT mids) are kept apart from NATS ones
    _RETAIN_BASE: Final = 1 << 40

    def __init__(self, config: JetStreamConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="jetstream")  # fmt: skip
        self._nc: Any = None
        self._sub: Any = None  # the pull subscription, once bound (kept across reconnects)
        self._lost = False
        self._next_setup = 0.0
        self._published: list[int] = []  # NATS handles waiting for a flush
        self._next_handle = 0
        self._retain: _RetainPublisher | None = None
        self._warned_retain = False

    # plumbing ---------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self) -> None:
        import nats  # noqa: PLC0415 - the optional [nats] extra, loaded only for NATS

        async def disconnected() -> None:
            self._lost = True
            log.warning("registry disconnected from the NATS cluster")

        async def reconnected() -> None:
            log.info("registry reconnected to %s", self._nc.connected_url.netloc)

        cfg = self.config
        while True:
            try:
                self._nc = await nats.connect(
                    servers=list(cfg.urls), user=cfg.user, password=cfg.password,
                    name=cfg.client_id, allow_reconnect=True, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5, connect_timeout=2, ping_interval=5,
                    max_outstanding_pings=2, disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                )  # fmt: skip
                return
            except Exception as exc:  # noqa: BLE001 - nats-py raises several kinds; retried
                log.warning("cannot reach the NATS cluster at %s (%s); retrying",
                            ",".join(cfg.urls), exc)  # fmt: skip
                await asyncio.sleep(1.0)

    async def _setup(self) -> None:
        """The stream and the durable consumer (created by whichever worker comes first)."""
        from nats.js.api import (  # noqa: PLC0415
            AckPolicy,
            ConsumerConfig,
            DeliverPolicy,
            RetentionPolicy,
            StorageType,
            StreamConfig,
        )
        from nats.js.errors import BadRequestError  # noqa: PLC0415

        js = self._nc.jetstream(timeout=5)
        stream = StreamConfig(name=STREAM, subjects=[REC_SUBJECTS], storage=StorageType.FILE,
                              retention=RetentionPolicy.WORK_QUEUE,
                              num_replicas=self.config.replicas)  # fmt: skip
        try:
            await js.add_stream(stream)
        except BadRequestError as exc:  # it exists with other settings: keep it, say so
            log.warning("JetStream stream %s exists as it is (%s)", STREAM, exc)
        consumer = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
                                  deliver_policy=DeliverPolicy.ALL,
                                  ack_wait=self.config.ack_wait_s,
                                  max_ack_pending=self.config.max_ack_pending)  # fmt: skip
        self._sub = await js.pull_subscribe(REC_SUBJECTS, durable=DURABLE, stream=STREAM,
                                            config=consumer)  # fmt: skip
        log.info("registry bound to JetStream consumer %s on stream %s", DURABLE, STREAM)

    def _ensure_ready(self) -> bool:
        if self._nc is None or not self._nc.is_connected:
            return False
        if self._sub is not None:
            return True
        if time.monotonic() < self._next_setup:
            return False
        try:
            self._call(self._setup(), timeout=15)
        except Exception as exc:  # noqa: BLE001 - JetStream not ready yet (no leader, ...)
            log.warning("JetStream not ready (%s); retrying", exc)
            self._next_setup = time.monotonic() + 1.0
        return self._sub is not None

    # the Transport protocol ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while connected and bound to the consumer."""
        return bool(self._sub is not None and self._nc is not None and self._nc.is_connected)

    def start(self) -> None:
        """Start the asyncio thread and connect (retried in the background)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._connect(), self._loop)
        if self.config.mqtt_urls and self.config.cert_file is not None:
            self._retain = _RetainPublisher(self.config)
            self._retain.start()

    def receive(self, max_count: int, linger_s: float, timeout_s: float) -> list[Delivery]:
        """Up to ``max_count`` messages pulled from the durable consumer."""
        if not self._ensure_ready():
            time.sleep(min(timeout_s, 0.2))
            return []
        try:
            msgs = self._call(self._fetch(max_count, max(timeout_s, 0.05)), timeout_s + 10)
        except Exception as exc:  # noqa: BLE001 - a lost connection or leader: retried
            log.warning("pulling from JetStream failed: %s", exc)
            time.sleep(min(timeout_s, 0.2))
            return []
        return [Delivery(m.subject.replace(".", "/"), m.data, m) for m in msgs]

    async def _fetch(self, count: int, timeout: float) -> list[Any]:
        import nats.errors  # noqa: PLC0415

        try:
            return list(await self._sub.fetch(batch=count, timeout=timeout))
        except (TimeoutError, nats.errors.TimeoutError):
            return []

    def idle(self, seconds: float) -> None:
        """Wait ``seconds`` (nats-py keeps the connection on its own thread)."""
        time.sleep(seconds)

    def settle(self, deliveries: Sequence[Delivery]) -> None:
        """Ack each message to JetStream (after the commit); flushed before returning."""
        if deliveries:
            self._each(deliveries, "ack")

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """NAK each message: JetStream redelivers it at once, to any worker of the group."""
        if deliveries:
            self._each(deliveries, "nak")

    def _each(self, deliveries: Sequence[Delivery], what: str) -> None:
        async def run() -> None:
            for d in deliveries:
                await getattr(d.token, what)()
            await self._nc.flush(timeout=5)

        try:
            self._call(run())
        except Exception as exc:  # noqa: BLE001 - unacked: JetStream redelivers after ack_wait
            log.warning("could not %s %d messages to JetStream (%s): they come again",
                        what, len(deliveries), exc)  # fmt: skip

    def publish(self, topic: str, payload: bytes) -> None:
        """Send a registry ack by NATS publish (the gateway's MQTT subscription gets it)."""
        if self._nc is not None and self._nc.is_connected:
            try:
                self._call(self._nc.publish(topic.replace("/", "."), payload), 5)
            except Exception as exc:  # noqa: BLE001 - an ack lost costs nothing (cumulative)
                log.info("ack on %s not sent: %s", topic, exc)

    def publish_tracked(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Send a fan-out message; its handle, ``None`` when it cannot be sent now."""
        if retain:
            return self._publish_retained(topic, payload)
        if not self.connected:
            return None
        try:
            self._call(self._nc.publish(topic.replace("/", "."), payload), 5)
        except Exception:  # noqa: BLE001 - not sent: the store keeps the row
            return None
        self._next_handle += 1
        self._published.append(self._next_handle)
        return self._next_handle

    def _publish_retained(self, topic: str, payload: bytes) -> int | None:
        if self._retain is None:
            if not self._warned_retain:
                self._warned_retain = True
                log.warning("retained publications (%s...) wait in the store: a NATS publish"
                            " cannot be retained, and no registry MQTT certificate is"
                            " configured (nats-config writes registry-mqtt.pem)", topic)
            return None
        mid = self._retain.publish(topic, payload)
        return None if mid is None else self._RETAIN_BASE + mid

    def taken(self) -> Taken:
        """NATS publications the server has (a flush came back) and retained ones PUBACKed;
        ``lost`` if a connection dropped meanwhile."""
        handles: list[int] = []
        lost, self._lost = self._lost, False
        if self._published:
            pending, self._published = self._published, []
            try:
                self._call(self._nc.flush(timeout=5), 10)
                handles += pending
            except Exception:  # noqa: BLE001 - unknown fate: published again from the store
                lost = True
        if self._retain is not None:
            mids, retain_lost = self._retain.taken()
            handles += [self._RETAIN_BASE + mid for mid in mids]
            lost = lost or retain_lost
        return Taken(tuple(handles), lost)

    def close(self) -> None:
        """Disconnect; unacked messages stay with JetStream."""
        if self._retain is not None:
            self._retain.close()
        if self._nc is not None:
            try:
                self._call(self._nc.close(), 10)
            except Exception as exc:  # noqa: BLE001 - closing anyway
                log.info("closing the NATS connection: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
