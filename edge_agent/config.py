"""The agent's one configuration: a frozen dataclass and the loader that builds it.

Precedence, one rule for every key: command line (``--set KEY=VALUE`` and the named flags)
> environment (``MSP_KEY`` with dots as underscores, e.g. ``MSP_OUTBOX_PATH``) > the TOML
file > defaults. Every error names the key (and the file) and what was expected, and is
raised before anything starts. The keys are documented in docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args
from urllib.parse import urlsplit

from msp_protocol.consent import CATEGORIES as CONSENT_CATEGORIES
from msp_protocol.consent import parse_categories
from msp_protocol.errors import ProtocolError
from msp_protocol.records import MAX_RECORD_BYTES
from msp_protocol.topics import check_id

from . import config_values as values
from .errors import ConfigError
from .scoring.config import FuelType, ScoringConfig, VehicleClass, config_from_mapping
from .tomlfile import load_toml, show
from .vehicles import vehicle

#: scoring's vehicle class → the licence policy's class it needs at least (docs/configuration.md).
LICENCE_CLASS_FOR: Final[dict[str, str]] = {
    "car": "car",
    "light_truck": "truck_semi_medium",
    "heavy_truck": "truck_large",
}
LICENCE_CLASSES: Final = ("car", "truck_semi_medium", "truck_medium", "truck_large")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VIN = re.compile(r"^([A-HJ-NPR-Z0-9]{11,17}|obd)$")


@dataclass(frozen=True, slots=True)
class BusConfig:
    """One CAN bus: our name for it, python-can's interface and channel, its signal map,
    whether OBD-II answers seen on it are decoded passively, and any other keyword the
    python-can interface takes (``fd``, ``data_bitrate``, ``tty_baudrate``, ...)."""

    name: str
    interface: str
    channel: str
    bitrate: int | None
    signal_map: Path | None
    obd: bool
    options: tuple[tuple[str, str | int | float | bool], ...] = ()


@dataclass(frozen=True, slots=True)
class ObdConfig:
    """Active OBD-II polling: an ELM327 on ``serial`` (a port or pyserial URL) or ISO-TP on
    the CAN ``channel`` of python-can ``interface``; per-PID rates over the defaults (Hz, 0
    stops a PID); whether trouble codes are read at start-up."""

    serial: str | None
    baud: int | None  # None: detected (38400, 9600, 115200, 500000 in turn)
    can: str | None
    interface: str
    rates: tuple[tuple[int, float], ...]
    dtc: bool


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    """The operator's consent request (``edge_agent.identity.consent.ConsentRequest``): the
    categories of ``msp_protocol.consent`` offered to ``recipient`` at every login, each
    consent lasting ``days`` from that login."""

    recipient: str
    categories: tuple[str, ...]
    days: float


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything ``msp-agent run`` needs; built only by :func:`load_config`, so every value
    in it has been checked."""

    device: str
    key: Path
    vin: str  # "obd": read over OBD-II at start-up
    vehicle_class: VehicleClass
    licence_class: str
    fuel_type: FuelType
    buses: tuple[BusConfig, ...]
    obd: ObdConfig | None
    replay_log: Path | None
    replay_speed: float
    replay_exit_at_end: bool
    card_enabled: bool
    card_reader: str | None
    card_poll_s: float
    pin_socket: Path
    pin_timeout_s: float
    trust_anchors: tuple[Path, ...]
    consent: ConsentConfig | None
    max_session_s: float | None
    outbox_path: Path
    outbox_max_bytes: int
    outbox_max_rows: int
    broker: str  # the first of ``brokers``
    brokers: tuple[str, ...]
    uplink_failback_s: float
    broker_ca: Path | None
    broker_cert: Path | None
    mqtt311: bool
    uplink_keepalive_s: int
    uplink_batch_records: int
    uplink_batch_bytes: int
    uplink_linger_s: float
    uplink_session_expiry_s: int
    queue_size: int
    health_interval_s: float
    health_max_interval_s: float
    no_frames_s: float
    stop_flush_s: float
    scoring: ScoringConfig

    @property
    def broker_host_port(self) -> tuple[str, int, bool]:
        """Host, port and whether TLS is used, from :attr:`broker`."""
        url = urlsplit(self.broker)
        tls = url.scheme == "mqtts"
        return url.hostname or "", url.port or (8883 if tls else 1883), tls

    @property
    def broker_fallbacks(self) -> tuple[tuple[str, int], ...]:
        """Host and port of every broker after the first (same scheme as the first)."""
        tls = self.broker_host_port[2]
        return tuple((url.hostname or "", url.port or (8883 if tls else 1883))
                     for url in map(urlsplit, self.brokers[1:]))  # fmt: skip


