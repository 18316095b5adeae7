"""Test kit for recipients of every role: a registry pipeline in one process (real store,
ingestor, republisher with the role fan-out, early hooks), a driver with a real RSA card who
logs in and signs consents and an emergency profile, and the registry's signed messages read
back."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, x25519

from cloud_sync.consents import PersonActs
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.recipients.responder import EmergencyDispatch
from cloud_sync.recipients.signing import RegistrySigner, open_signed
from cloud_sync.republish import Republisher, RoleFanout
from cloud_sync.store import Accepted, Recipient
from cloud_sync.store.open import open_store
from edge_agent.card.emergency_profile import profile_body, seal
from msp_protocol import bodies
from msp_protocol.consent import statement_bytes
from msp_protocol.jws import b64url, load_public_key
from msp_protocol.records import format_ts
from msp_protocol.topics import rec_topic
from tests.sync_kit import T0, Card, CardIssuer, Gateway

UNTIL = "2027-06-01T00:00:00.000Z"
FLEET = "acme"
GUARDIAN = "family-sato"
INSURER = "tokio-safe"
RESPONDER = "ambulance-kanto"
OTHER_RESPONDER = "ambulance-kansai"
PROFILE = {"blood_type": "AB-", "allergies": ["penicillin-zq7"],
           "conditions": ["atrial fibrillation"], "medication": ["warfarin-xk2"],
           "emergency_contact": "Sato Hanako +81-90-5555-0142"}  # fmt: skip


def consent_body(card: Card, gw: Gateway, action: str, recipient: str,
                 categories: tuple[str, ...], at: float,
                 until: str | None = UNTIL) -> bodies.CardConsent:  # fmt: skip
    """A consent record body the card signed."""
    st = bodies.ConsentStatement(action, recipient, categories,
                                 until if action == "grant" else None, gw.device, gw.vin,
                                 format_ts(at), b64url(hashlib.sha256(
                                     f"{action}{recipient}{at}".encode()).digest()))  # fmt: skip
    signature = card.key.sign(statement_bytes(st), padding.PKCS1v15(), hashes.SHA256())
    return bodies.CardConsent(st, base64.b64encode(signature).decode(),
                              b64url(hashlib.sha256(card.der).digest()))


def event(kind: str, severity: str, at: float, speed: float = 40.0) -> bodies.Event:
    """An event of ``kind`` and ``severity`` at ``at``, with a position."""
    return bodies.Event(kind, format_ts(at), 2.0, 0.9, speed, severity,
                        bodies.Location(35.6581, 139.7017))  # fmt: skip


def crash(at: float) -> bodies.Emergency:
    """A crash at ``at`` in Shibuya."""
    return bodies.Emergency(format_ts(at), "crash_flag", 118.0, 46.0,
                            bodies.Location(35.6581, 139.7017))  # fmt: skip


class CareRegistry:
    """The registry's pipeline in one process, with a guardian, an insurer and two
    responders registered (each responder with its own X25519 key)."""

    def __init__(self, url: str, issuer: CardIssuer, ca: DeviceCa, gw: Gateway) -> None:
        secrets = Path(tempfile.mkdtemp()) / "secrets" if url.startswith("postgresql") else None
        self.store = open_store(url, secrets_dir=secrets)
        self.store.enroll(gw.device_row(ca, FLEET))
        now = "2026-11-01T00:00:00Z"
        self.sealing: dict[str, x25519.X25519PrivateKey] = {}
        for name in (RESPONDER, OTHER_RESPONDER):
            key = self.sealing[name] = x25519.X25519PrivateKey.generate()
            self.store.add_recipient(Recipient(name, "responder", now,
                                               b64url(key.public_key().public_bytes_raw())))
        self.store.add_recipient(Recipient(GUARDIAN, "guardian", now))
        self.store.add_recipient(Recipient(INSURER, "insurer", now))
        self.acts = PersonActs(self.store, issuer.anchors())
        self.emergencies = EmergencyDispatch(self.store, issuer.anchors())
        republisher = Republisher(self.store, RoleFanout(self.store, self.emergencies))
        self.ingestor = Ingestor(self.store, issuer.anchors(), max_waiting=64,
                                 fanout=republisher.fanout, on_early=self.early)  # fmt: skip
        self.key = load_public_key(RegistrySigner(self.store).public_pem().encode())

    def early(self, accepted: Accepted) -> None:
        self.acts.early(accepted)
        self.emergencies.early(accepted)

    def send(self, gw: Gateway, *tokens: str) -> None:
        self.ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])

    def messages(self, role: str, name: str) -> list[tuple[str, dict[str, Any]]]:
        """What is queued for recipient ``name``: topic and the registry-verified value."""
        prefix = f"msp/v1/{role}/{name}/"
        return [(p.topic, open_signed(p.payload, self.key))
                for _i, p in self.store.fanout_pending(10000)
                if p.topic.startswith(prefix) and p.payload]  # fmt: skip

    def profile_record(self, card: Card, gw: Gateway, responder: str = RESPONDER,
                       profile: dict[str, Any] | None = None) -> bodies.CardProfile:
        """The ``profile`` body the gateway would send, sealed to ``responder``."""
        public = b64url(self.sealing[responder].public_key().public_bytes_raw())
        item = seal(profile or PROFILE, responder, public, device=gw.device, vin=gw.vin,
                    now=datetime.fromtimestamp(T0 + 2, UTC), nonce="bm9uY2Utb2YtcHJvZmlsZQ")
        signature = card.key.sign(statement_bytes(item.statement), padding.PKCS1v15(),
                                  hashes.SHA256())  # fmt: skip
        return profile_body(item, base64.b64encode(signature).decode(),
                            b64url(hashlib.sha256(card.der).digest()))


def logged_in(reg: CareRegistry, card: Card, gw: Gateway, session: str = "s-1") -> None:
    """The driver's session start (no login consents) is committed."""
    reg.send(gw, gw.sign(card.session_start(gw, session, consents=()), "session.start", session))
