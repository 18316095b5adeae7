"""The reference receivers of guardians, insurers and responders: subscribe to the recipient's
own topics, check that each message is the registry's (its JWS under the key retained on
``msp/v1/registry/key``, or given), and say what it holds in words a person reads.

A responder's notice is checked further: the gateway's own JWS of the ``emergency`` record
must verify with the device key the registry vouches for and say what the notice says, and
the sealed profile must open with the responder's X25519 key and be the one its card-signed
statement names for this responder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric import x25519
from paho.mqtt.enums import CallbackAPIVersion

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, b64url, load_public_key, verify_record
from msp_protocol.roles import REGISTRY_KEY_TOPIC, role_filter
from msp_protocol.sealed import SealError, open_profile

from ..errors import BrokerError
from ..transport.mqtt import BrokerConfig
from .signing import NotFromRegistry, open_signed, registry_key
from .summaries import JAPAN

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecipientMessage:
    """One message a recipient received: its kind, the check's verdict (``verified`` or
    ``REJECTED: why``), its value, and lines for a person to read."""

    topic: str
    kind: str
    check: str
    value: dict[str, Any]
    lines: tuple[str, ...]


def _local(text: object) -> str:
    """An instant shown in Japan time, to the minute."""
    try:
        instant = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return instant.astimezone(JAPAN).strftime("%Y-%m-%d %H:%M JST")


_WORDS = {"speeding": "speeding well over the limit", "harsh_braking": "harsh braking",
          "pedal_misapplication": "pedal misapplication (accelerator instead of brake)",
          "continuous_driving": "driving too long without a break", "crash": "a crash"}


def _n(count: object, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _deg(value: object) -> str:
    return f"{value:.5f}" if isinstance(value, float) else str(value)


def readable(kind: str, value: dict[str, Any]) -> tuple[str, ...]:
    """What a message says, as sentences (never JSON)."""
    who = value.get("person", "?")
    if kind == "alert":
        what = _WORDS.get(str(value.get("type")), str(value.get("type")))
        return (f"ALERT for {who}: {what} at {_local(value.get('at'))}, "
                f"{float(value.get('speed_kmh') or 0):.0f} km/h ({value.get('severity')})",)
    if kind == "digest":
        score, before = value.get("score"), value.get("score_before")
        trend = ("no score yet" if score is None else f"score {score}" + (
            "" if before is None else f" ({'up' if score > before else 'down' if score < before else 'unchanged'} from {before})"))  # noqa: E501
        rate = value.get("events_per_100km")
        return (f"Daily digest for {who}, {value.get('day')}: {_n(value.get('trips'), 'trip')}, "
                f"{value.get('distance_km')} km, "
                f"{'no driving' if rate is None else f'{rate} events per 100 km'}, {trend}",)
    if kind == "score":
        score = value.get("score")
        shown = "none yet (too little driving)" if score is None else score
        return (f"Score of {who}: {shown} (consent until {_local(value.get('until'))})",)
    if kind == "summary":
        return (f"Monthly summary for {who}, {value.get('month')}: "
                f"{_n(value.get('trips'), 'trip')}, "
                f"{value.get('distance_km')} km, night share {value.get('night_share')}, "
                f"{value.get('events_per_100km')} events per 100 km, over the limit "
                f"{value.get('over_limit_share')} of the time",)
    if kind == "emergency":
        loc = value.get("location") or {}
        place = f"at {_deg(loc.get('lat'))}, {_deg(loc.get('lon'))}" if loc else "position unknown"
        vehicle = value.get("vehicle") or {}
        lines = [f"EMERGENCY: crash of {who} at {_local(value.get('detected_at'))} {place}",
                 f"  vehicle {vehicle.get('vin')}, {float(value.get('speed_kmh') or 0):.0f} "
                 f"km/h, peak deceleration {value.get('peak_decel_ms2')} m/s^2"]
        profile = value.get("opened_profile")
        if isinstance(profile, dict):
            for key in ("blood_type", "allergies", "conditions", "medication",
                        "emergency_contact"):
                item = profile.get(key)
                shown = ", ".join(map(str, item)) if isinstance(item, list) else item
                lines.append(f"  {key.replace('_', ' ')}: {shown if shown else '-'}")
        else:
            lines.append(f"  emergency profile: {value.get('profile_check', 'none deposited')}")
        return tuple(lines)
    return (f"{kind}: {json.dumps(value, sort_keys=True)[:200]}",)


class Checker:
    """Checks the messages of one recipient (see the module docstring)."""

    def __init__(self, name: str, key: PublicKey | None = None,
                 sealing_key: x25519.X25519PrivateKey | None = None) -> None:  # fmt: skip
        self.name = name
        self.key = key
        self.sealing_key = sealing_key

    def feed(self, topic: str, payload: bytes) -> RecipientMessage | None:
        """The checked message (``None`` for the key message, which sets the key); never
        raises: a message it cannot read is a ``REJECTED`` one."""
        try:
            return self._feed(topic, payload)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            return self._bad(topic, f"cannot read this message: {type(exc).__name__}")

    def _feed(self, topic: str, payload: bytes) -> RecipientMessage | None:
        if topic == REGISTRY_KEY_TOPIC:
            if self.key is None:
                try:
                    self.key = registry_key(payload)
                except NotFromRegistry as exc:
                    log.warning("registry key message refused: %s", exc)
            return None
        if not payload:  # a withdrawn retained message
            return RecipientMessage(topic, "withdrawn", "verified", {}, (f"withdrawn: {topic}",))
        if self.key is None:
            return self._bad(topic, "no registry key yet (give --registry-key)")
        try:
            value = open_signed(payload, self.key)
        except NotFromRegistry as exc:
            return self._bad(topic, str(exc))
        kind = str(value.get("kind"))
        if kind == "emergency":
            problem = self._emergency(value)
            if problem:
                return RecipientMessage(topic, kind, f"REJECTED: {problem}", value,
                                        readable(kind, value))  # fmt: skip
        return RecipientMessage(topic, kind, "verified", value, readable(kind, value))

    def _emergency(self, value: dict[str, Any]) -> str | None:
        """Check the gateway's JWS and open the profile (into ``opened_profile``)."""
        device_key = value.get("device_key") or {}
        try:
            key = load_public_key(str(device_key.get("public_key_pem")).encode())
            record = verify_record(str(value.get("record_jws")), lambda _kid: key)
        except ProtocolError as exc:
            return f"the gateway's JWS does not verify: {exc}"
        body = record.body
        said = (getattr(body, "detected_at", None), getattr(body, "speed_kmh", None))
        if said != (value.get("detected_at"), value.get("speed_kmh")):
            return "the notice does not say what the gateway signed"
        profile = value.get("profile")
        if not isinstance(profile, dict):
            value["profile_check"] = "none deposited"
            return None
        statement = profile.get("statement") or {}
        sealed = str(profile.get("sealed"))
        if statement.get("responder") != self.name or statement.get("sealed_sha256") != b64url(
                hashlib.sha256(sealed.encode("ascii")).digest()):
            return "the profile's statement names another responder or ciphertext"
        if self.sealing_key is None:
            value["profile_check"] = "sealed (no --key given to open it)"
            return None
        try:
            value["opened_profile"] = json.loads(open_profile(sealed, self.name,
                                                              self.sealing_key))
        except (SealError, ValueError) as exc:
            return f"the profile does not open: {exc}"
        return None

    def _bad(self, topic: str, why: str) -> RecipientMessage:
        log.warning("%s: %s: %s", self.name, topic, why)
        return RecipientMessage(topic, "?", f"REJECTED: {why}", {},
                                (f"rejected on {topic}: {why}",))  # fmt: skip


