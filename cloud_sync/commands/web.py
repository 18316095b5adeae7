"""``msp-registry web``: the read-only HTTP API and dashboard (docs/web.md); needs the
``web`` extra (``pip install 'msp-gateway[web]'``), imported only when run."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..config import add_common, load_config
from ..errors import RegistryError
from ..secret_files import secrets_dir
from ..store.open import parse_store_url
from ..worker import BrokerConfig
from . import store_of

log = logging.getLogger(__name__)


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``web``."""
    p = subparsers.add_parser("web", help="serve the read-only HTTP API and dashboard")
    p.add_argument("--bind", default="127.0.0.1:8080",
                   help="HOST:PORT to listen on [%(default)s]; put TLS in front of it")
    p.add_argument("--broker", dest="web_broker",
                   help="mqtt://HOST:PORT of the registry listener, for live updates (none:"
                        " pages refresh only when reloaded)")  # fmt: skip
    p.add_argument("--broker-user", default="web", help="broker user [%(default)s]")
    p.add_argument("--broker-password-file", type=Path,
                   help="its password (mosquitto-config's web.secret)")
    p.add_argument("--mqtt311", action="store_true", help="MQTT 3.1.1 instead of 5")
    p.add_argument("--tls-ca", dest="web_tls_ca", type=Path, help="broker CA (mqtts)")
    p.add_argument("--session-hours", type=float, default=8.0,
                   help="how long a login lasts [%(default)s]")
    p.add_argument("--secure-cookies", action="store_true",
                   help="mark the session cookie Secure (behind an HTTPS proxy)")
    add_common(p)
    p.set_defaults(func=_do_web)


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``; raises ``RegistryError`` naming the bad value."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RegistryError(f"--bind {text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _broker(args: argparse.Namespace) -> BrokerConfig | None:
    if not args.web_broker:
        return None
    password = None
    if args.broker_password_file is not None:
        try:
            password = args.broker_password_file.read_text().strip()
        except OSError as exc:
            raise RegistryError(f"{args.broker_password_file}: cannot read: {exc}") from None
    return BrokerConfig(url=args.web_broker, username=args.broker_user, password=password,
                        client_id=f"msp-registry-web-{os.getpid()}", mqtt5=not args.mqtt311,
                        ca_file=args.web_tls_ca)  # fmt: skip


def _do_web(args: argparse.Namespace) -> int:
    host, port = parse_bind(args.bind)
    try:
        import uvicorn  # noqa: PLC0415 - the optional extra, only for this command

        from ..web.app import create_app  # noqa: PLC0415
        from ..web.state import WebState  # noqa: PLC0415
    except ImportError as exc:
        raise RegistryError(f"msp-registry web needs the web extra: pip install"
                            f" 'msp-gateway[web]' ({exc})") from None  # fmt: skip
    config = load_config(args)
    broker = _broker(args)
    store = store_of(config, must_exist=True)
    try:
        where = config.secrets_dir
        if where is None:
            path = parse_store_url(config.db).path
            assert path is not None  # PostgreSQL needs --secrets-dir: open_store said so
            where = secrets_dir(path)
        state = WebState.open(store, where, session_hours=args.session_hours)
        state.secure_cookies = args.secure_cookies
        app = create_app(state, broker)
        log.info("dashboard on http://%s:%d/", host, port)
        # open event streams never end by themselves: give them 5 s at shutdown
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=5)
    finally:
        store.close()
    return 0
