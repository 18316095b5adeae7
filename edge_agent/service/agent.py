"""The running agent: the stages wired together, its threads, its main loop and its shutdown.

Threads and what each owns:

* **main** (this loop): decode, scoring, record writing, the watchdog ping, health records,
  trip end on silence, SIGTERM/SIGHUP handling. It alone appends to the outbox.
* **can-<bus>** / **replay-<bus>**: read frames into one bounded queue (live: a full queue
  drops and counts; replay: waits).
* **card**: the reader and the driver session (:mod:`.driver`), events to a bounded queue.
* **uplink** (plus paho's network thread): sends the outbox, prunes it on acks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import signals as sig
from ..config import AgentConfig, load_config, reloaded
from ..errors import AgentError, ConfigError, OutboxError
from ..frames import Frame
from ..keys import load_signer
from ..outbox import Outbox, OutboxLimits
from ..pipeline import BusRouter, DecodeStage
from ..samples import Sample
from ..scoring import Scorer, ScoringConfig
from ..sdnotify import Notifier
from ..text import plural
from ..uplink import MqttUplink, UplinkConfig
from ..writer import RecordWriter
from .health import HealthClock, HealthPolicy, RateWindow, bounded, process_usage, total_counters
from .sources import FrameSource, LiveSource, ReplaySource, build_stages, naming

if TYPE_CHECKING:  # the card (pyscard, X.509) and OBD-II (pyserial, isotp) load when configured
    from ..identity.pin_entry import SocketPinEntry
    from .driver import CardThread
    from .obd_source import ObdSource

log = logging.getLogger(__name__)

#: Samples handled between two looks at the clock (watchdog, card events, signals).
_TICK_EVERY = 256


class Agent:
    """``Agent(config).run()`` until :meth:`stop`; returns 0 after a clean shutdown.

    ``config_path`` and ``overrides`` (the command line's) are what :meth:`reload` re-reads,
    with the environment as it is then.

    Everything that can be refused (keys, outbox, signal maps, buses, trust anchors) is
    opened in :meth:`run` before ``READY=1``; errors there raise ``AgentError``.
    """

    def __init__(self, config: AgentConfig, *, notifier: Notifier | None = None,
                 config_path: Path | None = None,
                 overrides: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.config = config
        self.notifier = notifier if notifier is not None else Notifier()
        self._reload_from = (config_path, dict(overrides or {}))
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.scorer = Scorer(config.scoring)
        self._pending_scoring: ScoringConfig | None = None
        self._next_ping: float | None = None
        self.stages: dict[str, DecodeStage] = {}
        self._router = BusRouter({})  # the real one once the stages are built
        self.source: FrameSource | None = None
        self.obd: ObdSource | None = None
        self.vin = config.vin
        self.outbox: Outbox | None = None
        self.writer: RecordWriter | None = None
        self.card: CardThread | None = None
        self.uplink: MqttUplink | None = None
        self._uplink_stop = threading.Event()
        self._uplink_thread: threading.Thread | None = None
        self._fatal: AgentError | None = None
        self._acked_seq = -1
        self._last_ack_at: float | None = None
        self._pin_entry: SocketPinEntry | None = None
        self._ignition: bool | None = None
        self._idle_handled = False
        self._frames_seen = 0
        self._last_frame_at = time.monotonic()
        self._rates = RateWindow()
        self._health = HealthClock(config.health_interval_s)
        self._health_policy = HealthPolicy(config.health_max_interval_s)
        self._started = time.monotonic()

    # -- control from signal handlers (they only set flags) --------------------------------
    def stop(self) -> None:
        """Ask the main loop to shut down (SIGTERM, SIGINT)."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the main loop to re-read the configuration (SIGHUP)."""
        self._reload.set()

    # -- start-up --------------------------------------------------------------------------
    def _open(self) -> None:
        cfg = self.config
        with naming("key"):
            signer = load_signer(cfg.key, cfg.device)
        if cfg.obd is not None:
            from .obd_source import ObdSource  # noqa: PLC0415 - only with [obd]

            with naming("obd"):
                self.obd = ObdSource(cfg.obd)
            if cfg.vin == "obd":
                self.vin = self.obd.read_vin()
                log.info("VIN %s read over OBD-II", self.vin)
        cfg.outbox_path.parent.mkdir(parents=True, exist_ok=True)
        limits = OutboxLimits(max_bytes=cfg.outbox_max_bytes, max_rows=cfg.outbox_max_rows)
        with naming("outbox.path"):
            self.outbox = Outbox.open(cfg.outbox_path, signer, self.vin, limits)
        self.writer = RecordWriter(self.outbox, cfg.scoring)
        if self.obd is not None and cfg.obd is not None and cfg.obd.dtc:
            dtc = self.obd.read_dtc()
            if dtc is not None:
                self.writer.dtc(dtc)
        self.stages = build_stages(cfg)
        self._router = BusRouter(self.stages)
        wanted = frozenset().union(*(stage.wanted for stage in self.stages.values()))
        if cfg.replay_log is not None:
            self.source = ReplaySource(cfg.replay_log, cfg.buses[0].name, wanted,
                                       cfg.replay_speed, cfg.queue_size)  # fmt: skip
        elif cfg.buses:
            with naming("bus"):
                self.source = LiveSource(cfg.buses, wanted, cfg.queue_size)
        if cfg.card_enabled:
            self.card = self._open_card()
        host, port, tls = cfg.broker_host_port
        uplink_cfg = UplinkConfig(
            device=cfg.device, host=host, port=port, ca_file=cfg.broker_ca if tls else None,
            cert_file=cfg.broker_cert if tls else None, key_file=cfg.key if tls else None,
            mqtt5=not cfg.mqtt311, keepalive_s=cfg.uplink_keepalive_s,
            batch_records=cfg.uplink_batch_records, batch_bytes=cfg.uplink_batch_bytes,
            linger_s=cfg.uplink_linger_s, session_expiry_s=cfg.uplink_session_expiry_s,
            fallbacks=cfg.broker_fallbacks, failback_s=cfg.uplink_failback_s,
        )  # fmt: skip
        self.uplink = MqttUplink(uplink_cfg, self.outbox)

    def _open_card(self) -> CardThread:
        # Only with [card] enabled: these bring pyscard and cryptography's X.509.
        from ..card.pcsc import PcscTransport  # noqa: PLC0415
        from ..identity.consent import ConsentRequest  # noqa: PLC0415
        from ..identity.pin_entry import SocketPinEntry  # noqa: PLC0415
        from ..identity.session import LoginConfig, SessionManager  # noqa: PLC0415
        from ..identity.trust import TrustStore  # noqa: PLC0415
        from ..identity.watcher import CardWatcher  # noqa: PLC0415
        from .driver import CardThread  # noqa: PLC0415

        cfg = self.config
        with naming("card.anchors"):
            trust = TrustStore.load(cfg.trust_anchors)
        request = None
        if cfg.consent is not None:
            c = cfg.consent
            request = ConsentRequest(c.recipient, c.categories, c.days)
        login = LoginConfig(self.vin, cfg.device, cfg.licence_class, trust, (),
                            cfg.max_session_s)  # fmt: skip
        # like the unit's RuntimeDirectoryMode=0750: the HMI may run in the agent's group
        cfg.pin_socket.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            pin_entry = SocketPinEntry(cfg.pin_socket, cfg.pin_timeout_s)
        except OSError as exc:
            raise ConfigError(f"card.pin_socket: cannot listen on {cfg.pin_socket}: {exc}") from exc
        self._pin_entry = pin_entry
        watcher = CardWatcher(SessionManager(login, pin_entry), PcscTransport(cfg.card_reader))
        return CardThread(watcher, cfg.card_poll_s, request)

    # -- the main loop ---------------------------------------------------------------------
    def run(self) -> int:
        """Open everything, notify readiness, loop until stopped, shut down cleanly."""
        try:
            self._open()
            assert self.uplink is not None
            self._uplink_thread = threading.Thread(
                target=self._run_uplink, args=(self.uplink,), name="uplink", daemon=True
            )
            self._uplink_thread.start()
            if self.card is not None:
                self.card.start()
            if self.obd is not None:
                self.obd.start()
            self.notifier.ready(f"running: {plural(len(self.stages), 'bus', 'buses')}, outbox open")
            log.info("agent %s running (vin %s, %s)", self.config.device, self.vin,
                     self.config.vehicle_class)  # fmt: skip
            self._loop(self.source)
        finally:
            self._shutdown()
        return 0

    def _run_uplink(self, uplink: MqttUplink) -> None:
        try:
            uplink.run(self._uplink_stop)
        except OutboxError as exc:  # the outbox cannot be read: nothing would ever be sent
            log.error("uplink stopped: %s", exc)
            self._fatal = exc

    def _loop(self, source: FrameSource | None) -> None:
        self._next_ping = time.monotonic()
        self._tick()
        while not self._stop.is_set():
            frames = source.frames(idle_timeout=0.2) if source is not None else self._idle(0.2)
            for n, sample in enumerate(self._decode(frames), 1):
                self._on_sample(sample)
                if n % _TICK_EVERY == 0:
                    self._tick()
                    if self._stop.is_set():
                        break
            self._tick()
            if (self.config.replay_exit_at_end and isinstance(source, ReplaySource)
                    and source.finished.is_set() and source.depth() == 0):  # fmt: skip
                log.info("replay finished: stopping (replay.exit_at_end)")
                self._stop.set()

    def _idle(self, seconds: float) -> Iterator[Frame]:
        """No bus (OBD polling only): wait, yield nothing."""
        self._stop.wait(seconds)
        return iter(())

    def _decode(self, frames: Iterable[Frame]) -> Iterator[Sample]:
        return self._router.run(frames)

    def _on_sample(self, sample: Sample) -> None:
        assert self.writer is not None
        scorer = self.scorer
        was_in_trip = scorer.in_trip
        events = scorer.feed(sample)
        if self.writer.public is not None:  # the driver consents public: docs/public.md
            self.writer.public.feed(sample, scorer.state, scorer.in_trip)
        if events:
            self.writer.events(events)
        if sample.name == sig.IGNITION:
            on = bool(sample.value)
            if self._ignition is True and not on and self.card is not None:
                self.card.ignition_off()
            self._ignition = on
        if was_in_trip and not scorer.in_trip:
            self.writer.trips(scorer.pop_trips())

    def _tick(self) -> None:
        if self._fatal is not None:
            raise self._fatal  # exit non-zero: systemd restarts the agent
        now = time.monotonic()
        if self._next_ping is not None and now >= self._next_ping:
            interval = self.notifier.watchdog_interval_s
            if interval is None:
                self._next_ping = None
            else:
                self.notifier.watchdog()
                self._next_ping = now + interval
        self._drain_card()
        if self.writer is not None:
            self.writer.refresh_consents(datetime.now(UTC))
        if self.obd is not None:
            while not self.obd.samples.empty():
                for sample in self.obd.samples.get_nowait():
                    self._on_sample(sample)
        self._check_silence(now)
        if self._health.due(now):
            self._write_health(now)
        if self._reload.is_set():
            self._reload.clear()
            self._apply_reload()
        if self._pending_scoring is not None and not self.scorer.in_trip:
            self.scorer, self._pending_scoring = Scorer(self._pending_scoring), None
            log.info("new scoring settings in effect")

    def _drain_card(self, reason: str | None = None) -> None:
        if self.card is None or self.writer is None:
            return
        from ..identity.watcher import SessionEnded, SessionStarted  # noqa: PLC0415 - with a card

        while not self.card.events.empty():
            event = self.card.events.get_nowait()
            if isinstance(event, SessionStarted):
                self.writer.session_started(event.session)
            elif isinstance(event, SessionEnded):
                self.writer.session_ended(event)

    def _check_silence(self, now: float) -> None:
        """Ignition off without a word on the bus: after ``no_frames_s`` of silence the trip
        ends (where the data ended) and so does the driver's session; the agent keeps going."""
        assert self.writer is not None
        seen = sum(v for k, v in self._input_counts().items() if k.endswith((".frames",
                                                                              ".samples")))
        if seen != self._frames_seen:
            self._frames_seen, self._last_frame_at, self._idle_handled = seen, now, False
            return
        if self._idle_handled or now - self._last_frame_at < self.config.no_frames_s:
            return
        self._idle_handled = True
        if self.scorer.in_trip:
            log.info("no frames for %.0f s: ending the trip", self.config.no_frames_s)
            self.writer.events(self.scorer.close())
            self.writer.trips(self.scorer.pop_trips())
        if self.card is not None:
            self.card.ignition_off()

    def _input_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        if self.source is not None:
            counts.update({f"bus.{k}": v for k, v in self.source.counts.items()})
        if self.obd is not None:
            counts.update(self.obd.counts)
        return counts

    def _write_health(self, now: float) -> None:
        assert self.outbox is not None and self.writer is not None
        elapsed = self._health.mark(now)
        totals = self._input_counts()
        for name, stage in self.stages.items():
            totals.update({f"decode.{name}.{k}": v for k, v in stage.rejected().items()})
        totals.update({f"scoring.{k}": v for k, v in self.scorer.rejected.items()})
        totals.update(self.writer.counts)
        stats = self.outbox.stats()
        totals.update({"outbox.evicted_total": stats.evicted_total,
                       "outbox.refused_total": stats.refused_total,
                       "outbox.lost_total": stats.lost_total})  # fmt: skip
        frames, counters = total_counters(totals, self._rates.delta(totals), elapsed)
        usage = process_usage()
        assert self.uplink is not None
        up = self.uplink.stats()
        if stats.acked_seq != self._acked_seq:
            self._acked_seq, self._last_ack_at = stats.acked_seq, now
        if self._last_ack_at is not None and stats.acked_seq > 0:
            counters["uplink.last_ack_age_s"] = round(now - self._last_ack_at)
        counters.update({
            "queue.frames": self.source.depth() if self.source is not None else 0,
            "uplink.connected": int(self.uplink.connected), "uplink.published": up.published,
            "uplink.acked": up.acked, "uplink.acked_seq": stats.acked_seq,
            "uplink.messages": up.messages,
            "process.rss_kib": usage.rss_kib, "process.max_rss_kib": usage.max_rss_kib,
            "process.cpu_ms": round(usage.cpu_s * 1000),
        })  # fmt: skip
        if self.card is not None:
            counters.update({"queue.card": self.card.events.qsize(),
                             "card.reader": int(self.card.reader_present),
                             "card.errors": self.card.errors})  # fmt: skip
        errors = bounded(counters)
        body = self.outbox.health_body(round(now - self._started, 3), round(frames / elapsed, 3),
                                       errors)  # fmt: skip
        why = self._health_policy.due(errors, now, body.evicted, body.refused)
        if why is None:
            return  # nothing an operator acts on changed: no bytes spent on it
        log.debug("health record (%s)", why)
        self.writer.health(body)
        self._health_policy.wrote(errors, now)

    def _apply_reload(self) -> None:
        path, overrides = self._reload_from
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load_config(path, os.environ, overrides)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.ready("reload refused: see the journal")
            return
        if new.scoring != self.config.scoring:
            self._pending_scoring = new.scoring
        self.config, restart = reloaded(self.config, new)
        self._health.reschedule(self.config.health_interval_s)
        self._health_policy.max_interval_s = self.config.health_max_interval_s
        if restart:
            log.warning("reload: %s changed and take effect at the next restart",
                        ", ".join(restart))  # fmt: skip
        log.info("configuration reloaded")
        self.notifier.ready("running (reloaded)")

    # -- shutdown --------------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        if self.source is not None:
            self.source.close()
        if self.obd is not None:
            self.obd.close()
        if self.writer is not None:
            self.writer.events(self.scorer.close())
            self.writer.trips(self.scorer.pop_trips())
        if self.card is not None:
            self.card.stop(timeout_s=2.0)
            self._drain_card()
        if self._pin_entry is not None:
            self._pin_entry.close()
        self._flush()
        if self.outbox is not None:
            self.outbox.close()
        self.notifier.close()

    def _flush(self) -> None:
        """Give the uplink ``stop_flush_s`` to send what is left, then stop it (what it did
        not send stays in the outbox for the next start)."""
        if self._uplink_thread is None or self.outbox is None:
            return
        deadline = time.monotonic() + self.config.stop_flush_s
        if self.uplink is not None:
            self.uplink.hurry()  # no waiting for a batch to fill
        while time.monotonic() < deadline and self.outbox.stats().rows > 0:
            if self.uplink is None or not self.uplink.connected:
                break
            time.sleep(0.05)
        self._uplink_stop.set()
        self._uplink_thread.join(timeout=5.0)
        if self.outbox.stats().rows:
            log.info("%d record(s) left in the outbox for the next start",
                     self.outbox.stats().rows)  # fmt: skip
