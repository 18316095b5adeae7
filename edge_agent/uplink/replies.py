"""Waiting for the registry's answer to a ``request`` record on the device's reply topic.

The answer comes on ``msp/v1/dev/{device}/reply`` (the broker lets only that gateway read it),
sealed to a key only the requesting process holds (``msp_protocol.sealed``). The listener
logs in as the device (its client certificate) with a client id of its own
(``{device}.reply``), so the agent's uplink, connected as ``{device}``, is not displaced.
Subscribe first (:meth:`ReplyListener.start`), then write the request: replies are not
retained.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import time
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from msp_protocol.topics import reply_topic

from .base import UplinkError
from .mqtt import UplinkConfig

log = logging.getLogger(__name__)


class ReplyListener:
    """Collects reply messages of one device until :meth:`wait` finds a complete answer."""

    def __init__(self, config: UplinkConfig) -> None:
        self.config = config
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._subscribed = queue.Queue[bool]()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.device}.reply",
                             protocol=mqtt.MQTTv5 if config.mqtt5 else mqtt.MQTTv311)
        if config.ca_file is not None:
            client.tls_set(ca_certs=str(config.ca_file),
                           certfile=str(config.cert_file) if config.cert_file else None,
                           keyfile=str(config.key_file) if config.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode,
                    _p: Any) -> None:  # fmt: skip
        if not rc.is_failure:
            client.subscribe(reply_topic(self.config.device), qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _m: int, codes: list[ReasonCode],
                      _p: Any) -> None:  # fmt: skip
        self._subscribed.put(not any(c.is_failure for c in codes))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            value = json.loads(bytes(msg.payload))
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(value, dict):
            self._messages.put(value)

    def start(self, timeout_s: float) -> None:
        """Connect and subscribe; raises ``UplinkError`` if that fails within ``timeout_s``."""
        try:
            self._client.connect(self.config.host, self.config.port, keepalive=60)
        except (OSError, ValueError, ssl.SSLError) as exc:
            where = f"{self.config.host}:{self.config.port}"
            raise UplinkError(f"cannot reach the broker at {where}: {exc}") from exc
        self._client.loop_start()
        try:
            ok = self._subscribed.get(timeout=timeout_s)
        except queue.Empty:
            ok = False
        if not ok:
            self.stop()
            raise UplinkError(f"the broker did not let {self.config.device} read "
                              f"{reply_topic(self.config.device)}")  # fmt: skip

    def wait(self, nonce: str, timeout_s: float) -> list[Mapping[str, Any]]:
        """Every part of the reply to the request of ``nonce``; raises ``UplinkError`` if it
        is not complete within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        parts: dict[int, Mapping[str, Any]] = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UplinkError(f"no complete reply within {timeout_s:g} s (is the agent's "
                                  "uplink running, is the registry reachable?)")  # fmt: skip
            try:
                message = self._messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message.get("nonce") != nonce:
                continue  # an answer to another request of this gateway
            try:
                parts[int(message["part"])] = message
                if len(parts) >= int(message["parts"]):
                    return [parts[k] for k in sorted(parts)]
            except (KeyError, TypeError, ValueError):
                log.warning("ignored a malformed reply part")

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()
