"""A reference fleet subscriber: receives a fleet's feed and checks every record's JWS itself.

It trusts the registry for nothing it can check: the device keys come retained on
``msp/v1/fleet/{fleet}/keys/{device}``; each record copy's ``jws`` must verify with its
device's key and say exactly what the decoded copy says. Copies without a JWS (a session
start, or a record whose position was removed) are marked as unverifiable; scores are the
registry's own statement. Records that arrive before their device's key wait for it.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, load_public_key, verify_record
from msp_protocol.topics import PREFIX, fleet_filter

from .errors import BrokerError
from .worker import BrokerConfig

log = logging.getLogger(__name__)

_MAX_WAITING = 1000  # records held for a key that has not arrived yet


@dataclass(frozen=True, slots=True)
class FleetMessage:
    """One message of a fleet's feed: what it is, whether its JWS checked, a one-line text."""

    fleet: str
    topic: str
    kind: str  # a record kind, "score" or "keys"
    check: str  # "verified", "no jws (...)", "registry", or "REJECTED: why"
    text: str
    value: dict[str, Any]


def describe(kind: str, value: dict[str, Any]) -> str:
    """A short human line for a copy, a score or a key message."""
    if kind == "score":
        score = value.get("score")
        shown = "none yet (too little driving)" if score is None else score
        return f"score {value.get('person')} = {shown} at {value.get('at')}"
    if kind == "keys":
        return f"key of {value.get('device')} ({value.get('alg')})"
    body = value.get("body") or {}
    person = value.get("person") or "no driver"
    detail = {
        "trip": lambda: f"{body.get('distance_km')} km score {body.get('score')}",
        "event": lambda: f"{body.get('type')} at {body.get('location') or '(location withheld)'}",
        "dtc": lambda: ",".join(c.get("code", "?") for c in body.get("codes", [])),
        "session.start": lambda: "consents " + json.dumps(
            body.get("statement", {}).get("consents", [])),
        "session.end": lambda: str(body.get("reason")),
    }.get(kind, lambda: "")()
    return f"{kind} {value.get('vin')} #{value.get('seq')} {person} {detail}"


class FleetChecker:
    """Checks a fleet's messages (transport-free, so tests and other clients can reuse it)."""

    def __init__(self, fleet: str) -> None:
        self.fleet = fleet
        self.keys: dict[str, PublicKey] = {}
        self._key_messages: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def feed(self, topic: str, payload: bytes) -> list[FleetMessage]:
        """The messages this one releases (a key message releases the records waiting for it)."""
        parts = topic.split("/")
        if parts[:3] != [*PREFIX.split("/"), "fleet"] or len(parts) < 5 or parts[3] != self.fleet:
            return [self._bad(topic, "?", f"not a topic of fleet {self.fleet}")]
        kind = parts[4]
        if kind == "score" and payload == b"" and len(parts) == 6:
            gone = {"person": parts[5]}  # the registry withdrew it: the consent ended
            return [FleetMessage(self.fleet, topic, kind, "registry",
                                 f"score {parts[5]} withdrawn (consent ended)", gone)]
        try:
            value = json.loads(payload)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            return [self._bad(topic, kind, f"payload is not JSON: {exc}")]
        if kind == "keys":
            return self._key(topic, value)
        if kind == "score":
            return [FleetMessage(self.fleet, topic, kind, "registry", describe(kind, value), value)]
        device = value.get("device")
        if value.get("jws") is not None and device not in self.keys:
            held = self.waiting.setdefault(str(device), [])
            if sum(len(w) for w in self.waiting.values()) < _MAX_WAITING:
                held.append((topic, value))
                return []
            return [self._bad(topic, kind, f"no key for device {device!r}")]
        return [self._check(topic, kind, value)]

    def _key(self, topic: str, value: dict[str, Any]) -> list[FleetMessage]:
        device = str(value.get("device"))
        if self._key_messages.get(device) == value:
            return []  # the same key again (retained, and re-sent): no news
        try:
            self.keys[device] = load_public_key(str(value.get("public_key_pem")).encode())
        except ProtocolError as exc:
            return [self._bad(topic, "keys", f"device {device}: {exc}")]
        self._key_messages[device] = value
        out = [FleetMessage(self.fleet, topic, "keys", "registry", describe("keys", value), value)]
        for held_topic, held in self.waiting.pop(device, []):
            out.append(self._check(held_topic, held_topic.split("/")[4], held))
        return out

    def _check(self, topic: str, kind: str, value: dict[str, Any]) -> FleetMessage:
        token = value.get("jws")
        if token is None:
            why = ", ".join(value.get("redacted") or ["carries the card certificate"])
            return FleetMessage(self.fleet, topic, kind, f"no jws ({why})",
                                describe(kind, value), value)  # fmt: skip
        try:
            record = verify_record(str(token), self._key_of)
        except (ProtocolError, KeyError) as exc:
            return self._bad(topic, kind, f"jws: {exc}", value)
        signed = record.to_json()
        for field in ("kind", "device", "vin", "seq", "ts", "session", "body"):
            if signed[field] != value.get(field):
                return self._bad(topic, kind, f"the copy's {field} is not what was signed", value)
        if signed["kind"] != kind:
            return self._bad(topic, kind, f"a {signed['kind']} record on the {kind} topic", value)
        return FleetMessage(self.fleet, topic, kind, "verified", describe(kind, value), value)

    def _key_of(self, kid: str) -> PublicKey:
        return self.keys[kid]

    def _bad(self, topic: str, kind: str, why: str, value: dict[str, Any] | None = None
             ) -> FleetMessage:  # fmt: skip
        log.warning("fleet %s: %s: %s", self.fleet, topic, why)
        return FleetMessage(self.fleet, topic, kind, f"REJECTED: {why}", why, value or {})