#: The registry's limit on one message (``msp_protocol.jws.MAX_TOKEN_CHARS``, not imported:
#: it would load the crypto stack into every command that reads a configuration).
_MAX_MESSAGE: Final = MAX_RECORD_BYTES * 4 // 3 + 1024

#: (``[[bus]]``, ``[card.consent]``, ``card.anchors``, ``[scoring]``) are handled apart.
SCALARS: Final[dict[str, tuple[values.Parser, Any]]] = {
    "device": (values.pattern(_DEVICE, "a device id such as gw-0001"), ...),
    "key": (values.path, Path("/etc/msp/device.key")),
    "vin": (values.pattern(_VIN, "a VIN (11-17 of A-Z but I, O, Q, and 0-9) or obd"), ...),
    "vehicle_class": (values.choice(get_args(VehicleClass)), "car"),
    "licence_class": (values.choice(LICENCE_CLASSES), None),
    "fuel_type": (values.choice(get_args(FuelType)), "gasoline"),
    "replay.log": (values.opt_path, None),
    "replay.speed": (values.positive, 1.0),
    "replay.exit_at_end": (values.flag, False),
    "card.enabled": (values.flag, True),
    "card.reader": (values.opt_text, None),
    "card.poll_s": (values.positive, 0.25),
    "card.pin_socket": (values.path, Path("/run/msp-agent/pin.sock")),
    "card.pin_timeout_s": (values.positive, 60.0),
    "card.max_session_s": (values.opt_positive, None),
    "outbox.path": (values.path, Path("/var/lib/msp-agent/outbox.db")),
    "outbox.max_bytes": (values.count, 256 * 1024 * 1024),
    "outbox.max_rows": (values.count, 1_000_000),
    "uplink.broker": (values.brokers, ("mqtts://127.0.0.1:8883",)),
    "uplink.failback_s": (values.number, 300.0),
    "uplink.ca": (values.opt_path, None),
    "uplink.cert": (values.opt_path, None),
    "uplink.mqtt311": (values.flag, False),
    "uplink.keepalive_s": (values.count, 300),
    "uplink.batch_records": (values.count, 32),
    "uplink.batch_bytes": (values.count, 16 * 1024),
    "uplink.linger_s": (values.number, 30.0),
    "uplink.session_expiry_s": (values.number, 24 * 3600),
    "obd.serial": (values.opt_text, None),
    "obd.baud": (values.baud, 38400),
    "obd.can": (values.opt_text, None),
    "obd.interface": (values.text, "socketcan"),
    "obd.dtc": (values.flag, True),
    "agent.queue_size": (values.count, 10_000),
    "agent.health_interval_s": (values.positive, 300.0),
    "agent.health_max_interval_s": (values.positive, 3600.0),
    "agent.no_frames_s": (values.positive, 30.0),
    "agent.stop_flush_s": (values.positive, 5.0),
}


#: What a reload (SIGHUP) applies at once; the rest needs a restart.
RELOADABLE: Final = ("health_interval_s", "health_max_interval_s", "no_frames_s", "scoring")


