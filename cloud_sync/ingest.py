"""The registry's ingest pipeline: from MQTT payloads to committed records and acks.

For each message, in this order: size → topic → (a batch: one JWS per line, LF-separated,
each of the following steps for each record on its own) JWS parse → enrolled, unrevoked device →
signature with the device's key and algorithm → strict record parse → seq/prev against the
stored chain → (``session.start``) card evidence → idempotent insert. A batch of messages is
committed in one transaction, and only then are the acks ``{"seq": N}`` (N = highest
contiguous committed seq) produced. Records that arrive ahead of their predecessor wait, up
to ``max_waiting`` per device, instead of breaking the chain. Rejected messages store
nothing: each is logged with its device and counted under its reason; a record refused
inside a batch is counted alone and the batch's other records go on.

Reasons: oversized, bad_topic, malformed, alg_mismatch, unknown_device, revoked_device,
bad_signature, bad_record, device_mismatch, vin_mismatch, seq_reused (alarm: possible key
theft), bad_prev, bad_gap, future_ts, evicted_seq, out_of_order_overflow, internal_error, and
the card reasons of ``cloud_sync.cards`` (the device's record still joins the chain, but binds
no person); ``duplicate`` counts harmless re-sends (acked, not stored twice).

A record whose signature verifies and whose seq/prev continue the chain, but whose body is
refused (``bad_record``, ``bad_gap``, ``future_ts``: see ``cloud_sync.quarantine``), is
quarantined instead of dropped, so the chain and the gateway's acks go on.

No message can stop the pipeline: the parsers' own failures (``RecursionError`` from deep
nesting, ``ValueError`` from numbers over Python's digit limit) are caught where they are
called and counted as ``malformed``/``bad_record``; beyond that, a last guard per message turns
any unexpected exception into an ``internal_error`` rejection (logged with the traceback, the
device and, where known, the seq), and a commit that fails for any reason but the database
(``StoreError``) is retried record by record, a record that still fails being quarantined as
``internal_error``. Only a failing database stops ingest (nothing is acked; the broker
redelivers).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from msp_protocol.bodies import Gap, SessionStart
from msp_protocol.errors import ProtocolError, RecordError
from msp_protocol.jws import (
    MAX_TOKEN_CHARS,
    Jws,
    PublicKey,
    load_public_key,
    record_hash,
    split,
    verify_parts,
)
from msp_protocol.records import (
    MAX_CLOCK_SKEW,
    OCCURRED_AT,
    Record,
    check_not_future,
    parse_record,
)
from msp_protocol.topics import device_of_rec_topic

from .cards import CardRejected, TrustAnchors, verify_session_start
from .consents import role_refusals, unknown_recipients, verify_consent
from .errors import ChainConflict, StoreError
from .quarantine import Refused, chain_place, refused
from .store import (
    Accepted,
    Batch,
    CardIdentity,
    ChainHead,
    Device,
    Eviction,
    Fanout,
    Quarantined,
    Store,
)

if TYPE_CHECKING:
    from .verify_pool import VerifyPool

log = logging.getLogger(__name__)

#: The largest MQTT payload the registry reads: the JWS of the largest record, the bound
#: ``msp_protocol.jws.split`` applies. The broker refuses larger messages already
#: (``cloud_sync.mosquitto``).
MAX_PAYLOAD_BYTES = MAX_TOKEN_CHARS
#: Kinds handed to ``on_early`` as soon as their signature verifies (see :class:`Ingestor`).
EARLY_KINDS: Final = frozenset({"consent", "request", "emergency", "profile"})
#: How often one batch is planned again after a ``ChainConflict`` before the worker backs off.
CONFLICT_RETRIES: Final = 5
#: Smallest batch worth sending to a verification pool (below it, verifying here is cheaper).
POOL_MIN_BATCH: Final = 8
#: Receives an early record: see :class:`Ingestor`.
EarlyHook = Callable[[Accepted], None]


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
    record: Record | Refused  # Refused: signed, its body refused; it is quarantined in turn
    jws: str
    hash: str


@dataclass(frozen=True, slots=True)
class _Pending:
    """A record split and its device found, its signature not yet checked."""

    device: Device
    token: str
    parts: Jws


@dataclass(slots=True)
class _Checked:
    """What a batch's records gave before planning: candidates in arrival order, the
    rejections so far, and what was looked up once for the whole batch."""

    candidates: list[_Candidate] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    devices: dict[str, Device | None] = field(default_factory=dict)
    certificates: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class _BatchState:
    heads: dict[str, ChainHead] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    hashes: dict[tuple[str, int], str] = field(default_factory=dict)
    evictions: list[Eviction] = field(default_factory=list)
    certificates: dict[str, bytes] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    touched: set[str] = field(default_factory=set)
    quarantined: list[Quarantined] = field(default_factory=list)
    #: what this plan took from the waiting room (put back if its commit fails)
    taken: list[_Candidate] = field(default_factory=list)
    declared_taken: list[Eviction] = field(default_factory=list)


class Ingestor:
    """Turns batches of ``(topic, payload)`` into one store commit and the acks to send.

    One ingestor per registry worker; it keeps the out-of-order waiting room in memory (a
    restart loses it harmlessly: gateways re-send whatever was not acked). ``clock`` gives the
    arrival time of a batch (aware UTC), against which future-dated records are refused.

    Several workers may share one store, each with its own ingestor: a record waiting for its
    predecessor is re-planned against the stored chain head at every batch (another worker may
    have committed the predecessor), a commit refused with ``ChainConflict`` (the database
    saw another worker's commit of the same chain) is planned again from the stored heads,
    and an ack names the head read from the store after the commit.

    ``pool`` (``cloud_sync.verify_pool.VerifyPool``) verifies a batch's signatures in other
    processes; results come back in order, so each device's records are still placed in
    the order they arrived.

    ``on_early`` is the early hook: a record of a kind in ``EARLY_KINDS`` (``consent``,
    ``request``, ``emergency``) whose device, signature and body check out is handed to it, as an
    ``Accepted`` (``card`` ``None``), as soon as it has verified: before its chain
    predecessors have arrived, before it is committed. The chain is still checked when they
    arrive (the record may yet be refused, e.g. ``bad_prev``), so the hook must treat it as
    "signed by this device", not "stored". It is called on the worker's thread, once per
    record entering the waiting room (a re-send of a record still waiting is not handed over
    again, a redelivery after a restart is): it must be quick and idempotent. An exception
    it raises is logged and ingest goes on.
    """

    def __init__(
        self,
        store: Store,
        anchors: TrustAnchors,
        *,
        max_payload: int = MAX_PAYLOAD_BYTES,
        max_waiting: int = 256,
        fanout: Fanout | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pool: VerifyPool | None = None,
        on_early: EarlyHook | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.on_early = on_early
        self.fanout = fanout
        self.clock = clock
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
        redelivers); the waiting room is then as it was before the batch."""
        arrival = self.clock()
        checked = _Checked()
        pending: list[tuple[str, _Pending]] = []
        for topic, payload in messages:
            try:
                device_id, tokens = self._envelope(topic, payload)
            except Rejected as exc:
                self._reject_into(checked.rejections, exc)
                continue
            for token in tokens:
                try:
                    pending.append((topic, self._precheck(checked, device_id, token)))
                except Rejected as exc:
                    self._reject_into(checked.rejections, exc)
                except StoreError:
                    raise  # the database failed, not this message: nothing may be acked
                except Exception:  # noqa: BLE001 - the last guard: one record never stops ingest
                    self._internal_error(checked.rejections, topic, None)
        verdicts = self._verify_all([p for _, p in pending])
        latest = (arrival + MAX_CLOCK_SKEW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for (topic, item), verdict in zip(pending, verdicts, strict=True):
            candidate = None
            try:
                if verdict is not None:
                    raise verdict
                candidate = self._parse(item, arrival, latest)
                checked.candidates.append(candidate)
            except Rejected as exc:
                self._reject_into(checked.rejections, exc)
            except StoreError:
                raise
            except Exception:  # noqa: BLE001 - the last guard: one record never stops ingest
                self._internal_error(checked.rejections, topic, candidate)
        own = {id(c) for c in checked.candidates}
        for attempt in range(1, CONFLICT_RETRIES + 1):
            state = self._plan(checked)
            batch = Batch(state.accepted, state.evictions,
                          dict(checked.rejections + state.rejections),
                          quarantined=state.quarantined)  # fmt: skip
            try:
                accepted = self._commit(batch)
                break
            except ChainConflict as exc:
                # another worker committed part of these chains meanwhile: plan again against
                # what the database now holds (re-reading every head)
                self._restore(state, own)
                if attempt == CONFLICT_RETRIES:
                    raise
                log.info("chain conflict (%s); planning the batch again", exc)
            except BaseException:
                self._restore(state, own)
                raise
        acks = []
        for device in sorted(state.touched):
            head = self.store.chain_head(device)  # whoever committed it: acks stay true
            if head.seq > 0:
                acks.append(Ack(device, head.seq))
        return Outcome(acks, accepted)

    def _plan(self, checked: _Checked) -> _BatchState:
        """Place the batch's checked records (and whatever waits) against the stored chain
        heads: what to commit, in chain order."""
        state = _BatchState(certificates=checked.certificates)
        for candidate in checked.candidates:
            try:
                state.touched.add(candidate.record.device)
                self._place(state, candidate)
            except Rejected as exc:
                self._reject(state, exc)
            except StoreError:
                raise
            except Exception:  # noqa: BLE001 - the last guard: one record never stops ingest
                self._internal_error(state.rejections, "", candidate)
        for device, waiting in self._waiting.items():
            if waiting and device not in state.heads:
                # another worker (shared subscription) may have committed the predecessor
                before = self._head(state, device).seq
                self._drain(state, device)
                if state.heads[device].seq > before:
                    state.touched.add(device)
        return state

    def _restore(self, state: _BatchState, own: set[int]) -> None:
        """Undo a plan whose commit failed: what it took from the waiting room goes back,
        but for the batch's own records (``own``: their ids), which are placed again (when the
        batch is planned again, or redelivered)."""
        for cand in state.taken:
            if id(cand) in own:
                continue
            rec = cand.record
            self._waiting.setdefault(rec.device, {})[rec.seq] = cand
        for ev in state.declared_taken:
            self._declared.setdefault(ev.device, {})[ev.first] = ev

    def _commit(self, batch: Batch) -> Sequence[Accepted]:
        """Commit ``batch``; if that fails for another reason than the database, commit its
        records one by one and quarantine any that fails alone. Returns what was accepted."""
        try:
            self.store.commit(batch, self.fanout)
            return tuple(batch.accepted)
        except StoreError:
            raise
        except Exception:  # last guard: a bug in one record's storing or fan-out
            log.exception("committing a batch of %d records failed; committing them one by one",
                          len(batch.accepted))  # fmt: skip
        self.store.commit(Batch(evictions=batch.evictions, rejections=batch.rejections,
                                quarantined=batch.quarantined))  # fmt: skip
        accepted = []
        for acc in batch.accepted:
            try:
                self.store.commit(Batch([acc]), self.fanout)
                accepted.append(acc)
            except StoreError:
                raise
            except Exception as exc:  # last guard: quarantine the record that fails alone
                rec = acc.record
                log.exception("internal error storing seq %d of %s: quarantined", rec.seq,
                              rec.device)  # fmt: skip
                kept = Quarantined(rec.device, rec.seq, acc.hash, acc.jws, "internal_error",
                                   f"storing failed: {exc!r}"[:500])  # fmt: skip
                self.store.commit(Batch(rejections={"internal_error": 1}, quarantined=[kept]))
        return tuple(accepted)

    @classmethod
    def _reject(cls, state: _BatchState, exc: Rejected) -> None:
        cls._reject_into(state.rejections, exc)

    @staticmethod
    def _reject_into(rejections: Counter[str], exc: Rejected) -> None:
        rejections[exc.reason] += 1
        level = logging.ERROR if exc.reason == "seq_reused" else logging.WARNING
        log.log(level, "rejected a record from %s: %s", exc.device or "?", exc)

    @staticmethod
    def _internal_error(rejections: Counter[str], topic: str,
                        candidate: _Candidate | None) -> None:  # fmt: skip
        """Count and log (with its traceback) a message whose handling raised unexpectedly."""
        rejections["internal_error"] += 1
        if candidate is not None:
            where = f"seq {candidate.record.seq} of {candidate.record.device}"
        else:
            try:
                where = f"a message of {device_of_rec_topic(topic)}"
            except ProtocolError:
                where = f"a message on {topic[:100]!r}"
        log.exception("internal error handling %s: rejected, ingest goes on", where)

    def _envelope(self, topic: str, payload: bytes) -> tuple[str, list[bytes]]:
        """The device a message's topic names and the records it carries: one JWS, or a
        batch of JWS separated by LF (DESIGN.md, Records), each then checked alone."""
        if len(payload) > self.max_payload:
            raise Rejected("oversized", "", f"{len(payload)} bytes on {topic[:100]!r}")
        try:
            device_id = device_of_rec_topic(topic)
        except ProtocolError as exc:
            raise Rejected("bad_topic", "", str(exc)) from None
        return device_id, payload.split(b"\n")

    def _precheck(self, checked: _Checked, device_id: str, payload: bytes) -> _Pending:
        """Everything about one record before its signature: the JWS split (once), its kid,
        the device (looked up once per batch), enrolled and not revoked."""
        if not payload:
            raise Rejected("malformed", device_id, "an empty record (an empty line in a batch?)")
        try:
            token = payload.decode("ascii")
            parts = split(token)
        except UnicodeDecodeError:
            raise Rejected("malformed", device_id, "payload is not ASCII") from None
        except ProtocolError as exc:
            reason = "alg_mismatch" if exc.field == "alg" else "malformed"
            raise Rejected(reason, device_id, str(exc)) from None
        except (ValueError, RecursionError) as exc:  # json.loads: digit limit, nesting depth
            raise Rejected("malformed", device_id, f"header: {_why(exc)}") from None
        if parts.kid != device_id:
            raise Rejected("device_mismatch", device_id, f"kid {parts.kid!r} on its topic")
        if device_id in checked.devices:
            device = checked.devices[device_id]
        else:
            device = checked.devices[device_id] = self.store.device(device_id)
        if device is None:
            raise Rejected("unknown_device", device_id, "not enrolled")
        if device.revoked:
            raise Rejected("revoked_device", device_id, f"revoked at {device.revoked_at}")
        return _Pending(device, token, parts)

    def _verify_all(self, pending: Sequence[_Pending]) -> list[Rejected | None]:
        """The signature verdict of each record, in order: ``None`` when it verifies. With a
        verification pool, the signatures are checked in its processes (the order of the
        results, and so of each device's records, is kept)."""
        if self.pool is not None and len(pending) >= POOL_MIN_BATCH:
            items = [(p.device.public_key_pem, p.parts) for p in pending]
            return [None if error is None else self._bad_signature(p, error)
                    for p, error in zip(pending, self.pool.verify(items), strict=True)]  # fmt: skip
        verdicts: list[Rejected | None] = []
        for p in pending:
            try:
                verify_parts(p.parts, self._key(p.device.public_key_pem))
                verdicts.append(None)
            except ProtocolError as exc:
                verdicts.append(self._bad_signature(p, exc))
        return verdicts

    @staticmethod
    def _bad_signature(p: _Pending, exc: ProtocolError) -> Rejected:
        reason = "alg_mismatch" if exc.field == "alg" else "bad_signature"
        return Rejected(reason, p.device.id, str(exc))

    def _parse(self, p: _Pending, arrival: datetime, latest: str) -> _Candidate:
        """A record whose signature verified: its strict parse, device, VIN and data times. A
        signed record whose body is refused comes back as a ``Refused`` candidate."""
        device_id, parts, device = p.device.id, p.parts, p.device
        # Signed by the device: from here on, a refused body is quarantined if the record has
        # a readable place in the chain, so that it does not stall the gateway.
        candidate: Record | Refused
        try:
            candidate = parse_record(parts.payload)
        except RecordError as exc:
            candidate = self._unreadable(parts.payload, device_id, "bad_record", str(exc))
        except (ValueError, RecursionError) as exc:  # json.loads: digit limit, nesting depth
            candidate = self._unreadable(parts.payload, device_id, "bad_record", _why(exc))
        if candidate.device != device_id:
            raise Rejected("device_mismatch", device_id, f"record says {candidate.device!r}")
        if candidate.vin is not None and candidate.vin != device.vin:
            raise Rejected("vin_mismatch", device_id, f"VIN {candidate.vin} is not {device.vin}")
        if isinstance(candidate, Record):
            candidate = self._refusal(candidate, arrival, latest) or candidate
        return _Candidate(candidate, p.token, record_hash(p.token))

    @staticmethod
    def _unreadable(payload: bytes, device: str, reason: str, detail: str) -> Refused:
        place = chain_place(payload, reason, detail)
        if place is None:
            raise Rejected(reason, device, f"{detail} (and no readable seq/prev)")
        return place

    @staticmethod
    def _refusal(record: Record, arrival: datetime, latest: str) -> Refused | None:
        """Why a parsed, signed record is refused (and quarantined), if it is. ``latest`` is
        the last second (wire form, to the second) a record's instants may name."""
        if isinstance(record.body, Gap) and not all(
            r.first <= r.last < record.seq for r in record.body.ranges
        ):
            return refused(record, "bad_gap", f"seq {record.seq}: a range not before it")
        if not _may_be_future(record, latest):
            return None
        try:
            check_not_future(record, arrival)
        except RecordError as exc:
            return refused(record, "future_ts", str(exc))
        return None

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
        if other is None and self.on_early is not None and rec.kind in EARLY_KINDS:
            self._early(cand)
        self._drain(state, rec.device)

    def _early(self, cand: _Candidate) -> None:
        """Hand a verified record of an early kind to ``on_early`` (see the class docstring)."""
        rec = cand.record
        assert self.on_early is not None and isinstance(rec, Record)
        try:
            self.on_early(Accepted(rec, cand.jws, cand.hash))
        except Exception:  # the hook's failure is its own: ingest goes on
            log.exception("the early hook failed on seq %d of %s", rec.seq, rec.device)

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
            # committed meanwhile by another worker: the same record, or a fork
            old = waiting.pop(stale)
            stored = self._stored_hash(state, device, stale)
            if stored is not None and stored != old.hash:
                self._reject(state, Rejected("seq_reused", device, f"seq {stale} forked"))
        for stale in [s for s in declared if s <= head.seq]:
            del declared[stale]
        while True:
            eviction = declared.pop(head.seq + 1, None)
            if eviction is not None:
                state.declared_taken.append(eviction)
                state.evictions.append(eviction)
                head = ChainHead(eviction.last, eviction.last_hash)
                continue
            cand = waiting.pop(head.seq + 1, None)
            if cand is None:
                break
            state.taken.append(cand)
            rec = cand.record
            if rec.prev != head.hash and not (rec.seq == 1 and rec.prev is None):
                self._reject(state, Rejected("bad_prev", device, f"seq {rec.seq}"))
                continue
            if isinstance(rec, Refused):
                self._quarantine(state, cand, rec)
                head = ChainHead(rec.seq, cand.hash)
                continue
            statement = None
            if rec.kind == "consent":
                try:
                    statement = verify_consent(self.store, self.anchors, rec)
                except CardRejected as exc:  # the record joins the chain; it applies nothing
                    self._reject(state, Rejected(exc.reason, device, str(exc)))
            try:
                card = self._card(state, rec)
            except CardRejected as exc:
                # The device's record is sound, so the chain goes on; only the binding is
                # refused: no person, no session, and the session's trips stay unattributed.
                self._reject(state, Rejected(exc.reason, device, str(exc)))
                card = None
            except StoreError:
                raise
            except Exception:  # last guard: a bug in the card check binds nobody
                log.exception("internal error checking the card of seq %d of %s", rec.seq,
                              device)  # fmt: skip
                state.rejections["internal_error"] += 1
                card = None
            state.accepted.append(Accepted(rec, cand.jws, cand.hash, card, statement))
            state.hashes[(device, rec.seq)] = cand.hash
            head = ChainHead(rec.seq, cand.hash)
        state.heads[device] = head

    @staticmethod
    def _quarantine(state: _BatchState, cand: _Candidate, place: Refused) -> None:
        """Keep a signed, chained record whose body is refused; it takes its place in the chain."""
        state.rejections[place.reason] += 1
        state.quarantined.append(Quarantined(place.device, place.seq, cand.hash, cand.jws,
                                             place.reason, place.detail))  # fmt: skip
        state.hashes[(place.device, place.seq)] = cand.hash
        log.warning("quarantined seq %d (%s) of %s, %s: %s", place.seq, place.kind or "?",
                    place.device, place.reason, place.detail)  # fmt: skip

    def _card(self, state: _BatchState, rec: Record) -> CardIdentity | None:
        if not isinstance(rec.body, SessionStart):
            return None
        sha = rec.body.card_certificate_sha256
        known = state.certificates.get(sha) or self.store.card_certificate(sha)
        card = verify_session_start(rec, rec.body, self.anchors, known)
        if self.store.key_succeeded(card.key_sha256):
            raise CardRejected("card_succeeded", "this card was replaced by a successor card")
        owner = self.store.person_by_key(card.key_sha256)  # a successor card: the same person
        if owner is not None and owner != card.person_id:
            card = replace(card, person_id=owner)
        state.certificates[sha] = card.certificate_der
        named = [c.recipient for c in rec.body.statement.consents]
        if named and unknown_recipients(self.store, named):
            # no longer silent: counted, and logged with the recipients the registry knows
            state.rejections["consent_unknown_recipient"] += 1
        if named and role_refusals(self.store, rec.body.statement.consents):
            state.rejections["consent_role_category"] += 1  # msp_protocol.roles
        return card


#: The attribute paths of ``OCCURRED_AT``, per kind (body field names are the JSON keys).
_OCCURRED_STEPS: Final = {kind: tuple(tuple(p.split(".")) for p in paths)
                          for kind, paths in OCCURRED_AT.items()}  # fmt: skip


def _may_be_future(record: Record, latest: str) -> bool:
    """False when every instant the record names lies before the second ``latest`` (text
    order: valid date-times are fixed width to the second, always Z); then
    ``check_not_future`` cannot refuse it and is not run (it converts the whole body)."""
    if record.ts[:19] >= latest:
        return True
    for steps in _OCCURRED_STEPS.get(record.kind, ()):
        item: Any = record.body
        for step in steps:
            item = getattr(item, step)
        if not isinstance(item, str) or item[:19] >= latest:
            return True
    return False


def _why(exc: BaseException) -> str:
    """A short account of a parser's own failure (the messages can be long)."""
    return f"{type(exc).__name__}: {str(exc)[:120]}"
