"""The gateway's uplink: drains the durable outbox to the registry and prunes it on acks.

``MqttUplink`` (paho-mqtt, MQTT 5 / 3.1.1, mTLS) in ``edge_agent.uplink.mqtt``;
``MemoryUplink`` (same process, for tests and demos) in ``edge_agent.uplink.base``.
"""

from .base import MemoryUplink, Outbox, OutboxRecord, UplinkError, UplinkStats
from .mqtt import MqttUplink, UplinkConfig

__all__ = [
    "MemoryUplink",
    "MqttUplink",
    "Outbox",
    "OutboxRecord",
    "UplinkConfig",
    "UplinkError",
    "UplinkStats",
]
