"""A reference fleet subscriber: receives a fleet's feed and checks every record's JWS itself.

It trusts the registry for nothing it can check: the device keys come retained on
``msp/v1/fleet/{fleet}/keys/{device}``; each record copy's ``jws`` must verify with its
device's key and say exactly what the decoded copy says. Copies without a JWS (a session
start, or a record whose position was removed) are marked as unverifiable; scores are the
registry's own statement, signed with its key (``registry_jws``, checked against the key
retained on ``msp/v1/registry/key``: ``cloud_sync.recipients.signing``). Records that arrive
before their device's key wait for it.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, load_public_key, verify_record
from msp_protocol.records import KINDS
from msp_protocol.roles import REGISTRY_KEY_TOPIC
from msp_protocol.topics import PREFIX, fleet_filter

from .errors import BrokerError
from .recipients.signing import NotFromRegistry, open_signed, registry_key
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
    """A short human line for a copy, a score or a key message: plain text whatever the
    message holds (never a Python ``dict`` or ``None``; control characters escaped)."""
    if kind == "score":
        score = value.get("score")
        shown = "none yet (too little driving)" if score is None else _text(score)
        at = value.get("at")
        return f"score {_text(value.get('person'))} = {shown}" + (f" at {_text(at)}" if at else "")
    if kind == "keys":
        alg = value.get("alg")
        return f"key of {_text(value.get('device'))}" + (f" ({_text(alg)})" if alg else "")
    body = value.get("body")
    body = body if isinstance(body, dict) else {}
    person = value.get("person")
    detail = _DETAIL[kind](body) if kind in _DETAIL else ""
    line = f"{kind} {_text(value.get('vin'))} #{_text(value.get('seq'))} "
    line += _text(person) if person is not None else "no driver"
    return f"{line} {detail}".rstrip()


def _text(value: object) -> str:
    """One value as a reader wants it: strings as written (control characters escaped, cut at
    80), numbers as numbers, nothing as ``?``, anything else as compact JSON."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value) if abs(value) < 1e15 else f"{value:.6g}"
    if not isinstance(value, str):
        try:
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            value = "(unprintable)"
    text = "".join(c if c.isprintable() else _escape(c) for c in value[:200])
    return text if len(text) <= 80 else text[:79] + "…"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _place(body: dict[str, Any]) -> str:
    loc = body.get("location")
    if isinstance(loc, dict) and all(isinstance(loc.get(k), int | float) for k in ("lat", "lon")):
        return f"{loc['lat']:.5f},{loc['lon']:.5f}"
    return "(location withheld)" if loc is None else _text(loc)


def _trip(body: dict[str, Any]) -> str:
    score = body.get("score")
    shown = "no score (under 1 km)" if score is None else f"score {_text(score)}"
    return f"{_text(body.get('distance_km'))} km, {shown}"


def _codes(body: dict[str, Any]) -> str:
    codes = body.get("codes")
    if not isinstance(codes, list) or not codes:
        return "no codes"
    return ",".join(_text(c.get("code")) if isinstance(c, dict) else _text(c) for c in codes)


def _consents(body: dict[str, Any]) -> str:
    statement = body.get("statement")
    consents = statement.get("consents") if isinstance(statement, dict) else None
    if not isinstance(consents, list) or not consents:
        return "no consents"
    shown = []
    for c in consents:
        if not isinstance(c, dict):
            shown.append(_text(c))
            continue
        cats = c.get("categories")
        cats_text = " ".join(_text(x) for x in cats) if isinstance(cats, list) else _text(cats)
        shown.append(f"{_text(c.get('recipient'))}: {cats_text} until {_text(c.get('until'))}")
    return "consents " + "; ".join(shown)


_DETAIL: dict[str, Callable[[dict[str, Any]], str]] = {
    "trip": _trip,
    "event": lambda b: f"{_text(b.get('type'))} at {_place(b)}",
    "emergency": lambda b: f"{_text(b.get('trigger'))} at {_place(b)}, "
                           f"{_text(b.get('speed_kmh'))} km/h",
    "dtc": _codes,
    "session.start": _consents,
    "session.end": lambda b: _text(b.get("reason")),
}  # fmt: skip


