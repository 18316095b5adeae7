"""Scoring against the simulator's ground truth: precision/recall per event type, distance error.

Simulates every scenario for several seeds, replays each log through the live decode path
into the scorer, matches events to the truth (same type, start within 1 s) and prints a
table. Also prints the cost of scoring as a ratio to decoding alone, both measured here.

    .venv/bin/python bench/scoring_truth.py [--seeds 10] [--duration 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edge_agent.replay import Replay
from edge_agent.scoring import Scorer, ScoringConfig
from edge_agent.scoring.evaluate import Tally, match_events, truth_events
from edge_agent.simulate import SCENARIOS, simulate

MAP = Path(__file__).resolve().parents[1] / "dbc" / "msp_demo.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=600.0)
    args = parser.parse_args()
    tally = Tally()
    worst_distance = 0.0
    decode_s = score_s = 0.0
    drives = 0
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            for seed in range(1, args.seeds + 1):
                crash = seed % 3 == 0
                log = Path(tmp) / f"{scenario}-{seed}.log"
                result = simulate(
                    log,
                    scenario=scenario,
                    seed=seed,
                    duration=args.duration,
                    crash=crash,
                    background=False,
                )
                t0 = time.perf_counter()
                samples = list(Replay(log, MAP).samples())
                t1 = time.perf_counter()
                scorer = Scorer(ScoringConfig.for_class(str(result.truth["vehicle_class"])))
                for sample in samples:
                    scorer.feed(sample)
                trips = scorer.finish()
                t2 = time.perf_counter()
                decode_s, score_s = decode_s + t1 - t0, score_s + t2 - t1
                drives += 1
                events = [event for trip in trips for event in trip.events]
                matching = match_events(events, truth_events(result.truth))
                tally.add(matching)
                true_km = float(str(result.truth["distance_km"]))
                km = sum(trip.distance_km for trip in trips)
                error = abs(km - true_km) / true_km if true_km else 0.0
                worst_distance = max(worst_distance, error)
                for label in matching.missed:
                    print(f"  missed   {scenario} seed {seed}: {label.type} at {label.start:.2f}")
                for event in matching.spurious:
                    print(f"  spurious {scenario} seed {seed}: {event.type} at {event.start:.2f}")
    print(
        f"{drives} drives: {len(SCENARIOS)} scenarios x {args.seeds} seeds, {args.duration:.0f} s"
    )
    header = ("labelled", 9), ("found", 7), ("false", 7), ("precision", 11), ("recall", 8)
    print(f"{'event type':<22}" + "".join(f"{name:>{width}}" for name, width in header))
    for kind in tally.types():
        p, r = tally.precision(kind), tally.recall(kind)
        print(
            f"{kind:<22}{tally.found[kind] + tally.missed[kind]:>9}{tally.found[kind]:>7}"
            f"{tally.spurious[kind]:>7}{'-' if p is None else f'{p:.3f}':>11}"
            f"{'-' if r is None else f'{r:.3f}':>8}"
        )
    print(f"worst distance error vs truth: {worst_distance * 100:.3f} %")
    print(f"scoring cost / decoding cost (same samples): {score_s / decode_s:.2f}")


if __name__ == "__main__":
    main()
