"""``msp-agent run``: the in-vehicle agent as a service, from one configuration file."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
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
                   help="validate the configuration, print it, and exit")  # fmt: skip
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


def _do_run(args: argparse.Namespace) -> int:
    overrides = overrides_of(args)
    config = load_config(args.config, os.environ, overrides)
    if args.check:
        for name in config.__dataclass_fields__:
            print(f"{name} = {getattr(config, name)!r}")
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
