"""``msp-agent run``: the in-vehicle agent as a service, from one configuration file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path, PurePath
from types import FrameType
from typing import Any

from ..config import SCALARS, load_config
from ..errors import ConfigError
from ..service import Agent

log = logging.getLogger(__name__)

#: Named flags: shorthands for ``--set KEY=VALUE``.
_FLAGS = {"device": "device", "vin": "vin", "key": "key", "outbox": "outbox.path",
          "broker": "uplink.broker", "replay": "replay.log"}  # fmt: skip


def add_subparser(subparsers: Any) -> None:
    """Register ``run``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the agent as a service (buses, card, scoring, outbox, uplink)",
        description="Run the agent until SIGTERM: frames → decode → scoring ← driver sessions "
        "→ signed records → outbox → MQTT uplink. Settings: command line > environment "
        "(MSP_KEY_NAME) > --config file > defaults; see docs/configuration.md. Under "
        "systemd (Type=notify) it reports READY, WATCHDOG and STOPPING.",
    )
    p.add_argument("--config", type=Path, help="TOML configuration (e.g. /etc/msp/agent.toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set agent.health_interval_s=60")  # fmt: skip
    for flag, key in _FLAGS.items():
        p.add_argument(f"--{flag}", dest=f"flag_{flag}", metavar=flag.upper(),
                       help=f"same as --set {key}=...")  # fmt: skip
    p.add_argument("--check", action="store_true",
                   help="validate the configuration, print it as the agent will use it "
                        "(one FIELD = VALUE a line), and exit: 0 if valid, 2 with the first "
                        "error")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="with --check: print the configuration as one JSON object")
    p.set_defaults(func=_do_run)


def overrides_of(args: argparse.Namespace) -> dict[str, str]:
    """The ``KEY=VALUE`` overrides of the command line (named flags win over ``--set``)."""
    out: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in SCALARS:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a known key "
                              "(see docs/configuration.md)")  # fmt: skip
        out[key] = value
    for flag, key in _FLAGS.items():
        value = getattr(args, f"flag_{flag}")
        if value is not None:
            out[key] = value
    return out


def plain(value: Any) -> Any:
    """``value`` (the configuration or a part of it) as JSON types: dataclasses as objects,
    paths as strings, tuples as arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def check_lines(document: Any, prefix: str = "") -> Iterator[str]:
    """The human form of ``--check``: ``field = value`` a line, nested fields dotted
    (``scoring.max_speed_kmh``), buses indexed (``buses[0].signal_map``), strings and paths
    quoted as in TOML, unset values as ``none``."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from check_lines(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(document, list) and document and all(isinstance(v, dict) for v in document):
        for i, value in enumerate(document):
            yield from check_lines(value, f"{prefix}[{i}]")
    else:
        text = "none" if document is None else json.dumps(document, ensure_ascii=False)
        yield f"{prefix} = {text}"


def _do_run(args: argparse.Namespace) -> int:
    overrides = overrides_of(args)
    config = load_config(args.config, os.environ, overrides)
    if args.json and not args.check:
        raise ConfigError("--json goes with --check (the service logs to the journal)")
    if args.check:
        document = plain(config)
        if args.json:
            print(json.dumps(document, ensure_ascii=False, indent=2))
        else:
            print("\n".join(check_lines(document)))
        return 0
    agent = Agent(config, config_path=args.config, overrides=overrides)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        agent.stop()

    def _reload(signum: int, _frame: FrameType | None) -> None:
        agent.reload()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    return agent.run()
