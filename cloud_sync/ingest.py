"""The registry's ingest pipeline: from MQTT payloads to committed records and acks.

For each message, in this order: size → topic → JWS parse → enrolled, unrevoked device →
signature with the device's key and algorithm → strict record parse → seq/prev against the
stored chain → (``session.start``) card evidence → idempotent insert. A batch of messages is
committed in one transaction, and only then are the acks ``{"seq": N}`` (N = highest
contiguous committed seq) produced. Records that arrive ahead of their predecessor wait, up
to ``max_waiting`` per device, instead of breaking the chain. Rejected messages store
nothing: each is logged with its device and counted under its reason.

Reasons: oversized, bad_topic, malformed, alg_mismatch, unknown_device, revoked_device,
bad_signature, bad_record, device_mismatch, vin_mismatch, seq_reused (alarm: possible key
theft), bad_prev, bad_gap, evicted_seq, out_of_order_overflow, and the card reasons of
``cloud_sync.cards`` (the device's record still joins the chain, but binds no person);
``duplicate`` counts harmless re-sends (acked, not stored twice).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from msp_protocol.bodies import Gap, SessionStart
from msp_protocol.errors import ProtocolError, RecordError
from msp_protocol.jws import PublicKey, load_public_key, record_hash, split, verify
from msp_protocol.records import MAX_RECORD_BYTES, Record, parse_record
from msp_protocol.topics import device_of_rec_topic

from .cards import CardRejected, TrustAnchors, verify_session_start
from .store import Accepted, Batch, CardIdentity, ChainHead, Eviction, Fanout, Store

log = logging.getLogger(__name__)


class Rejected(Exception):  # noqa: N818 - a verdict, counted by ``reason``
    """One message refused; ``reason`` is its counter, ``device`` whom it claimed to be from."""

    def __init__(self, reason: str, device: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.device = device


@dataclass(frozen=True, slots=True)
class Ack:
    """Every record of ``device`` up to ``seq`` is committed: publish ``{"seq": seq}``."""

    device: str
    seq: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one batch did: the acks to publish and the records committed, in order."""

    acks: list[Ack]
    accepted: Sequence[Accepted]


@dataclass(frozen=True, slots=True)
class _Candidate:
    record: Record
    jws: str
    hash: str


@dataclass(slots=True)
class _BatchState:
    heads: dict[str, ChainHead] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    hashes: dict[tuple[str, int], str] = field(default_factory=dict)
    evictions: list[Eviction] = field(default_factory=list)
    certificates: dict[str, bytes] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    touched: set[str] = field(default_factory=set)


