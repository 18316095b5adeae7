"""``msp-registry insurer watch NAME | summary --month YYYY-MM``: an insurer's receiver and the
monthly summaries (run once a month, after the month ended in Japan time)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from msp_protocol import roles

from ..config import add_common, load_config
from ..errors import RegistryError
from ..recipients.insurer import summaries
from ..recipients.summaries import japan_month, month_bounds
from ..recipients.watch import Checker
from ..store import Batch
from . import store_of
from .guardian import now_of
from .recipient import add_watch_options, run_watch


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``insurer watch`` and ``insurer summary``."""
    parser = subparsers.add_parser("insurer", help="insurers: the receiver, monthly summaries")
    sub = parser.add_subparsers(dest="insurer_command", required=True, metavar="ACTION")
    p = sub.add_parser("watch", help="receive scores and summaries, check them, print them")
    add_watch_options(p)
    p.set_defaults(func=_do_watch)
    p = sub.add_parser("summary", help="queue a month's summaries for insurers")
    p.add_argument("--month", help="YYYY-MM (Japan time; default: last month)")
    p.add_argument("--now", help="the registry's clock for this run (ISO 8601; for tests)")
    add_common(p)
    p.set_defaults(func=_do_summary)


def _do_watch(args: argparse.Namespace) -> int:
    return run_watch(args, roles.INSURER, Checker(args.name))


def _do_summary(args: argparse.Namespace) -> int:
    now = now_of(args.now)
    month = args.month or japan_month(month_bounds(japan_month(now))[0] - timedelta(days=1))
    try:
        month_bounds(month)
    except ValueError:
        raise RegistryError(f"--month {month!r}: expected YYYY-MM") from None
    if month_bounds(month)[1] > now:
        raise RegistryError(f"--month {month}: it has not ended yet (Japan time)")
    store = store_of(load_config(args), must_exist=True)
    try:
        pubs = summaries(store, month)
        store.commit(Batch(publications=pubs))
    finally:
        store.close()
    word = "summary" if len(pubs) == 1 else "summaries"
    print(f"queued {len(pubs)} {word} of {month} (sent by the running registry)")
    return 0