def reloaded(old: AgentConfig, new: AgentConfig) -> tuple[AgentConfig, list[str]]:
    """``old`` with the :data:`RELOADABLE` fields of ``new``, and the names of the other
    fields that differ (they take effect at the next start)."""
    restart = [f for f in old.__dataclass_fields__
               if f not in RELOADABLE and getattr(old, f) != getattr(new, f)]  # fmt: skip
    applied = dataclasses.replace(old, **{f: getattr(new, f) for f in RELOADABLE})
    return applied, restart


def env_name(key: str) -> str:
    """The environment variable of a key: ``outbox.path`` → ``MSP_OUTBOX_PATH``."""
    return "MSP_" + key.replace(".", "_").upper()


def _lookup(document: Mapping[str, Any], key: str) -> Any:
    node: Any = document
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


_TOP = frozenset({"device", "key", "vin", "vehicle_class", "licence_class", "fuel_type", "bus",
                  "obd", "replay", "card", "outbox", "uplink", "agent", "scoring"})  # fmt: skip
_TABLE_KEYS = {
    "replay": {"log", "speed", "exit_at_end"},
    "card": {"enabled", "reader", "poll_s", "pin_socket", "pin_timeout_s", "max_session_s",
             "anchors", "consent"},
    "outbox": {"path", "max_bytes", "max_rows"},
    "uplink": {"broker", "ca", "cert", "mqtt311", "keepalive_s", "batch_records", "batch_bytes",
               "linger_s", "session_expiry_s", "failback_s"},
    "obd": {"serial", "baud", "can", "interface", "dtc", "rates"},
    "agent": {"queue_size", "health_interval_s", "health_max_interval_s", "no_frames_s",
              "stop_flush_s"},
}


def _key(name: str) -> str:
    """A key as the user wrote it, quoted only if it holds what a terminal should not show."""
    return name if name.isprintable() and len(name) <= 60 else show(name)


def _check_unknown(document: Mapping[str, Any]) -> None:
    for name, value in document.items():
        if name == "consent":
            raise ConfigError("consent: the consent request is the [card.consent] table")
        if name not in _TOP:
            raise ConfigError(f"{_key(name)}: unknown key (known: {', '.join(sorted(_TOP))})")
        allowed = _TABLE_KEYS.get(name)
        if allowed is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a table [{name}]")
        for sub in value:
            if sub not in allowed:
                raise ConfigError(f"{name}.{_key(sub)}: unknown key (known in [{name}]: "
                                  f"{', '.join(sorted(allowed))})")  # fmt: skip


def _relative(base: Path, path: Path | None) -> Path | None:
    return None if path is None or path.is_absolute() else base / path


def _is_file(key: str, path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as exc:  # a name too long, a directory we may not search
        raise ConfigError(f"{key}: cannot open {path}: {exc.strerror}") from None


def _buses(document: Mapping[str, Any], base: Path) -> tuple[BusConfig, ...]:
    raw = document.get("bus", [])
    if not isinstance(raw, list):
        raise ConfigError("bus: expected an array of tables [[bus]]")
    buses: list[BusConfig] = []
    for i, table in enumerate(raw):
        where = f"bus[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table")
        options = _bus_options(where, table)
        name = values.pattern(_NAME, "a lower-case name such as can0")(f"{where}.name",
                                                                 table.get("name", f"can{i}"))
        if any(b.name == name for b in buses):
            raise ConfigError(f"{where}.name: {name!r} names two buses")
        signal_map = values.opt_path(f"{where}.signal_map", table.get("signal_map"))
        if signal_map is not None and not signal_map.is_absolute():
            signal_map = base / signal_map
        if signal_map is not None and not _is_file(f"{where}.signal_map", signal_map):
            raise ConfigError(f"{where}.signal_map: no such file {signal_map}")
        if table.get("vehicle") is not None:
            if signal_map is not None:
                raise ConfigError(f"{where}: set signal_map or vehicle, not both")
            model = values.text(f"{where}.vehicle", table["vehicle"])
            try:
                signal_map = vehicle(model).map_path
            except ConfigError as exc:
                raise ConfigError(f"{where}.vehicle: {exc}") from None
        obd = values.flag(f"{where}.obd", table.get("obd", False))
        if signal_map is None and not obd:
            raise ConfigError(f"{where}: needs a signal_map (or vehicle), obd = true, or both")
        given = {key: table[key] for key in ("interface", "channel", "bitrate") if key in table}
        found = _python_can_config(given, options) if len(given) < 3 else given
        bitrate = found.get("bitrate")
        buses.append(BusConfig(
            name, values.text(f"{where}.interface", found.get("interface", "socketcan")),
            values.text(f"{where}.channel", found.get("channel", name)),
            None if bitrate is None else values.count(f"{where}.bitrate", bitrate), signal_map, obd,
            tuple(sorted(options.items())),
        ))  # fmt: skip
    return tuple(buses)


