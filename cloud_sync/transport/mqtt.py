"""The registry worker's MQTT transport (paho), on mosquitto or any MQTT 5 / 3.1.1 broker.

* **Persistent session, manual ack.** MQTT 5 ``clean_start`` false with a session expiry
  (3.1.1: ``clean_session`` false) and paho's ``manual_ack``: the PUBACK of a record message is
  sent by :meth:`MqttTransport.settle`, which the worker calls after the commit. Records
  published while the registry was down, and those it received but never settled, are
  delivered again when the session resumes.
* **Receive maximum.** Messages are settled only after their batch's commit, so the broker
  must be allowed many unsettled ones for batches to grow: the MQTT 5 CONNECT says
  ``Receive Maximum`` 1000 (mosquitto's own limit, ``max_inflight_messages``, is 20, and is
  what an MQTT 3.1.1 worker gets).
* **Shared subscription.** With ``BrokerConfig.shared`` the worker subscribes to
  ``$share/registry/msp/v1/dev/+/rec`` (MQTT 5): the broker splits the device stream over
  every worker of the group, each with its own client id and session. Gateways are not
  concerned: they may speak MQTT 3.1.1.
* **One thread.** paho runs in the worker's thread (``Client.loop`` inside :meth:`receive`
  and :meth:`idle`), not on a network thread of its own: no queue, no lock hand-over, no
  thread switch per message (paho's network thread cost a fifth of a worker's time). A lost
  connection is re-established there, with back-off.
* **Tracked fan-out.** :meth:`publish_tracked` returns paho's message id; the broker's PUBACK
  reports it through :meth:`taken`; a disconnect voids every id still in flight (``lost``).
* **No NAK.** MQTT cannot hand a message back: :meth:`release` sends nothing, and the broker
  delivers the message again when this session reconnects (a worker that stops with its
  database down is restarted and gets them).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from msp_protocol.topics import REC_FILTER, REC_SHARED_FILTER

from ..errors import BrokerError
from .base import Delivery, Taken

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
#: Back-off between reconnection attempts, seconds.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0


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


class MqttTransport:
    """A :class:`cloud_sync.transport.Transport` over one paho client, driven from the
    worker's thread (see the module docstring)."""

    def __init__(self, config: BrokerConfig, *, receive_maximum: int = 1000) -> None:
        self.config = config
        self.receive_maximum = receive_maximum
        self._client = make_client(config, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._inbox: list[Delivery] = []
        self._taken: list[int] = []
        self._lost = False
        self._subscribed = False
        self._socket_up = False
        self._retry_at = 0.0
        self._backoff = RECONNECT_MIN_S
        self._generation = 0

    # paho callbacks, called from inside Client.loop on the worker's thread
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                    _p: Any) -> None:  # fmt: skip
        if rc.is_failure:
            log.error("broker refused the registry: %s", rc)
            return
        topic = REC_SHARED_FILTER if self.config.shared else REC_FILTER
        client.subscribe(topic, qos=1)
        self._subscribed = True
        self._generation += 1
        self._backoff = RECONNECT_MIN_S
        log.info("registry connected, subscribed to %s", topic)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                       _p: Any) -> None:  # fmt: skip
        self._subscribed = False
        self._socket_up = False
        self._lost = True
        # Packet ids belong to the connection: what was received and not settled comes again
        # (with new ids) on the next one, and must not be PUBACKed with the old ids.
        self._inbox.clear()
        self._retry_at = time.monotonic() + self._backoff
        log.warning("registry disconnected from the broker: %s", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # a QoS 0 message needs no settling; a QoS 1 one is PUBACKed on this connection only
        token = (self._generation, msg.mid) if msg.qos else None
        self._inbox.append(Delivery(msg.topic, bytes(msg.payload), token))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        if not rc.is_failure:
            self._taken.append(mid)

    # the Transport protocol
    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._subscribed

    def start(self) -> None:
        """Connect and subscribe (on the first :meth:`receive` or :meth:`idle` if the broker
        does not answer now). Raises ``BrokerError`` for a bad URL."""
        self.config.endpoint()  # a bad URL is a configuration error, not a retry
        self._reconnect()

    def _reconnect(self) -> None:
        host, port, _tls = self.config.endpoint()
        props = None
        if self.config.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            # how many unsettled messages the broker may send: mosquitto's default is 20, too
            # few for group commit (settled only after the commit)
            props.ReceiveMaximum = self.receive_maximum
        try:
            self._client.connect(
                host, port, keepalive=self.config.keepalive,
                clean_start=False if self.config.mqtt5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )  # fmt: skip
            self._socket_up = True
        except (OSError, ssl.SSLError) as exc:
            self._socket_up = False
            self._retry_at = time.monotonic() + self._backoff
            log.warning("cannot reach the broker at %s (%s); retrying in %.1f s",
                        self.config.url, exc, self._backoff)  # fmt: skip
            self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)

    def _pump(self, timeout: float) -> None:
        """Network I/O for up to ``timeout`` seconds (a reconnection attempt when due)."""
        if not self._socket_up:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, timeout))
                return
            self._reconnect()
            if not self._socket_up:
                return
        rc = self._client.loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS and self._socket_up:
            # paho reports a lost socket here (its on_disconnect normally ran already)
            self._on_disconnect(self._client, None, None, ReasonCode(PacketTypes.DISCONNECT),
                                None)  # fmt: skip

    def receive(self, max_count: int, linger_s: float, timeout_s: float) -> list[Delivery]:
        """Up to ``max_count`` deliveries: the first within ``timeout_s``, the rest within
        ``linger_s`` after it."""
        deadline = time.monotonic() + timeout_s
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._pump(left)
        close = time.monotonic() + linger_s
        while len(self._inbox) < max_count:
            before = len(self._inbox)
            self._pump(0.0)  # whatever is already in the socket
            if len(self._inbox) > before:
                continue
            left = close - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
            if len(self._inbox) == before:
                break
        batch, self._inbox = self._inbox[:max_count], self._inbox[max_count:]
        return batch

    def idle(self, seconds: float) -> None:
        """Keep the connection for ``seconds`` (messages arriving meanwhile are kept)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(left)

    def settle(self, deliveries: Sequence[Delivery]) -> None:
        """PUBACK each delivery (after the commit) received on the current connection; one
        from before a reconnect is redelivered by the broker anyway (and then a duplicate)."""
        for d in deliveries:
            token = d.token
            if isinstance(token, tuple) and token[0] == self._generation and self._subscribed:
                self._client.ack(token[1], 1)

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to send: the broker redelivers what was never PUBACKed when the session
        reconnects."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Send a registry ack, QoS 1."""
        self._client.publish(topic, payload, qos=1)

    def publish_tracked(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Send a fan-out message, QoS 1; its mid, ``None`` when not connected."""
        if not self._subscribed:
            return None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def taken(self) -> Taken:
        """Mids PUBACKed since the last call; ``lost`` if a disconnect came between."""
        out = Taken(tuple(self._taken), self._lost)
        self._taken.clear()
        self._lost = False
        return out

    def close(self) -> None:
        """Disconnect cleanly (unsettled messages stay in the session)."""
        if self._socket_up:
            self._client.disconnect()
            self._client.loop(0.1)
        self._socket_up = self._subscribed = False
