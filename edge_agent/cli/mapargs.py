"""The signal-map options ``replay`` and ``map check`` share: ``--map [BUS=]MAP``,
``--vehicle [BUS=]NAME`` and ``--log-tz``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from ..vehicles import vehicle

if TYPE_CHECKING:
    from ..replay import MapSpec


def add_map_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--map``, ``--vehicle`` (at least one of them) and ``--log-tz``."""
    parser.add_argument(
        "--map", action="append", default=[], metavar="[BUS=]MAP",
        help="signal map (TOML); BUS=MAP applies it to one channel of the log only (candump "
        "interface name, or python-can's channel number: Vector's CAN 1 is 0); repeat for "
        "each channel. A bare MAP takes every channel (unless the map names its own bus).",
    )  # fmt: skip
    parser.add_argument(
        "--vehicle", action="append", default=[], metavar="[BUS=]NAME",
        help="the catalogue's map for NAME (msp-agent vehicles lists them), as --map",
    )  # fmt: skip
    parser.add_argument(
        "--log-tz", metavar="ZONE",
        help="time zone of an ASC log's header date, e.g. Asia/Tokyo (default: the host's)",
    )  # fmt: skip


def maps_of(args: argparse.Namespace) -> MapSpec:
    """The maps the options name: one path for every channel, or ``{channel: path}``.
    Raises ConfigError for none, a channel named twice, or a bare map beside named ones."""
    entries = [_split(text, Path) for text in args.map]
    entries += [_split(text, lambda name: vehicle(name).map_path) for text in args.vehicle]
    if not entries:
        raise ConfigError("give a signal map: --map MAP or --vehicle NAME")
    bare = [path for bus, path in entries if bus is None]
    if bare:
        if len(entries) > 1:
            raise ConfigError("one bare --map/--vehicle takes every channel; for several, "
                              "name each channel: --map can0=a.toml --map can1=b.toml")  # fmt: skip
        return bare[0]
    by_bus: dict[str, Path] = {}
    for bus, path in entries:
        assert bus is not None
        if bus in by_bus:
            raise ConfigError(f"channel {bus!r} is given two maps")
        by_bus[bus] = path
    return by_bus


def log_tz(args: argparse.Namespace) -> tzinfo | None:
    """The ``--log-tz`` zone, or None for the host's; raises ConfigError for an unknown one."""
    if args.log_tz is None:
        return None
    try:
        return ZoneInfo(args.log_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--log-tz: unknown time zone {args.log_tz!r} (e.g. Asia/Tokyo, UTC)"
                          ) from None  # fmt: skip


def _split(text: str, resolve: Callable[[str], Path]) -> tuple[str | None, Path]:
    bus, sep, rest = text.partition("=")
    if not sep or not bus or "/" in bus or Path(text).exists():  # a path that holds '='
        return None, resolve(text)
    return bus, resolve(rest)
