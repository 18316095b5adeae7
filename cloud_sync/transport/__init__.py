"""Broker transports of the registry worker: the protocol (``base``) and its implementations
(``mqtt`` for mosquitto and any MQTT broker; a JetStream one beside it)."""

from __future__ import annotations

from .base import Delivery, Taken, Transport

__all__ = ["Delivery", "Taken", "Transport"]
