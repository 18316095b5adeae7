"""Clients for the NATS tests: an MQTT 3.1.1 client with a certificate (as gateways and fleet
operators connect to NATS's MQTT listener) and the registry's NATS-native connection."""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.sync_deploy import wait_for


class CertClient:
    """paho on MQTT 3.1.1 with a client certificate; what arrives is kept in order."""

    def __init__(self, client_id: str, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.connects: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)  # fmt: skip
        client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key),
                       cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        client.on_message = self._message
        client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(list(rcs))
        client.on_connect = lambda _c, _u, _f, rc, _p: self.connects.put(rc)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.put(rc)
        self.client = client
        self.port = port

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append((msg.topic, bytes(msg.payload)))

    def connect(self) -> ReasonCode:
        """Connect; returns the CONNACK's reason code (or raises on a TLS/socket failure)."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        return self.connects.get(timeout=10)

    def subscribe(self, topic: str, qos: int) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=qos)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def wait_message(self, payload: bytes) -> None:
        wait_for(lambda: any(p == payload for _t, p in self.messages), f"{payload!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class NatsRegistryClient:
    """The registry's NATS-native connection (user ``registry``), driven from a test's thread:
    an asyncio loop of its own on a daemon thread."""

    def __init__(self, urls: list[str], password: str) -> None:
        import nats  # noqa: PLC0415 - the optional extra

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.received: list[tuple[str, bytes]] = []
        self.nc = self._run(nats.connect(servers=urls, user="registry", password=password,
                                         max_reconnect_attempts=-1))  # fmt: skip

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=20)

    def subscribe(self, subject: str) -> None:
        async def keep(msg: Any) -> None:
            self.received.append((msg.subject, msg.data))

        async def sub() -> None:
            await self.nc.subscribe(subject, cb=keep)
            await self.nc.flush()

        self._run(sub())

    def publish(self, subject: str, data: bytes) -> None:
        async def pub() -> None:
            await self.nc.publish(subject, data)
            await self.nc.flush()

        self._run(pub())

    def close(self) -> None:
        self._run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
