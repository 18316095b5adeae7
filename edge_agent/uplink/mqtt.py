"""MQTT uplink of the gateway: sends outbox records to the registry, prunes them on its acks.

paho-mqtt 2.x (callback API v2), MQTT 5 by default or 3.1.1, mutual TLS with the device
certificate. paho's network thread only puts events on a queue (its callbacks run under its
locks); the agent's thread calls :meth:`MqttUplink.step`, which publishes, re-sends and
applies acks. Delivery: records go out in seq order, at most ``window`` unacked at a time,
several to a message (DESIGN.md, Records: JWS separated by LF, at most ``batch_records`` and
``batch_bytes``), waiting up to ``linger_s`` for a batch to fill (``emergency``, ``consent``
and session records never wait); the registry's ack ``{"seq": N}`` deletes every record ≤ N
from the outbox; anything unacked is re-sent after ``resend_after_s``, and after a reconnect
what paho does not re-send itself. A broker refusal (MQTT 5 reason code) keeps the record
and is logged once per cause. Reconnects back off exponentially from ``backoff_min_s`` to
``backoff_max_s`` (paho's reconnect delay).

For a metered cellular link: one long-lived connection with a long keepalive
(``keepalive_s``, 300 s by default: a PINGREQ/PINGRESP pair costs about 60 bytes with TLS);
under MQTT 5 a persistent session (``clean_start`` false, ``session_expiry_s``) so that a
reconnect needs no new SUBSCRIBE and the broker keeps the acks meanwhile; and TLS session
resumption on reconnects of the same process (``tls_resume``): the previous connection's
session ticket is offered, so the certificates are not sent again.

Several brokers (``fallbacks`` beside ``host``/``port``: the nodes of a cluster): after
``failover_after`` failed connection attempts in a row the uplink moves to the next one, round
the list; while it is away from the first, a probe thread tries a TCP connection to the first
every ``probe_s`` (opened and closed at once: a TLS broker may log an aborted handshake) and,
once the first has been reachable for ``failback_s`` without a failed probe, the uplink
returns to it. Moving needs no care from the outbox: what was in flight is
sent again on the new connection (the registry's idempotency makes a repeat harmless).
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import MAX_TOKEN_CHARS
from msp_protocol.topics import ack_topic, parse_ack, rec_topic

from ..errors import OutboxError
from .base import Outbox, OutboxRecord, UplinkError, UplinkStats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    """How the gateway reaches the broker; without ``ca_file`` the connection is plain TCP
    (loopback tests and the embedded demo broker only)."""

    device: str
    host: str = "127.0.0.1"
    port: int = 8883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    mqtt5: bool = True
    window: int = 64
    resend_after_s: float = 10.0
    backoff_min_s: int = 1
    backoff_max_s: int = 60
    keepalive_s: int = 300
    batch_records: int = 32
    batch_bytes: int = 16 * 1024
    linger_s: float = 0.0
    session_expiry_s: int = 24 * 3600
    tls_resume: bool = True
    #: further brokers (host, port), tried in turn when ``host``/``port`` cannot be reached
    fallbacks: tuple[tuple[str, int], ...] = ()
    failover_after: int = 2
    failback_s: float = 300.0
    probe_s: float = 5.0

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """Every broker, the first one first."""
        return ((self.host, self.port), *self.fallbacks)

    def __post_init__(self) -> None:
        if self.batch_records < 1:
            raise UplinkError(f"batch_records {self.batch_records}: at least 1")
        if not 0 < self.batch_bytes <= MAX_TOKEN_CHARS:
            raise UplinkError(f"batch_bytes {self.batch_bytes}: 1 to {MAX_TOKEN_CHARS} (the "
                              "registry's limit on one message)")  # fmt: skip
        if self.keepalive_s < 0 or self.keepalive_s > 65535:
            raise UplinkError(f"keepalive_s {self.keepalive_s}: 0 to 65535 (MQTT's limit)")
        if self.linger_s < 0 or self.session_expiry_s < 0:
            raise UplinkError("linger_s and session_expiry_s may not be negative")
        if self.failover_after < 1 or self.failback_s < 0 or self.probe_s <= 0:
            raise UplinkError("failover_after must be 1 or more, failback_s 0 or more, probe_s"
                              " above 0")  # fmt: skip


#: Never held back for a batch: what the registry must act on at once (DESIGN.md, Records),
#: and a driver session's start and end (the binding a fleet sees).
URGENT_KINDS = frozenset({"emergency", "consent", "request", "profile", "session.start",
                          "session.end"})
#: Sent ahead of the backlog, out of seq order, as soon as they are written (by the agent or
#: by another process, such as ``msp-agent card consent``): the registry acts on them once
#: their signature verifies, before the records ahead of them in the chain arrive.
AHEAD_KINDS = ("emergency", "consent", "request", "profile")


def batches(records: list[OutboxRecord], max_records: int,
            max_bytes: int) -> list[list[OutboxRecord]]:  # fmt: skip
    """``records`` in order, cut into messages of at most ``max_records`` records and
    ``max_bytes`` bytes (JWS plus the LF between them); a record larger than ``max_bytes``
    goes alone."""
    out: list[list[OutboxRecord]] = []
    current: list[OutboxRecord] = []
    size = 0
    for record in records:
        grown = size + len(record.jws) + (1 if current else 0)
        if current and (len(current) >= max_records or grown > max_bytes):
            out.append(current)
            current, grown = [], len(record.jws)
        current.append(record)
        size = grown
    if current:
        out.append(current)
    return out


#: The TLS 1.2 cipher suites the uplink offers (OpenSSL syntax).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class _ResumingContext(ssl.SSLContext):
    """A client context that offers the last TLS session it was given (TLS 1.3 ticket or 1.2
    session id) on the next handshake; paho wraps every new socket with it."""

    session: ssl.SSLSession | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if kwargs.get("session") is None and self.session is not None:
            kwargs["session"] = self.session
        return super().wrap_socket(sock, *args, **kwargs)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    # Records and acks are small: without this, Nagle's algorithm holds a publish until the
    # previous one is TCP-acked, which delayed acks stretch to ~40 ms.
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str  # connected | disconnected | ack | published
    generation: int = 0  # which client (broker) it came from: older ones are ignored
    seq: int = 0
    resumed: bool = False
    mid: int = 0
    reason: str = ""
    failed: bool = False


class MqttUplink:
    """Drains one :class:`Outbox` to the broker; call :meth:`start`, then :meth:`step` in a loop."""

    def __init__(
        self, config: UplinkConfig, outbox: Outbox, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.outbox = outbox
        self._clock = clock
        self._events: queue.Queue[_Event] = queue.Queue()
        self._window: dict[int, tuple[OutboxRecord, float]] = {}
        self._mids: dict[int, tuple[int, ...]] = {}  # MQTT mid -> seqs paho still holds
        self._linger_from: float | None = None
        # taken from the outbox (which starts their re-send timers), held back for a batch
        self._held: dict[int, OutboxRecord] = {}
        self._hurry = False
        self._tls: _ResumingContext | None = None
        self._causes: set[str] = set()
        self._connected = False
        self._evicted_seen = -1
        self._ahead_seen = -1  # the last seq looked at for AHEAD_KINDS; -1: not yet
        self._stats = UplinkStats()
        self._topic = rec_topic(config.device)
        self._endpoint = 0  # index into config.endpoints
        self._generation = 0
        self._failures = 0  # connection attempts failed in a row
        self._first_up_since: float | None = None  # the probe thread's; None: not reachable
        self._probe_stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._client = self._make_client()

    @property
    def endpoint(self) -> tuple[str, int]:
        """The broker (host, port) the uplink uses now."""
        return self.config.endpoints[self._endpoint]

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.device,
            protocol=mqtt.MQTTv5 if cfg.mqtt5 else mqtt.MQTTv311,
            clean_session=None if cfg.mqtt5 else True,
            userdata=self._generation,
        )
        if cfg.ca_file is not None and cfg.tls_resume:
            try:
                self._tls = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
                # Only forward-secret AEAD suites for TLS 1.2 (1.3 has its own): the
                # ClientHello shrinks below 256 bytes, where OpenSSL adds no padding
                # extension (RFC 7685), 517 -> 251 bytes per handshake
                self._tls.set_ciphers(TLS12_CIPHERS)
                self._tls.load_verify_locations(cafile=str(cfg.ca_file))
                if cfg.cert_file is not None:
                    self._tls.load_cert_chain(
                        str(cfg.cert_file), str(cfg.key_file) if cfg.key_file else None
                    )
            except (OSError, ssl.SSLError) as exc:
                raise UplinkError(f"TLS files ({cfg.ca_file}, {cfg.cert_file}): {exc}") from exc
            client.tls_set_context(self._tls)
        elif cfg.ca_file is not None:
            client.tls_set(
                ca_certs=str(cfg.ca_file),
                certfile=str(cfg.cert_file) if cfg.cert_file else None,
                keyfile=str(cfg.key_file) if cfg.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.reconnect_delay_set(min_delay=cfg.backoff_min_s, max_delay=cfg.backoff_max_s)
        client.max_inflight_messages_set(cfg.window)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_log = self._on_log
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # paho callbacks: on paho's network thread; they only queue events -----------------------
    def _on_connect(self, client: mqtt.Client, gen: int, flags: Any, rc: ReasonCode,
                    _p: Any) -> None:  # fmt: skip
        if rc.is_failure:
            self._events.put(_Event("refused_connect", gen, reason=str(rc)))
            return
        resumed = False
        sock = client.socket()
        if self._tls is not None and isinstance(sock, ssl.SSLSocket):
            # the server's tickets came before the CONNACK: keep one for the next handshake
            resumed = bool(sock.session_reused)
            session = sock.session
            if session is not None:
                self._tls.session = session
        if not getattr(flags, "session_present", False):
            # QoS 0: an ack is cumulative and idempotent; a lost one is made good by the next
            # (or by the re-send it leads to), so a PUBACK for each is bytes for nothing
            client.subscribe(ack_topic(self.config.device), qos=0)
        self._events.put(_Event("connected", gen, resumed=resumed))

    def _on_connect_fail(self, _c: mqtt.Client, gen: int) -> None:
        # paho calls this inside its ``except OSError`` and passes no error: the one being
        # handled is why (connection refused, a TLS certificate the other side refused, ...)
        exc = sys.exc_info()[1]
        where = "%s:%d" % self.endpoint  # noqa: UP031 - a (host, port) tuple
        self._events.put(_Event("connect_failed", gen,
                                reason=f"{where}: {exc or 'unknown error'}"))  # fmt: skip

    def _on_log(self, _c: mqtt.Client, gen: int, level: int, text: str) -> None:
        # A socket error after the TCP connect, e.g. the broker refused our certificate:
        # "failed to receive on socket: [SSL: ...]" (paho's other errors repeat what we log)
        if level == mqtt.MQTT_LOG_ERR and " on socket: " in text:
            self._events.put(_Event("socket_error", gen, reason=text))

    def _on_disconnect(self, _c: mqtt.Client, gen: int, _f: Any, rc: ReasonCode,
                       _p: Any) -> None:  # fmt: skip
        self._events.put(_Event("disconnected", gen, reason=str(rc)))

    def _on_message(self, _c: mqtt.Client, gen: int, msg: mqtt.MQTTMessage) -> None:
        # an ack is true whichever broker carried it: never ignored for its generation
        try:
            self._events.put(_Event("ack", gen, seq=parse_ack(bytes(msg.payload))))
        except ProtocolError as exc:
            self._events.put(_Event("bad_ack", gen, reason=str(exc)))

    def _on_publish(self, _c: mqtt.Client, gen: int, mid: int, rc: ReasonCode,
                    _p: Any) -> None:  # fmt: skip
        self._events.put(_Event("published", gen, mid=mid, reason=str(rc), failed=rc.is_failure))

    # the agent's thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background (retries with back-off until :meth:`stop`)."""
        self._connect()
        if self.config.fallbacks and self._prober is None:
            self._probe_stop.clear()
            self._prober = threading.Thread(target=self._probe_first, daemon=True,
                                            name=f"uplink-probe-{self.config.device}")
            self._prober.start()

    def _connect(self) -> None:
        cfg = self.config
        host, port = self.endpoint
        props = None
        if cfg.mqtt5 and cfg.session_expiry_s > 0:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
        try:
            self._client.connect_async(
                host, port, keepalive=cfg.keepalive_s,
                clean_start=props is None if cfg.mqtt5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=props,
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            raise UplinkError(f"{host}:{port}: {exc}") from exc
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop paho's thread; unacked records stay in the outbox."""
        self._probe_stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        if self._prober is not None:
            self._prober.join(timeout=self.config.probe_s + 2)
            self._prober = None

    def _move_to(self, index: int) -> None:
        """Leave the current broker for ``config.endpoints[index]``: a new paho client (the
        old one's in-flight messages go again, from the window, once connected)."""
        old = self._client
        old.disconnect()
        old.loop_stop()
        was = self.endpoint
        self._endpoint = index
        self._generation += 1
        self._failures = 0
        self._connected = False
        self._mids.clear()
        self._client = self._make_client()
        log.warning("uplink moves from %s:%d to %s:%d", *was, *self.endpoint)
        self._stats = self._stats.bump(failovers=1)
        self._connect()

    def _probe_first(self) -> None:
        """On its own thread: is the first broker reachable (a TCP connection), since when."""
        host, port = self.config.endpoints[0]
        while not self._probe_stop.is_set():
            if self._endpoint == 0:  # on the first: nothing to probe
                self._first_up_since = None
            else:
                try:
                    with socket.create_connection((host, port),
                                                  timeout=min(self.config.probe_s, 2)):
                        pass
                    if self._first_up_since is None:
                        self._first_up_since = self._clock()
                except OSError:
                    self._first_up_since = None
            self._probe_stop.wait(self.config.probe_s)

    def _maybe_fail_back(self) -> None:
        if self._endpoint == 0:
            return
        since = self._first_up_since
        if since is not None and self._clock() - since >= self.config.failback_s:
            log.info("uplink: %s:%d reachable for %.0f s, returning to it",
                     *self.config.endpoints[0], self._clock() - since)  # fmt: skip
            self._move_to(0)

    @property
    def connected(self) -> bool:
        """True between a CONNACK and the next disconnect, as seen by :meth:`step`."""
        return self._connected

    def stats(self) -> UplinkStats:
        """Counters since start: published, re-sent, acked, refused, reconnects."""
        return self._stats

    def hurry(self) -> None:
        """Send what is pending without waiting for a batch to fill (at shutdown)."""
        self._hurry = True

    def step(self, timeout: float = 0.1) -> None:
        """Handle what paho reported (waiting up to ``timeout`` for it), then send what is due.

        Raises ``OutboxError`` if the outbox cannot be read or pruned.
        """
        try:
            self._handle(self._events.get(timeout=timeout))
            while True:
                self._handle(self._events.get_nowait())
        except queue.Empty:
            pass
        if self.config.fallbacks:
            self._maybe_fail_back()
        if self._connected:
            self._send_due()

    def run(self, stop: threading.Event, idle_s: float = 0.1) -> None:
        """Call :meth:`step` until ``stop`` is set (for an agent that has nothing else to do)."""
        self.start()
        try:
            while not stop.is_set():
                self.step(idle_s)
        finally:
            self.stop()

    def _handle(self, event: _Event) -> None:
        if event.generation != self._generation and event.kind != "ack":
            return  # from the client of a broker the uplink has left
        if event.kind == "connected":
            self._connected = True
            self._failures = 0
            self._stats = self._stats.bump(connects=1, tls_resumed=int(event.resumed))
            log.info("uplink connected to %s:%d%s", *self.endpoint,
                     " (TLS session resumed)" if event.resumed else "")  # fmt: skip
            # paho re-sends the messages it still holds (no PUBACK yet); the rest of the
            # window (PUBACKed, but no registry ack) goes again now
            held = {seq for seqs in self._mids.values() for seq in seqs}
            self._resend([seq for seq in self._window if seq not in held])
        elif event.kind == "disconnected":
            if self._connected:
                log.warning("uplink disconnected: %s", event.reason)
            self._connected = False
        elif event.kind == "ack":
            self._stats = self._stats.bump(acks=1)
            self._apply_ack(event.seq)
        elif event.kind == "published":
            seqs = self._mids.pop(event.mid, None)
            if event.failed and seqs:
                self._stats = self._stats.bump(refused=len(seqs))
                where = f"seq {seqs[0]}" + (f"..{seqs[-1]}" if len(seqs) > 1 else "")
                self._log_cause(f"broker refused {where}: {event.reason}", event.reason)
        else:  # refused_connect, connect_failed, socket_error, bad_ack
            self._log_cause(f"{event.kind}: {event.reason}", event.kind + event.reason)
            if event.kind != "bad_ack" and not self._connected:
                self._failed_attempt()

    def _failed_attempt(self) -> None:
        self._failures += 1
        if len(self.config.endpoints) > 1 and self._failures >= self.config.failover_after:
            self._move_to((self._endpoint + 1) % len(self.config.endpoints))

    def _log_cause(self, message: str, cause: str) -> None:
        if cause in self._causes:
            log.debug("%s", message)
        else:
            self._causes.add(cause)
            log.warning("%s (logged once per cause)", message)

    def _apply_ack(self, seq: int) -> None:
        try:
            pruned = self.outbox.ack(seq)
        except OutboxError as exc:
            self._log_cause(f"ignored ack {seq}: {exc}", "bad_ack_seq")
            return
        for done in [s for s in self._window if s <= seq]:
            del self._window[done]
        for done in [s for s in self._held if s <= seq]:
            del self._held[done]
        self._stats = self._stats.bump(acked=pruned)

    def _publish(self, records: list[OutboxRecord]) -> None:
        """Publish ``records`` (in seq order) in as few messages as the batch bounds allow."""
        cfg = self.config
        now = self._clock()
        for batch in batches(records, cfg.batch_records, cfg.batch_bytes):
            payload = "\n".join(r.jws for r in batch).encode("ascii")
            info = self._client.publish(self._topic, payload, qos=1)
            self._mids[info.mid] = tuple(r.seq for r in batch)
            for record in batch:
                self._window[record.seq] = (record, now)
            self._stats = self._stats.bump(messages=1)

    def _resend(self, seqs: list[int]) -> None:
        if seqs:
            self._publish([self._window[seq][0] for seq in sorted(seqs)])
            self._stats = self._stats.bump(resent=len(seqs))

    def _send_gaps(self) -> None:
        """Send gap records out of turn after an eviction or a rebuild of a damaged outbox:
        the registry cannot pass the seqs they declare before it sees the gap record, which
        may sit beyond the in-flight window."""
        stats = self.outbox.stats()
        self._send_ahead(stats.last_seq)
        given_up = stats.evicted_total + stats.lost_total
        if given_up == self._evicted_seen:
            return
        self._evicted_seen = given_up
        self._publish([r for r in self.outbox.records("gap") if r.seq not in self._window])

    def _send_ahead(self, last_seq: int) -> None:
        """Send records of ``AHEAD_KINDS`` written since the last look out of turn, ahead of
        the backlog (a look at the whole outbox once, after a start)."""
        if last_seq == self._ahead_seen:
            return
        after, self._ahead_seen = max(self._ahead_seen, 0), last_seq
        ahead = [r for kind in AHEAD_KINDS for r in self.outbox.records(kind, after)
                 if r.seq not in self._window]  # fmt: skip
        if ahead:
            self._held = {s: r for s, r in self._held.items() if s not in {a.seq for a in ahead}}
            self._publish(sorted(ahead, key=lambda r: r.seq))
            log.info("sent %d record(s) ahead of the backlog (%s)", len(ahead),
                     ", ".join(sorted({r.kind for r in ahead})))  # fmt: skip

    def _send_due(self) -> None:
        self._send_gaps()
        now = self._clock()
        late = [s for s, (_r, at) in self._window.items() if now - at >= self.config.resend_after_s]
        if late:
            self._resend(late)
        room = self.config.window - len(self._window)
        if room <= 0:
            return
        for record in self.outbox.pending(room - len(self._held)) if room > len(self._held) else ():
            if record.seq not in self._window:
                self._held.setdefault(record.seq, record)
        fresh = [self._held[seq] for seq in sorted(self._held)]
        if not fresh:
            self._linger_from = None
            return
        if self._lingers(fresh, room, now):
            return
        self._linger_from = None
        self._held.clear()
        self._publish(fresh)
        self._stats = self._stats.bump(published=len(fresh))

    def _lingers(self, fresh: list[OutboxRecord], room: int, now: float) -> bool:
        """Whether to hold ``fresh`` back a little longer for a fuller batch."""
        cfg = self.config
        if cfg.linger_s <= 0 or self._hurry or any(r.kind in URGENT_KINDS for r in fresh):
            return False
        full = len(fresh) >= min(cfg.batch_records, room) or (
            sum(len(r.jws) + 1 for r in fresh) >= cfg.batch_bytes)  # fmt: skip
        if full:
            return False
        if self._linger_from is None:
            self._linger_from = now
        return now - self._linger_from < cfg.linger_s