class FleetChecker:
    """Checks a fleet's messages (transport-free, so tests and other clients can reuse it).

    :meth:`feed` never raises: a message it cannot take is a ``REJECTED`` message, counted in
    :attr:`rejected` by topic kind, and the next message is checked as if it had not come.
    """

    def __init__(self, fleet: str, registry_key: PublicKey | None = None) -> None:
        self.fleet = fleet
        #: the registry's key scores are checked with (from ``msp/v1/registry/key``)
        self.registry_key = registry_key
        self.keys: dict[str, PublicKey] = {}
        self._key_messages: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.rejected: Counter[str] = Counter()

    def feed(self, topic: str, payload: bytes) -> list[FleetMessage]:
        """The messages this one releases (a key message releases the records waiting for it)."""
        try:
            return self._feed(topic, payload)
        except Exception as exc:
            log.exception("fleet %s: %s: cannot check this message", self.fleet, _text(topic))
            return [self._bad(topic, "?", f"cannot check this message: {type(exc).__name__}")]

    def _feed(self, topic: str, payload: bytes) -> list[FleetMessage]:
        if topic == REGISTRY_KEY_TOPIC:
            try:
                self.registry_key = registry_key(payload)
            except NotFromRegistry as exc:
                return [self._bad(topic, "keys", str(exc))]
            return []
        parts = topic.split("/")
        if parts[:3] != [*PREFIX.split("/"), "fleet"] or len(parts) < 5 or parts[3] != self.fleet:
            return [self._bad(topic, "?", f"not a topic of fleet {self.fleet}")]
        kind = parts[4]
        expected = 6 if kind in ("score", "keys") else 5
        if (kind not in KINDS and kind not in ("score", "keys")) or len(parts) != expected:
            return [self._bad(topic, "?", "not a topic of the fleet feed")]
        if kind == "score" and payload == b"":
            gone = {"person": parts[5]}  # the registry withdrew it: the consent ended
            return [FleetMessage(self.fleet, topic, kind, "registry",
                                 f"score {_text(parts[5])} withdrawn (consent ended)", gone)]
        try:
            value = json.loads(payload)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            return [self._bad(topic, kind, f"payload is not JSON: {exc}")]
        except RecursionError:
            return [self._bad(topic, kind, "payload is not JSON: nested too deeply")]
        if kind == "keys":
            return self._key(topic, value)
        if kind == "score":
            return [self._score(topic, value)]
        device = value.get("device")
        if value.get("jws") is not None and (not isinstance(device, str)
                                             or device not in self.keys):  # fmt: skip
            if not isinstance(device, str):
                return [self._bad(topic, kind, "no device named", value)]
            held = self.waiting.setdefault(device, [])
            if sum(len(w) for w in self.waiting.values()) < _MAX_WAITING:
                held.append((topic, value))
                return []
            return [self._bad(topic, kind, f"no key for device {_text(device)}", value)]
        return [self._check(topic, kind, value)]

    def _score(self, topic: str, value: dict[str, Any]) -> FleetMessage:
        """A score: ``registry`` if its ``registry_jws`` verifies with the registry's key and
        says what the message says (or, from an older registry, carries none)."""
        token = value.get("registry_jws")
        if token is None:
            return FleetMessage(self.fleet, topic, "score", "registry", describe("score", value),
                                value)  # fmt: skip
        if self.registry_key is None:
            return self._bad(topic, "score", "no registry key to check its signature", value)
        try:
            signed = open_signed(str(token).encode("ascii", "replace"), self.registry_key)
        except NotFromRegistry as exc:
            return self._bad(topic, "score", str(exc), value)
        if signed != {k: v for k, v in value.items() if k != "registry_jws"}:
            return self._bad(topic, "score", "the score is not what the registry signed", value)
        return FleetMessage(self.fleet, topic, "score", "registry", describe("score", value),
                            value)  # fmt: skip

    def _key(self, topic: str, value: dict[str, Any]) -> list[FleetMessage]:
        device, pem = value.get("device"), value.get("public_key_pem")
        if not isinstance(device, str) or topic.split("/")[5] != device:
            return [self._bad(topic, "keys", "a key message for another device", value)]
        if self._key_messages.get(device) == value:
            return []  # the same key again (retained, and re-sent): no news
        if not isinstance(pem, str):
            return [self._bad(topic, "keys", f"device {_text(device)}: no public_key_pem", value)]
        try:
            self.keys[device] = load_public_key(pem.encode())
        except ProtocolError as exc:
            return [self._bad(topic, "keys", f"device {_text(device)}: {exc}", value)]
        self._key_messages[device] = value
        out = [FleetMessage(self.fleet, topic, "keys", "registry", describe("keys", value), value)]
        for held_topic, held in self.waiting.pop(device, []):
            out.append(self._check(held_topic, held_topic.split("/")[4], held))
        return out

    def _check(self, topic: str, kind: str, value: dict[str, Any]) -> FleetMessage:
        token = value.get("jws")
        if token is None:
            redacted = value.get("redacted")
            why = (", ".join(_text(r) for r in redacted) if isinstance(redacted, list) and redacted
                   else "carries the card certificate")  # fmt: skip
            return FleetMessage(self.fleet, topic, kind, f"no jws ({why})",
                                describe(kind, value), value)  # fmt: skip
        if not isinstance(token, str):
            return self._bad(topic, kind, "jws: not a string", value)
        try:
            record = verify_record(token, self._key_of)
        except (ProtocolError, KeyError) as exc:
            return self._bad(topic, kind, f"jws: {exc}", value)
        except (ValueError, RecursionError) as exc:  # what a JWS parser let through
            return self._bad(topic, kind, f"jws: unreadable ({type(exc).__name__})", value)
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
        why = _text(why)
        self.rejected[kind] += 1
        log.warning("fleet %s: %s: %s", self.fleet, _text(topic), why)
        text = describe(kind, value) if value else f"message on {_text(topic)}"
        return FleetMessage(self.fleet, topic, kind, f"REJECTED: {why}", text, value or {})


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
    client.on_message = lambda _c, _u, m: inbox.put(("message", (_topic_of(m), m.payload)))

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
        client.subscribe([(REGISTRY_KEY_TOPIC, 1), (fleet_filter(fleet), 1)])
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


def _topic_of(message: mqtt.MQTTMessage) -> str:
    """The message's topic; one that is not UTF-8 is shown escaped (and then rejected)."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