#: The keys of a ``[[bus]]`` this project reads; any other is a python-can interface keyword.
_BUS_KEYS: Final = frozenset({"name", "interface", "channel", "bitrate", "signal_map", "vehicle",
                              "obd"})  # fmt: skip


def _bus_options(where: str, table: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """The keywords of a ``[[bus]]`` passed through to ``can.Bus`` (scalars only)."""
    options: dict[str, str | int | float | bool] = {}
    for key, value in table.items():
        if key in _BUS_KEYS:
            continue
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key):
            raise ConfigError(f"{where}.{_key(key)}: not a python-can keyword (known here: "
                              f"{', '.join(sorted(_BUS_KEYS))}; any other is passed to "
                              "python-can's interface)")  # fmt: skip
        if isinstance(value, bool | str):
            options[key] = value
        elif isinstance(value, int | float):
            values.number(f"{where}.{key}", value)  # refuses inf, nan and huge integers
            options[key] = value
        else:
            raise ConfigError(f"{where}.{key}: expected a string, number or boolean for "
                              "python-can's interface")  # fmt: skip
    return options


def _python_can_config(given: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Fill a bus's missing interface, channel and bitrate from python-can's own configuration
    (``CAN_INTERFACE``, ``CAN_CHANNEL``, ``CAN_BITRATE``, ``~/.canrc``, ``/etc/can.conf``), as
    every python-can user expects; its other keywords join ``options`` unless set here."""
    import can  # noqa: PLC0415 - python-can loads only for configurations that need it

    try:
        found = dict(can.util.load_config(config=dict(given)))
    except (can.CanInterfaceNotImplementedError, ValueError, OSError):
        return given  # python-can has no configuration: our defaults
    for key, value in found.items():
        ours = key in ("interface", "channel", "bitrate", "context") or key in options
        if not ours and isinstance(value, bool | str | int | float):
            options[key] = value
    return {key: found[key] for key in ("interface", "channel", "bitrate") if found.get(key)
            is not None}  # fmt: skip


def _obd(document: Mapping[str, Any], v: dict[str, Any]) -> ObdConfig | None:
    serial, channel = v["obd.serial"], v["obd.can"]
    if serial is None and channel is None:
        if _lookup(document, "obd.rates") is not None:
            raise ConfigError("obd.rates: set obd.serial or obd.can to poll")
        return None
    if serial is not None and channel is not None:
        raise ConfigError("obd: set one of obd.serial (ELM327) and obd.can (ISO-TP), not both")
    raw = _lookup(document, "obd.rates") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError('obd.rates: expected a table of PID = Hz, e.g. { "0D" = 10 }')
    rates = []
    for pid_text, hz in raw.items():
        try:
            pid = int(pid_text, 16)
        except ValueError:
            pid = -1
        if not 0 <= pid <= 0xFF:
            raise ConfigError(f"obd.rates.{pid_text}: expected a PID in hex, e.g. 0D")
        rate = values.number(f"obd.rates.{pid_text}", hz)
        if rate < 0:
            raise ConfigError(f"obd.rates.{pid_text}: expected Hz >= 0, got {hz!r}")
        rates.append((pid, rate))
    return ObdConfig(serial, v["obd.baud"], channel, v["obd.interface"], tuple(rates),
                     v["obd.dtc"])  # fmt: skip


def parse_consent(document: Mapping[str, Any]) -> ConsentConfig | None:
    """The ``[card.consent]`` table of a configuration document, checked; None without one.
    ``card login --consent-request`` reads it through here too."""
    table = _lookup(document, "card.consent")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError("card.consent: expected a table [card.consent]")
    for sub in table:
        if sub not in ("recipient", "categories", "days"):
            raise ConfigError(f"card.consent.{sub}: unknown key (known: categories, days, "
                              "recipient)")  # fmt: skip
    recipient = values.text("card.consent.recipient", table.get("recipient"))
    categories = table.get("categories")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ConfigError("card.consent.categories: expected a list such as "
                          f"{list(CONSENT_CATEGORIES)}")  # fmt: skip
    try:
        parse_categories(categories)
        check_id(recipient, "recipient")
    except ProtocolError as exc:
        raise ConfigError(f"card.consent: {exc}") from None
    days = values.positive("card.consent.days", table.get("days", 90))
    if days > 3660:
        raise ConfigError(f"card.consent.days: expected at most 3660, got {days:g}")
    return ConsentConfig(recipient, tuple(categories), days)


def load_config(
    path: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Build the configuration from ``path`` (TOML, optional), ``env`` (``MSP_*``) and
    ``overrides`` (``KEY=VALUE`` of the command line), in that rising precedence.

    Relative paths in the file are taken relative to the file. Raises ConfigError naming the
    key, its source and what was expected.
    """
    env = env or {}
    overrides = dict(overrides or {})
    document = load_toml(path, "configuration") if path is not None else {}
    source = str(path) if path is not None else "configuration"
    base = path.parent if path is not None else Path.cwd()
    try:
        _check_unknown(document)
        for key in overrides:
            if key not in SCALARS:
                raise ConfigError(f"--set {key}: unknown key (see docs/configuration.md)")
        values: dict[str, Any] = {}
        for key, (parse, default) in SCALARS.items():
            where, raw = key, _lookup(document, key)
            if key in overrides:
                where, raw = f"--set {key}", overrides[key]
            elif env_name(key) in env:
                where, raw = env_name(key), env[env_name(key)]
            if raw is None:
                if default is ...:
                    raise ConfigError(f"{key}: required (set it in the file, {env_name(key)} "
                                      f"or --set {key}=...)")  # fmt: skip
                values[key] = default
                continue
            values[key] = parse(where, raw)
            if where == key and isinstance(values[key], Path):
                values[key] = _relative(base, values[key]) or values[key]
        config = _build(document, values, base)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def _build(document: Mapping[str, Any], v: dict[str, Any], base: Path) -> AgentConfig:
    buses = _buses(document, base)
    obd = _obd(document, v)
    if not buses and obd is None:
        raise ConfigError("bus: no [[bus]] and no [obd]: the agent needs a source (with "
                          "replay.log, the one bus whose signal map the log was recorded with)")
    if v["vin"] == "obd" and obd is None:
        raise ConfigError("vin: 'obd' reads the VIN over OBD-II, but no [obd] is configured")
    if v["replay.log"] is not None and not buses:
        raise ConfigError("replay.log: needs the [[bus]] whose signal map the log was "
                          "recorded with")  # fmt: skip
    if v["replay.log"] is not None and len(buses) > 1:
        raise ConfigError("replay.log: replays through exactly one [[bus]]; found several")
    anchors_raw = _lookup(document, "card.anchors") or []
    if not isinstance(anchors_raw, list) or not all(isinstance(a, str) for a in anchors_raw):
        raise ConfigError("card.anchors: expected a list of certificate files")
    anchors = tuple(_relative(base, anchor) or anchor for anchor in
                    (values.path(f"card.anchors[{i}]", a) for i, a in enumerate(anchors_raw)))
    if v["card.enabled"] and not anchors:
        raise ConfigError("card.anchors: card.enabled is true but no trust anchors are given "
                          "(JPKI CA certificates); or set card.enabled = false")  # fmt: skip
    if v["replay.log"] is not None and not _is_file("replay.log", v["replay.log"]):
        raise ConfigError(f"replay.log: no such file {v['replay.log']}")
    if urlsplit(v["uplink.broker"][0]).scheme == "mqtts" and (
        v["uplink.ca"] is None or v["uplink.cert"] is None
    ):
        raise ConfigError("uplink.broker: mqtts:// needs uplink.ca and uplink.cert")
    if v["uplink.keepalive_s"] > 65535:
        raise ConfigError("uplink.keepalive_s: at most 65535 (MQTT's limit)")
    if v["uplink.batch_bytes"] > _MAX_MESSAGE:
        raise ConfigError(f"uplink.batch_bytes: at most {_MAX_MESSAGE} (the registry's "
                          "limit on one message)")  # fmt: skip
    for key in ("uplink.linger_s", "uplink.session_expiry_s", "uplink.failback_s"):
        if v[key] < 0 or (key == "uplink.session_expiry_s" and v[key] != int(v[key])):
            raise ConfigError(f"{key}: expected a number of seconds, 0 or more")
    scoring_table = document.get("scoring", {})
    if not isinstance(scoring_table, Mapping):
        raise ConfigError("scoring: expected a table [scoring]")
    if "vehicle_class" in scoring_table or "fuel_type" in scoring_table:
        raise ConfigError("scoring: vehicle_class and fuel_type are top-level keys")
    scoring = config_from_mapping(
        {**scoring_table, "vehicle_class": v["vehicle_class"], "fuel_type": v["fuel_type"]},
        "scoring",
    )
    return AgentConfig(
        device=v["device"], key=v["key"], vin=v["vin"], vehicle_class=v["vehicle_class"],
        licence_class=v["licence_class"] or LICENCE_CLASS_FOR[v["vehicle_class"]],
        fuel_type=v["fuel_type"], buses=buses, obd=obd,
        replay_log=v["replay.log"], replay_speed=v["replay.speed"],
        replay_exit_at_end=v["replay.exit_at_end"],
        card_enabled=v["card.enabled"], card_reader=v["card.reader"],
        card_poll_s=v["card.poll_s"], pin_socket=v["card.pin_socket"],
        pin_timeout_s=v["card.pin_timeout_s"], trust_anchors=anchors,
        consent=parse_consent(document), max_session_s=v["card.max_session_s"],
        outbox_path=v["outbox.path"], outbox_max_bytes=v["outbox.max_bytes"],
        outbox_max_rows=v["outbox.max_rows"], broker=v["uplink.broker"][0],
        brokers=v["uplink.broker"], uplink_failback_s=v["uplink.failback_s"],
        broker_ca=v["uplink.ca"], broker_cert=v["uplink.cert"], mqtt311=v["uplink.mqtt311"],
        uplink_keepalive_s=v["uplink.keepalive_s"],
        uplink_batch_records=v["uplink.batch_records"],
        uplink_batch_bytes=v["uplink.batch_bytes"], uplink_linger_s=v["uplink.linger_s"],
        uplink_session_expiry_s=int(v["uplink.session_expiry_s"]),
        queue_size=v["agent.queue_size"], health_interval_s=v["agent.health_interval_s"],
        health_max_interval_s=v["agent.health_max_interval_s"],
        no_frames_s=v["agent.no_frames_s"], stop_flush_s=v["agent.stop_flush_s"],
        scoring=scoring,
    )  # fmt: skip