def watch(fleet: str, broker: BrokerConfig, timeout: float, count: int | None = None
          ) -> Iterator[FleetMessage]:  # fmt: skip
    """Subscribe to ``fleet``'s feed and yield checked messages until ``count`` records and
    scores (keys not counted) arrived or nothing arrived for ``timeout`` seconds. Raises
    ``BrokerError`` if the broker refuses the connection or the subscription."""
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    protocol = mqtt.MQTTv5 if broker.mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id,
                         protocol=protocol)  # fmt: skip
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    host, port, tls = broker.endpoint()
    if tls:
        client.tls_set(ca_certs=_str(broker.ca_file), certfile=_str(broker.cert_file),
                       keyfile=_str(broker.key_file), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    client.on_connect = lambda _c, _u, _f, rc, _p: inbox.put(("connect", rc))
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: inbox.put(("subscribe", rcs))
    client.on_message = lambda _c, _u, m: inbox.put(("message", (m.topic, m.payload)))

    def on_log(_c: mqtt.Client, _u: Any, level: int, text: str) -> None:
        # A socket error after the TCP connect (the broker refused our certificate: "failed
        # to receive on socket: [SSL: ...]"): without it a refusal reads as a timeout.
        if level == mqtt.MQTT_LOG_ERR and " on socket: " in text:
            inbox.put(("error", text))

    client.on_log = on_log
    try:
        client.connect(host, port)
    except OSError as exc:
        raise BrokerError(f"{broker.url}: {exc}") from exc
    client.loop_start()
    checker, seen = FleetChecker(fleet), 0
    try:
        event, arg = _next(inbox, timeout, "connect")
        if event == "error":
            raise BrokerError(f"{broker.url}: {arg} (the broker closed the connection before "
                              "accepting it: does it trust this client's certificate?)")
        if event != "connect" or arg.is_failure:
            raise BrokerError(f"{broker.url} refused {broker.username or 'the client'}: {arg}")
        client.subscribe(fleet_filter(fleet), qos=1)
        while count is None or seen < count:
            try:
                event, arg = inbox.get(timeout=timeout)
            except queue.Empty:
                return
            if event == "subscribe" and any(rc.is_failure for rc in arg):
                raise BrokerError(f"the broker refused the subscription to {fleet_filter(fleet)}")
            if event == "message":
                for message in checker.feed(*arg):
                    seen += message.kind != "keys"
                    yield message
    finally:
        client.disconnect()
        client.loop_stop()


def _next(inbox: queue.Queue[tuple[str, Any]], timeout: float, what: str) -> tuple[str, Any]:
    try:
        return inbox.get(timeout=timeout)
    except queue.Empty:
        raise BrokerError(f"no {what} from the broker within {timeout} s") from None


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
