"""``msp-registry operator add NAME``: a registry operator's dashboard credential."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_common, load_config
from ..errors import RegistryError
from ..secret_files import secrets_dir
from ..store.open import parse_store_url
from ..web.operators import add_operator


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``operator`` and its subcommand."""
    parser = subparsers.add_parser("operator", help="registry operators' dashboard logins")
    sub = parser.add_subparsers(dest="operator_command", required=True,
                                metavar="OPERATOR_COMMAND")  # fmt: skip
    p = sub.add_parser("add", help="issue an operator a password for msp-registry web")
    p.add_argument("name", help="operator name (logs in as operator.NAME)")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for operator.NAME.secret (0600)")
    add_common(p)
    p.set_defaults(func=_do_add)


def _do_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    where = config.secrets_dir
    if where is None:
        path = parse_store_url(config.db).path
        if path is None:
            raise RegistryError("a PostgreSQL registry needs --secrets-dir")
        where = secrets_dir(path)
    creds = add_operator(where, args.name, args.out)
    print(f"operator {args.name}: user {creds.user}, password in {creds.password_file}")
    return 0
