"""The HTML trip report of a real replayed drive, made by the real command line: the events
``msp-agent replay --json`` detects, the scoring's thresholds, the score, nothing fetched."""

from __future__ import annotations

import re
from collections import Counter

from edge_agent.scoring import ScoringConfig
from tests.edge_agent.report.conftest import Made
from tests.edge_agent.report.pagekit import read_page


def test_the_page_lists_the_events_replay_detects(made: Made) -> None:
    page = read_page(made.html.read_text(encoding="utf-8"))
    expected = [(e["type"], e["severity"]) for e in made.replay["events"]]  # type: ignore[attr-defined]
    assert len(expected) >= 3  # the drive is chosen for its harsh events
    assert page.events == expected  # same count, kinds, severities and order
    assert Counter(kind for kind, _ in page.events) == Counter(
        {k: n for k, n in made.replay["trips"][0]["events"].items() if n}  # type: ignore[index]
    )
    # and each is marked on the time plot (one marker per event, by severity)
    text = made.html.read_text(encoding="utf-8")
    for kind, severity in expected:
        assert f"{kind.replace('_', ' ')} ({severity}): peak" in text


def test_the_page_draws_the_scorings_thresholds(made: Made) -> None:
    page = read_page(made.html.read_text(encoding="utf-8"))
    car = ScoringConfig.for_class("car")  # the demo map's vehicle_class
    assert page.thresholds == {
        "harsh_braking": car.harsh_braking_mps2,
        "harsh_acceleration": car.harsh_acceleration_mps2,
        "harsh_cornering": car.harsh_cornering_mps2,
    }
    text = made.html.read_text(encoding="utf-8")
    # the lines on the plot: plotly shapes at +acceleration, -braking and ±cornering
    for y in (car.harsh_acceleration_mps2, -car.harsh_braking_mps2, car.harsh_cornering_mps2,
              -car.harsh_cornering_mps2):  # fmt: skip
        assert re.search(rf'"y0":{y:g}(\.0)?,"y1":{y:g}(\.0)?', text), y


def test_the_page_shows_the_score_and_its_breakdown(made: Made) -> None:
    page = read_page(made.html.read_text(encoding="utf-8"))
    [trip] = made.replay["trips"]  # type: ignore[misc]
    assert page.scores == [str(float(trip["score"]))]
    assert page.penalty_points == [trip["penalty_points"]]
    text = made.html.read_text(encoding="utf-8")
    assert f"{trip['score']:.1f}</span> / 100" in text
    assert f"score = 100 - min(100, {trip['penalty_points']:g} points" in text


def test_the_page_fetches_nothing(made: Made) -> None:
    text = made.html.read_text(encoding="utf-8")
    page = read_page(text)
    assert page.sources == []  # no script, link, image or frame source at all: all inline
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//",
                         text, re.IGNORECASE)  # fmt: skip
    assert "Plotly.newPlot" in text
    assert re.search(r"plotly\.js v\d", text)  # the library itself, inline


def test_the_page_draws_the_route_of_a_log_with_positions(made: Made) -> None:
    text = made.html.read_text(encoding="utf-8")
    page = read_page(text)
    assert "no-route" not in page.ids
    assert '"name":"route"' in text
    assert "route drawn" in made.stdout
