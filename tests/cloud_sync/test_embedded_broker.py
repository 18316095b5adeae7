"""The embedded amqtt broker delivers retained messages only to the subscriptions they match
(amqtt 0.12 sent a new client every other client's retained topics: the demo's gateways took
the fleets' retained device keys for acks and warned ``bad_ack`` on every upload)."""

from __future__ import annotations

import queue
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.embedded_broker import EmbeddedBroker

KEYS = "msp/v1/fleet/acme/keys/gw-0001"
ACK = "msp/v1/dev/gw-0001/ack"


class Client:
    """A paho client on the embedded broker that records what it receives and when its
    subscription is acknowledged."""

    def __init__(self, port: int, client_id: str, topic: str | None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribed = threading.Event()
        self._topic = topic
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)  # fmt: skip
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _connected(self, client: mqtt.Client, *_args: object) -> None:
        if self._topic is not None:
            client.subscribe(self._topic, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker():
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.stop()


def test_a_new_client_gets_no_retained_message_of_another_clients_filter(broker) -> None:
    fleet = Client(broker.port, "fleet.acme", "msp/v1/fleet/acme/#")
    publisher = Client(broker.port, "registry", None)
    try:
        assert fleet.subscribed.wait(10)
        publisher.client.publish(KEYS, b'{"device": "gw-0001"}', qos=1, retain=True)
        assert fleet.received.get(timeout=10) == (KEYS, b'{"device": "gw-0001"}')
        gateway = Client(broker.port, "gw-0001", ACK)
        try:
            assert gateway.subscribed.wait(10)
            publisher.client.publish(ACK, b'{"seq":3}', qos=1)
            # The ack is the first and only message the gateway sees: before the fix the
            # fleet's retained key arrived first, on the fleet's topic.
            assert gateway.received.get(timeout=10) == (ACK, b'{"seq":3}')
            assert gateway.received.empty()
        finally:
            gateway.close()
    finally:
        fleet.close()
        publisher.close()


def test_a_new_subscription_still_gets_the_retained_messages_it_matches(broker) -> None:
    publisher = Client(broker.port, "registry", None)
    try:
        publisher.client.publish(KEYS, b"key", qos=1, retain=True).wait_for_publish(10)
        late = Client(broker.port, "fleet.acme", "msp/v1/fleet/acme/keys/+")
        try:
            assert late.received.get(timeout=10) == (KEYS, b"key")
        finally:
            late.close()
    finally:
        publisher.close()