class Ingestor:
    """Turns batches of ``(topic, payload)`` into one store commit and the acks to send.

    One ingestor per registry worker; it keeps the out-of-order waiting room in memory (a
    restart loses it harmlessly: gateways re-send whatever was not acked).
    """

    def __init__(
        self,
        store: Store,
        anchors: TrustAnchors,
        *,
        max_payload: int = MAX_RECORD_BYTES,
        max_waiting: int = 256,
        fanout: Fanout | None = None,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.anchors = anchors
        self.max_payload = max_payload
        self.max_waiting = max_waiting
        self._waiting: dict[str, dict[int, _Candidate]] = {}
        self._declared: dict[str, dict[int, Eviction]] = {}
        self._keys: dict[str, PublicKey] = {}  # parsed device keys, by PEM

    @property
    def waiting(self) -> int:
        """How many records wait for their predecessor."""
        return sum(len(w) for w in self._waiting.values())

    def process(self, messages: Sequence[tuple[str, bytes]]) -> list[Ack]:
        """Check, commit and ack one batch; see :meth:`ingest`."""
        return self.ingest(messages).acks

    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> Outcome:
        """Check and commit one batch; returns the acks to send and what was committed.
        Raises ``StoreError`` if the commit fails (then nothing may be acked: the broker
        redelivers)."""
        state = _BatchState()
        for topic, payload in messages:
            try:
                candidate = self._check(topic, payload)
            except Rejected as exc:
                self._reject(state, exc)
                continue
            state.touched.add(candidate.record.device)
            self._place(state, candidate)
        for device, waiting in self._waiting.items():
            if waiting and device not in state.heads:
                # another worker (shared subscription) may have committed the predecessor
                before = self._head(state, device).seq
                self._drain(state, device)
                if state.heads[device].seq > before:
                    state.touched.add(device)
        batch = Batch(state.accepted, state.evictions, dict(state.rejections))
        self.store.commit(batch, self.fanout)
        acks = []
        for device in sorted(state.touched):
            head = state.heads.get(device) or self.store.chain_head(device)
            if head.seq > 0:
                acks.append(Ack(device, head.seq))
        return Outcome(acks, tuple(state.accepted))

    @staticmethod
    def _reject(state: _BatchState, exc: Rejected) -> None:
        state.rejections[exc.reason] += 1
        level = logging.ERROR if exc.reason == "seq_reused" else logging.WARNING
        log.log(level, "rejected a record from %s: %s", exc.device or "?", exc)

    def _check(self, topic: str, payload: bytes) -> _Candidate:
        """Everything that needs no chain state: size, topic, device, signature, schema."""
        if len(payload) > self.max_payload:
            raise Rejected("oversized", "", f"{len(payload)} bytes on {topic[:100]!r}")
        try:
            device_id = device_of_rec_topic(topic)
        except ProtocolError as exc:
            raise Rejected("bad_topic", "", str(exc)) from None
        try:
            token = payload.decode("ascii")
            parts = split(token)
        except UnicodeDecodeError:
            raise Rejected("malformed", device_id, "payload is not ASCII") from None
        except ProtocolError as exc:
            reason = "alg_mismatch" if exc.field == "alg" else "malformed"
            raise Rejected(reason, device_id, str(exc)) from None
        if parts.kid != device_id:
            raise Rejected("device_mismatch", device_id, f"kid {parts.kid!r} on its topic")
        device = self.store.device(device_id)
        if device is None:
            raise Rejected("unknown_device", device_id, "not enrolled")
        if device.revoked:
            raise Rejected("revoked_device", device_id, f"revoked at {device.revoked_at}")
        try:
            verify(token, self._key(device.public_key_pem))
        except ProtocolError as exc:
            reason = "alg_mismatch" if exc.field == "alg" else "bad_signature"
            raise Rejected(reason, device_id, str(exc)) from None
        try:
            record = parse_record(parts.payload)
        except RecordError as exc:
            raise Rejected("bad_record", device_id, str(exc)) from None
        if record.device != device_id:
            raise Rejected("device_mismatch", device_id, f"record says {record.device!r}")
        if isinstance(record.body, Gap) and not all(
            r.first <= r.last < record.seq for r in record.body.ranges
        ):
            raise Rejected("bad_gap", device_id, f"seq {record.seq}: a range not before it")
        if record.vin != device.vin:
            raise Rejected("vin_mismatch", device_id, f"VIN {record.vin} is not {device.vin}")
        return _Candidate(record, token, record_hash(token))

    def _key(self, pem: str) -> PublicKey:
        key = self._keys.get(pem)
        if key is None:
            key = self._keys[pem] = load_public_key(pem.encode("ascii"))
        return key

    def _head(self, state: _BatchState, device: str) -> ChainHead:
        if device not in state.heads:
            state.heads[device] = self.store.chain_head(device)
        return state.heads[device]

    def _stored_hash(self, state: _BatchState, device: str, seq: int) -> str | None:
        return state.hashes.get((device, seq)) or self.store.record_hash(device, seq)

    def _place(self, state: _BatchState, cand: _Candidate) -> None:
        rec = cand.record
        head = self._head(state, rec.device)
        if isinstance(rec.body, Gap):
            self._declare(state, cand, rec.body, head)
        if rec.seq <= head.seq:
            stored = self._stored_hash(state, rec.device, rec.seq)
            if stored == cand.hash:
                state.rejections["duplicate"] += 1
            elif stored is None:
                self._reject(state, Rejected("evicted_seq", rec.device, f"seq {rec.seq}"))
            else:
                self._reject(state, Rejected("seq_reused", rec.device, f"seq {rec.seq} forked"))
            return
        waiting = self._waiting.setdefault(rec.device, {})
        other = waiting.get(rec.seq)
        if other is not None and other.hash != cand.hash:
            self._reject(state, Rejected("seq_reused", rec.device, f"seq {rec.seq} forked"))
            return
        if other is None and len(waiting) >= self.max_waiting and rec.seq > head.seq + 1:
            # Full: keep the seqs nearest the head, they are the ones that can commit next.
            furthest = max(waiting)
            if rec.seq > furthest:
                self._reject(state, Rejected("out_of_order_overflow", rec.device, f"seq {rec.seq}"))
                return
            del waiting[furthest]
            self._reject(state, Rejected("out_of_order_overflow", rec.device, f"seq {furthest}"))
        waiting[rec.seq] = cand
        self._drain(state, rec.device)

    def _declare(self, state: _BatchState, cand: _Candidate, gap: Gap, head: ChainHead) -> None:
        """Take note of a verified gap record's evicted ranges, even ahead of its turn."""
        declared = self._declared.setdefault(cand.record.device, {})
        for item in gap.ranges:
            # A gateway may still have sent the first records of a range before evicting them
            # (from its in-flight window): only what is still missing is declared evicted.
            first = max(item.first, head.seq + 1)
            if first <= item.last:
                declared[first] = Eviction(cand.record.device, first, item.last, item.last_sha256)

    def _drain(self, state: _BatchState, device: str) -> None:
        waiting = self._waiting.get(device, {})
        declared = self._declared.get(device, {})
        head = self._head(state, device)
        for stale in [s for s in waiting if s <= head.seq]:
            del waiting[stale]  # committed meanwhile by another worker
        for stale in [s for s in declared if s <= head.seq]:
            del declared[stale]
        while True:
            eviction = declared.pop(head.seq + 1, None)
            if eviction is not None:
                state.evictions.append(eviction)
                head = ChainHead(eviction.last, eviction.last_hash)
                continue
            cand = waiting.pop(head.seq + 1, None)
            if cand is None:
                break
            rec = cand.record
            if rec.prev != head.hash and not (rec.seq == 1 and rec.prev is None):
                self._reject(state, Rejected("bad_prev", device, f"seq {rec.seq}"))
                continue
            try:
                card = self._card(state, rec)
            except CardRejected as exc:
                # The device's record is sound, so the chain goes on; only the binding is
                # refused: no person, no session, and the session's trips stay unattributed.
                self._reject(state, Rejected(exc.reason, device, str(exc)))
                card = None
            state.accepted.append(Accepted(rec, cand.jws, cand.hash, card))
            state.hashes[(device, rec.seq)] = cand.hash
            head = ChainHead(rec.seq, cand.hash)
        state.heads[device] = head

    def _card(self, state: _BatchState, rec: Record) -> CardIdentity | None:
        if not isinstance(rec.body, SessionStart):
            return None
        sha = rec.body.card_certificate_sha256
        known = state.certificates.get(sha) or self.store.card_certificate(sha)
        card = verify_session_start(rec, rec.body, self.anchors, known)
        state.certificates[sha] = card.certificate_der
        return card
