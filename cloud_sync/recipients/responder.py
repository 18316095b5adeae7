"""Responders (``emergency``): the person's sealed emergency profile, and on a crash a notice
within a second of the ``emergency`` record's arrival.

* A ``profile`` record carries the profile sealed by the gateway to one responder's X25519 key
  (HPKE, ``msp_protocol.sealed``) and the card's signature over the statement binding it to
  the person and the responder. The early hook checks the card (as a consent's:
  ``cloud_sync.consents.verify_card_act``), that the statement names the ciphertext it came
  with and a registered responder, and keeps the ciphertext only: the registry cannot open it.
* An ``emergency`` record is acted on from the early hook (``Ingestor(on_early=...)``) as soon
  as its device signature verifies, before the chain records ahead of it arrive: each
  responder the person's ``emergency`` consent names (valid at the crash) gets, signed by the
  registry, the time, position, peak deceleration, speed, vehicle, the person's pseudonym,
  the sealed profile for that responder with its statement, the gateway's own JWS of the
  record and the device key to check it. The notice is committed with its exchange-log entry
  and leaves with the worker's next fan-out flush (the same step). If the session is not yet
  known at that moment (its ``session.start`` is still behind), the notice goes at the
  record's turn in the chain instead. Either way each responder gets one notice per record
  (the exchange log says whether it went).

Counters (:attr:`EmergencyDispatch.counts`): ``notices``, ``deferred``, ``profiles``, and
refusals by reason (logged).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from msp_protocol import consent as cats
from msp_protocol import roles
from msp_protocol.bodies import CardProfile, Emergency
from msp_protocol.codec import to_json
from msp_protocol.jws import b64url
from msp_protocol.records import Record, format_ts, parse_ts

from ..cards import CardRejected, TrustAnchors
from ..consents import ConsentView, statement_id, verify_card_act
from ..store import Accepted, Exchange, ProfileRow, Publication, Store
from .directory import of_role, pseudonym
from .signing import RegistrySigner

log = logging.getLogger(__name__)


def notice_topic(responder: str) -> str:
    """Where a responder's emergency notices go."""
    return roles.role_topic(roles.RESPONDER, responder, "emergency")


class EmergencyDispatch:
    """Keeps sealed profiles and sends crash notices (early hook and ``RoleSender``)."""

    role = roles.RESPONDER

    def __init__(self, store: Store, anchors: TrustAnchors | None,
                 signer: RegistrySigner | None = None) -> None:  # fmt: skip
        """``anchors`` check the card of a ``profile`` (``None``: profiles are refused, only
        notices are sent)."""
        self.store = store
        self.anchors = anchors
        self.signer = signer or RegistrySigner(store)
        self.counts: Counter[str] = Counter()

    # -- the early hook ------------------------------------------------------------------
    def early(self, accepted: Accepted) -> None:
        """Act on a verified ``profile`` or ``emergency`` record at once (others ignored)."""
        record = accepted.record
        if isinstance(record.body, CardProfile):
            self._keep_profile(record, record.body)
        elif isinstance(record.body, Emergency):
            person = None if record.session is None else self.store.session_person(
                record.session)
            if person is None:
                self.counts["deferred"] += 1
                log.info("emergency seq %d of %s: session not known yet, sent at its turn",
                         record.seq, record.device)  # fmt: skip
                return
            view = ConsentView.of(self.store, person)
            pubs = self.notices(accepted, person, view, parse_ts(record.body.detected_at),
                                sorted(of_role(self.store, roles.RESPONDER)))  # fmt: skip
            if pubs:
                from ..store import Batch  # noqa: PLC0415

                self.store.commit(Batch(publications=pubs))
                log.warning("emergency seq %d of %s: notice to %s", record.seq, record.device,
                            ", ".join(p.topic.split("/")[3] for p in pubs))  # fmt: skip

    def _keep_profile(self, record: Record, body: CardProfile) -> None:
        st = body.statement
        try:
            if self.anchors is None:
                raise CardRejected("no_anchors", "no trust anchors to check the card with")
            person = verify_card_act(self.store, self.anchors, record, body)
            if b64url(hashlib.sha256(body.sealed.encode("ascii")).digest()) != st.sealed_sha256:
                raise CardRejected("profile_mismatch", "the statement names other ciphertext")
            if st.responder not in of_role(self.store, roles.RESPONDER):
                raise CardRejected("unknown_responder", f"{st.responder!r} is no responder")
        except CardRejected as exc:
            self.counts[exc.reason] += 1
            log.warning("profile seq %d of %s refused: %s", record.seq, record.device, exc)
            return
        row = ProfileRow(statement_id(body.card_signature), person, st.responder, st.signed_at,
                         body.sealed, json.dumps(to_json(st), sort_keys=True),
                         body.card_signature, body.card_certificate_sha256)  # fmt: skip
        if self.store.put_profile(row):
            self.counts["profiles"] += 1
            log.info("sealed emergency profile of %s for %s kept", person, st.responder)

    # -- the notices -----------------------------------------------------------------------
    def for_record(self, acc: Accepted, person: str, view: ConsentView, at: datetime,
                   recipients: Sequence[str]) -> list[Publication]:  # fmt: skip
        """At an ``emergency`` record's turn in the chain: the notices the early hook could
        not send (none if it did)."""
        if not isinstance(acc.record.body, Emergency):
            return []
        return self.notices(acc, person, view, at, recipients)

    def notices(self, acc: Accepted, person: str, view: ConsentView, at: datetime,
                recipients: Sequence[str]) -> list[Publication]:  # fmt: skip
        """A signed notice for each of ``recipients`` the ``emergency`` consent names at
        ``at`` and that has not had one for this record."""
        rec = acc.record
        body = rec.body
        assert isinstance(body, Emergency)
        ref = f"{rec.device}/{rec.seq}"
        sent = {row.exchange.recipient for row in self.store.exchanges(person)
                if row.exchange.record == ref and row.exchange.kind == "emergency"}
        device = self.store.device(rec.device)
        secret = self.store.pseudonym_secret()
        out = []
        for responder in recipients:
            grant = view.allowing(responder, cats.EMERGENCY, at)
            if grant is None or responder in sent:
                continue
            profile = self.store.profile(person, responder)
            value = {
                "kind": "emergency", "responder": responder,
                "person": pseudonym(secret, responder, person),
                "detected_at": body.detected_at, "trigger": body.trigger,
                "location": None if body.location is None else to_json(body.location),
                "peak_decel_ms2": body.peak_decel_ms2, "speed_kmh": body.speed_kmh,
                "vehicle": {"vin": rec.vin, "device": rec.device},
                "record_jws": acc.jws,
                "device_key": None if device is None else
                {"alg": device.alg, "public_key_pem": device.public_key_pem},
                "profile": None if profile is None else
                {"sealed": profile.sealed, "statement": json.loads(profile.statement)},
            }  # fmt: skip
            exchange = Exchange(person, responder, "emergency", ref, (cats.EMERGENCY,),
                                format_ts(at.timestamp()), grant.ref)  # fmt: skip
            out.append(Publication(notice_topic(responder), self.signer.sign(value),
                                   exchange=exchange))  # fmt: skip
            self.counts["notices"] += 1
        return out
