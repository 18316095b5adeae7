"""``msp-registry persons | vehicles | sessions | score | stats``: read the registry."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime

from ..config import add_common
from ..errors import RegistryError
from ..fleets import fleet_score
from ..republish import score_of
from . import emit, emit_one, open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the query commands."""
    for name, func, text in (
        ("persons", _do_persons, "persons (pseudonyms) with their portable score"),
        ("vehicles", _do_vehicles, "vehicles, their fleet and how many persons drove them"),
        ("sessions", _do_sessions, "driver sessions: the N:N person ↔ vehicle bindings"),
        ("stats", _do_stats, "row counts and rejections by reason (--json: one object)"),
    ):
        p = subparsers.add_parser(name, help=text)
        if name == "sessions":
            p.add_argument("--person", help="only this person's sessions")
        add_common(p)
        p.set_defaults(func=func)
    p = subparsers.add_parser(
        "score", help="a person's portable score across vehicles (--json: one object)"
    )
    p.add_argument("person", help="person id (p-...), or with --fleet the fleet's pseudonym")
    p.add_argument("--fleet", help="answer as FLEET sees it: PERSON is its pseudonym (fp-...), "
                                   "and the person must have consented score to FLEET")
    p.add_argument("--at", help="ISO 8601 instant to decay to [now]")
    add_common(p)
    p.set_defaults(func=_do_score)


def _do_persons(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        rows = []
        for person in store.persons():
            trips = store.trips(person.id)
            rows.append({
                "person": person.id, "first_seen": person.first_seen,
                "vehicles": len({t.vin for t in trips}), "trips": len(trips),
                "km": round(sum(t.distance_km for t in trips), 1),
                "score": _round(score_of(store, person.id))})  # fmt: skip
    finally:
        store.close()
    emit(rows, ["person", "vehicles", "trips", "km", "score", "first_seen"], args.json)
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _do_vehicles(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        rows = [dataclasses.asdict(v) for v in store.vehicles()]
    finally:
        store.close()
    emit(rows, ["vin", "fleet", "vehicle_class", "devices", "persons"], args.json)
    return 0


def _do_sessions(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        rows = [dataclasses.asdict(s) for s in store.sessions(args.person)]
    finally:
        store.close()
    columns = ["id", "person_id", "vin", "device", "started_at", "ended_at", "end_reason"]
    emit(rows, columns, args.json)
    return 0


def _do_score(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if args.fleet is not None:
            seen = fleet_score(store, args.fleet, args.person, at or datetime.now(UTC))
            emit_one({"fleet": seen.fleet, "person": seen.person, "score": _round(seen.score),
                      "consent_until": seen.until}, ["fleet", "person", "score", "consent_until"],
                     args.json)  # fmt: skip
            return 0
        if args.person not in {p.id for p in store.persons()}:
            raise RegistryError(f"no person {args.person!r}")
        trips = store.trips(args.person)
        row = {"person": args.person, "score": _round(score_of(store, args.person, at)),
               "trips": len(trips), "vehicles": len({t.vin for t in trips}),
               "km": round(sum(t.distance_km for t in trips), 1)}  # fmt: skip
    finally:
        store.close()
    emit_one(row, ["person", "score", "trips", "vehicles", "km"], args.json)
    return 0


def _do_stats(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        counts, rejections = store.counts(), store.rejections()
        withheld = [{"fleet": w.fleet, "kind": w.kind, "reason": w.reason, "count": n}
                    for w, n in sorted(store.withheld().items(), key=lambda i: str(i[0]))]
    finally:
        store.close()
    if args.json:
        emit_one({"counts": counts, "rejections": rejections, "withheld": withheld}, [], True)
        return 0
    emit([{"table": k, "rows": v} for k, v in counts.items()], ["table", "rows"], False)
    print()
    rows = [{"reason": k, "count": v} for k, v in sorted(rejections.items())]
    emit(rows, ["reason", "count"], False)
    print()
    emit(withheld, ["fleet", "kind", "reason", "count"], False)
    return 0
