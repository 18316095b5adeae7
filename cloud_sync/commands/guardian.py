"""``msp-registry guardian watch NAME | digest``: a guardian's receiver (alerts and digests,
printed for a person to read) and the daily digest (run once a day, e.g. by a timer)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from msp_protocol import roles
from msp_protocol.records import parse_ts

from ..config import add_common, load_config
from ..errors import RegistryError
from ..recipients.guardian import digests
from ..recipients.watch import Checker
from ..store import Batch
from . import store_of
from .recipient import add_watch_options, run_watch


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``guardian watch`` and ``guardian digest``."""
    parser = subparsers.add_parser("guardian", help="guardians: the receiver, the daily digest")
    sub = parser.add_subparsers(dest="guardian_command", required=True, metavar="ACTION")
    p = sub.add_parser("watch", help="receive alerts and digests, check them, print them")
    add_watch_options(p)
    p.set_defaults(func=_do_watch)
    p = sub.add_parser("digest", help="queue yesterday's digests (Japan days) for guardians")
    p.add_argument("--now", help="the registry's clock for this run (ISO 8601; for tests)")
    add_common(p)
    p.set_defaults(func=_do_digest)


def now_of(text: str | None) -> datetime:
    """``--now`` as an aware instant (default the clock); ``RegistryError`` for a bad one."""
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise RegistryError(f"--now {text!r}: not an ISO 8601 UTC instant ({exc})") from None


def _do_watch(args: argparse.Namespace) -> int:
    return run_watch(args, roles.GUARDIAN, Checker(args.name))


def _do_digest(args: argparse.Namespace) -> int:
    store = store_of(load_config(args), must_exist=True)
    try:
        pubs = digests(store, now_of(args.now))
        store.commit(Batch(publications=pubs))
    finally:
        store.close()
    print(f"queued {len(pubs)} digest{'' if len(pubs) == 1 else 's'} (sent by the running"
          " registry)")
    return 0