def watch(role: str, name: str, broker: BrokerConfig, timeout: float, *, count: int | None,
          checker: Checker) -> Iterator[RecipientMessage]:  # fmt: skip
    """Subscribe to ``name``'s topics (and the registry's key) and yield checked messages
    until ``count`` arrived or nothing did for ``timeout`` seconds. Raises ``BrokerError``."""
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id,
                         protocol=mqtt.MQTTv5 if broker.mqtt5 else mqtt.MQTTv311)  # fmt: skip
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    host, port, tls = broker.endpoint()
    if tls:
        client.tls_set(ca_certs=_str(broker.ca_file), certfile=_str(broker.cert_file),
                       keyfile=_str(broker.key_file), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    client.on_connect = lambda _c, _u, _f, rc, _p: inbox.put(("connect", rc))
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: inbox.put(("subscribe", rcs))
    client.on_message = lambda _c, _u, m: inbox.put(("message", (m.topic, m.payload)))
    try:
        client.connect(host, port)
    except OSError as exc:
        raise BrokerError(f"{broker.url}: {exc}") from exc
    client.loop_start()
    seen = 0
    try:
        try:
            event, arg = inbox.get(timeout=timeout)
        except queue.Empty:
            raise BrokerError(f"no answer from {broker.url} within {timeout} s") from None
        if event != "connect" or arg.is_failure:
            raise BrokerError(f"{broker.url} refused {broker.username or 'the client'}: {arg}")
        client.subscribe([(REGISTRY_KEY_TOPIC, 1), (role_filter(role, name), 1)])
        while count is None or seen < count:
            try:
                event, arg = inbox.get(timeout=timeout)
            except queue.Empty:
                return
            if event == "subscribe" and any(rc.is_failure for rc in arg):
                raise BrokerError("the broker refused the subscription to "
                                  f"{role_filter(role, name)}")
            if event == "message":
                message = checker.feed(*arg)
                if message is not None:
                    seen += 1
                    yield message
    finally:
        client.disconnect()
        client.loop_stop()


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
