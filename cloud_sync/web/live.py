"""New records without a reload: the dashboard subscribes to what the registry republishes,
as an internal MQTT client (user ``web``, ``msp-registry mosquitto-config``: read-only on
``msp/v1/fleet/#`` and ``msp/v1/public/#``), and tells open pages by server-sent events.

An event names only the channel and the kind (``{"kind": "trip"}``), never a person's data:
the page then fetches itself again, through the same consent rules and exchange log as any
answer. A fleet's page listens to that fleet's channel only; the public map to ``public``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import paho.mqtt.client as mqtt

from msp_protocol.topics import PREFIX

from ..worker import BrokerConfig, make_client

log = logging.getLogger(__name__)

#: What the dashboard subscribes to.
FILTERS = (f"{PREFIX}/fleet/#", f"{PREFIX}/public/#")
#: A comment line this often keeps proxies and the browser from closing an idle stream.
KEEPALIVE_S = 15.0


def channel_of(topic: str) -> tuple[str, str] | None:
    """``(channel, kind)`` of a republished topic: ``("fleet:acme", "trip")`` for
    ``msp/v1/fleet/acme/trip``, ``("public", "stats")``; ``None`` for any other topic."""
    parts = topic.split("/")
    if parts[:3] == ["msp", "v1", "fleet"] and len(parts) >= 5:
        return f"fleet:{parts[3]}", parts[4]
    if parts[:3] == ["msp", "v1", "public"] and len(parts) >= 4:
        return "public", "stats"
    return None


class Hub:
    """Open event streams by channel; :meth:`notify` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queues: dict[str, set[asyncio.Queue[str]]] = {}
        self.delivered = 0

    def _put(self, channel: str, data: str) -> None:
        for queue in self._queues.get(channel, set()):
            if queue.qsize() < 100:  # a stalled page loses events, never the process memory
                queue.put_nowait(data)
        self.delivered += 1

    def notify(self, channel: str, kind: str) -> None:
        """Tell every page on ``channel`` that a record of ``kind`` arrived (thread-safe)."""
        data = json.dumps({"kind": kind})
        self.loop.call_soon_threadsafe(self._put, channel, data)

    async def stream(self, channel: str, disconnected: Any) -> AsyncIterator[str]:
        """The event stream of one page: ``event: record`` per arrival, keepalives between;
        ends when ``disconnected()`` (an awaitable predicate) says the page went away."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.setdefault(channel, set()).add(queue)
        try:
            yield "retry: 2000\n: connected\n\n"
            while not await disconnected():
                try:
                    data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"event: record\ndata: {data}\n\n"
        finally:
            self._queues[channel].discard(queue)


class MqttFeed:
    """The internal MQTT client feeding a :class:`Hub` (its own network thread)."""

    def __init__(self, config: BrokerConfig, hub: Hub) -> None:
        self.config = config
        self.hub = hub
        self.client = make_client(config, manual_ack=False)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("%s: broker refused the dashboard: %s", self.config.url, rc)
            return
        client.subscribe([(f, 0) for f in FILTERS])
        self.connected.set()
        log.info("live updates from %s", self.config.url)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        found = channel_of(message.topic)
        if found is not None and not message.retain:
            self.hub.notify(*found)

    def start(self) -> None:
        """Connect (and keep reconnecting) in the background."""
        host, port, _tls = self.config.endpoint()
        self.client.connect_async(host, port, keepalive=self.config.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
