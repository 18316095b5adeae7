"""An embedded MQTT 3.1.1 broker (amqtt) on loopback, for demos where mosquitto is absent.

Plain TCP, anonymous, no ACL: it exists so the first command of the README needs nothing but
Python. The delivery design does not depend on the broker (acks are end to end), so the same
gateway and registry code runs on it, over MQTT 3.1.1. Never use it beyond loopback.

amqtt 0.12 sends a connecting client the retained messages of *every* client's topic filters
(``Broker.client_connected`` loops over all of ``_subscriptions``), so a gateway subscribed
only to its ack topic received the fleets' retained device keys and scores as "acks".
:func:`_own_retained_only` restricts that to the client's own subscriptions, as MQTT
3.3.1-6 says (retained messages go to a *new subscription* that matches them).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from typing import Any

from .broker_process import free_port
from .errors import BrokerError

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt's broker on ``127.0.0.1:port`` in a background thread with its own event loop."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @staticmethod
    def available() -> bool:
        """True if amqtt is installed (``pip install amqtt``)."""
        try:
            importlib.import_module("amqtt.broker")
        except ImportError:
            return False
        return True

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it listens; raises ``BrokerError``."""
        try:
            broker_mod = importlib.import_module("amqtt.broker")
        except ImportError as exc:
            raise BrokerError("the embedded broker needs amqtt: pip install amqtt") from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }  # fmt: skip
        broker_class = _own_retained_only(broker_mod.Broker)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._broker = broker_class(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except Exception as exc:  # noqa: BLE001 - reported to start()'s caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or failure:
            raise BrokerError(f"embedded broker did not start on port {self.port}: {failure}")
        log.info("embedded MQTT 3.1.1 broker on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        """Shut the broker down and end its thread."""
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                future.result(timeout=10)
            except (TimeoutError, asyncio.CancelledError, RuntimeError) as exc:
                log.warning("embedded broker shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def _own_retained_only(base: Any) -> Any:
    """amqtt's ``Broker`` that sends a session retained messages only for the topic filters
    that session subscribed to (see the module docstring)."""

    class Broker(base):  # type: ignore[misc]
        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            subscribers = self._subscriptions.get(subscription[0], [])
            if any(s.client_id == session.client_id for s, _qos in subscribers):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    return Broker
