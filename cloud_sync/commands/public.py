"""``msp-registry public release | export | status``: the public statistics tier (docs/public.md).

``release`` publishes every (cell, hour) that is due (run it from a timer; ``--now`` for a
past instant in tests and replays); ``export`` writes what was published as GeoJSON or CSV;
``status`` prints the tier's counters.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..config import add_common
from ..errors import RegistryError
from ..public.config import MIN_K, PublicConfig
from . import emit_one, open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``public`` and its actions."""
    p = subparsers.add_parser("public", help="public statistics: release, export, status")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    rel = actions.add_parser("release", help="publish every (cell, hour) due (run from a timer)")
    defaults = PublicConfig()
    rel.add_argument("--now", help="ISO 8601 instant to release as of [now]")
    rel.add_argument("--k", type=int, default=defaults.k,
                     help=f"fewest distinct contributors of a published cell (at least {MIN_K})"
                          f" [{defaults.k}]")  # fmt: skip
    rel.add_argument("--epsilon", type=float, default=defaults.epsilon,
                     help=f"privacy budget of one (cell, hour), split over its five values "
                          f"[{defaults.epsilon}]")  # fmt: skip
    rel.add_argument("--grace-h", type=float, default=defaults.grace_s / 3600,
                     help="hours after an hour ends that its contributions are still taken "
                          f"[{defaults.grace_s / 3600:g}]")  # fmt: skip
    add_common(rel)
    rel.set_defaults(func=_do_release)
    exp = actions.add_parser("export", help="what was published, as GeoJSON or CSV")
    exp.add_argument("--format", choices=("geojson", "csv"), required=True)
    exp.add_argument("--since", help="only hours from this one on (2026-11-26T08:00:00Z)")
    exp.add_argument("--out", type=Path, help="write to FILE instead of standard output")
    add_common(exp)
    exp.set_defaults(func=_do_export)
    st = actions.add_parser("status", help="counters: released, suppressed, late, pending")
    add_common(st)
    st.set_defaults(func=_do_status)


def _instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RegistryError(f"--now: {text!r} is not an ISO 8601 instant") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _do_release(args: argparse.Namespace) -> int:
    from ..public.release import release  # noqa: PLC0415 - OpenDP only for this action

    config = PublicConfig(k=args.k, epsilon=args.epsilon, grace_s=args.grace_h * 3600)
    now = _instant(args.now)
    store = open_store(args)
    try:
        counts = release(store, config, now)
    finally:
        store.close()
    emit_one({"released": counts.released, "suppressed": counts.suppressed,
              "late": counts.late}, ["released", "suppressed", "late"], args.json)  # fmt: skip
    return 0


def _do_export(args: argparse.Namespace) -> int:
    from ..public.export import to_csv, to_geojson  # noqa: PLC0415 - h3 only for this action

    store = open_store(args)
    try:
        rows = store.public_stats(args.since)
    finally:
        store.close()
    text = to_geojson(rows) if args.format == "geojson" else to_csv(rows)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{args.out}: cannot write: {exc}") from None
    return 0


def _do_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        row: dict[str, object] = {name: 0 for name in ("released", "suppressed", "late",
                                                         "contributions")}  # fmt: skip
        row.update(store.public_counters())
        row["pending"] = store.counts()["public_contributions"]
        row["closed_before"] = store.public_closed_before()
    finally:
        store.close()
    if args.json:
        json.dump(row, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    emit_one(row, list(row), False)
    return 0
