"""A new card is the same person: moving a person to the card that replaces theirs.

JPKI certificates expire (about five years) and cards are replaced. ``msp-agent card
succeed`` sends a ``request`` (action ``succeed``) that the old card signed, naming the new
card's certificate, and that the new card signed too (proof its key is there). The registry
checks both signatures, the new certificate against the trust anchors at the signing time,
that the new key belongs to nobody yet; then the person keeps its id and everything it owns
(sessions, trips, consents, exchange log, score) under the new key, and the old key is
refused from then on (``card_succeeded``: logins, consents, requests).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping

from msp_protocol.bodies import CardRequest
from msp_protocol.consent import statement_bytes
from msp_protocol.jws import b64url
from msp_protocol.records import Record, parse_ts

from .cards import (
    CardRejected,
    TrustAnchors,
    card_key,
    check_card_certificate,
    key_sha256,
    verify_card_signature,
)
from .store import Store
from .store import Succession as StoreSuccession

log = logging.getLogger(__name__)


class CardSuccession:
    """Answers ``succeed`` requests (``MyData(succeed=CardSuccession(...).apply)``)."""

    def __init__(self, store: Store, anchors: TrustAnchors) -> None:
        self.store = store
        self.anchors = anchors

    def apply(self, record: Record, person: str) -> Mapping[str, object]:
        """Move ``person`` (verified as the old card's) to the new card; the answer says
        whether it did and, if not, why."""
        body = record.body
        assert isinstance(body, CardRequest)
        try:
            return self._apply(body, person)
        except CardRejected as exc:
            log.warning("succession of %s refused: %s", person, exc)
            return {"succeeded": False, "refused": exc.reason, "message": str(exc)}

    def _apply(self, body: CardRequest, person: str) -> Mapping[str, object]:
        st = body.statement
        if st.successor_certificate is None or body.successor_signature is None:
            raise CardRejected("bad_succession", "no new card certificate and signature")
        try:
            new_der = base64.b64decode(st.successor_certificate, validate=True)
        except (binascii.Error, ValueError):
            raise CardRejected("bad_succession", "the new certificate is not base64") from None
        new_key = card_key(new_der)
        verify_card_signature(new_key, statement_bytes(st), body.successor_signature)
        check_card_certificate(new_der, self.anchors, parse_ts(st.signed_at))
        new_sha = key_sha256(new_key)
        owner = self.store.person_by_key(new_sha)
        if owner is not None or self.store.key_succeeded(new_sha):
            raise CardRejected("bad_succession", "the new card already stands for a person")
        old_der = self.store.card_certificate(body.card_certificate_sha256)
        assert old_der is not None  # verify_card_act found it
        old_sha = key_sha256(card_key(old_der))
        cert_sha = b64url(hashlib.sha256(new_der).digest())
        move = StoreSuccession(person, old_sha, new_sha, cert_sha, new_der, st.signed_at)
        if not self.store.succeed(move):
            raise CardRejected("card_succeeded", "this card was replaced already")
        log.info("person %s moved to a new card (certificate %s)", person, cert_sha)
        return {"succeeded": True, "new_certificate_sha256": cert_sha}
