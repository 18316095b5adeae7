"""The trip report as one self-contained HTML file: plotly, its JavaScript inline, no fetches.

Needs the report extra (plotly, numpy). The page holds a summary with the score and its
penalty breakdown, the traces over time (speed, accelerations with the harsh thresholds,
pedals, steering) with every event marked, the route when the log has positions (drawn on
plain axes: map tiles would have to be fetched), and the list of events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import signals as sig
from .decimate import Floats, minmax
from .files import write_atomically
from .labels import (
    SEVERITY_COLOURS,
    event_name,
    no_route_reason,
    peak_text,
    score_formula,
    trip_line,
)
from .model import EventMark, Trace, TripReport

#: Rows of the time plot: (title, y axis label).
_ROWS = (
    ("Speed", "km/h"),
    ("Longitudinal acceleration", "m/s²"),
    ("Lateral acceleration", "m/s²"),
    ("Pedals", "%"),
    ("Steering wheel", "deg"),
)
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.muted { color: #666; }
.score { font-size: 2.4em; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%;
       margin-right: 0.3em; vertical-align: middle; }
.note { background: #fff7e0; border-left: 4px solid #e8b400; padding: 0.4em 0.8em; }
"""


def _ms(times: Floats | Iterable[float]) -> Floats:
    """Epoch seconds as epoch milliseconds, what a plotly date axis reads as UTC."""
    return np.fromiter(times, dtype=np.float64) * 1000.0


def _line(fig: go.Figure, trace: Trace | None, row: int, name: str, *, colour: str,
          width: float = 1.2, dash: str | None = None, opacity: float = 1.0,
          offset: float = 0.0) -> None:  # fmt: skip
    if trace is None or not len(trace):
        return
    t, v = minmax(trace.t, trace.v)
    fig.add_trace(
        go.Scatter(x=_ms(t), y=v + offset, name=name, mode="lines", opacity=opacity,
                     line={"color": colour, "width": width, "dash": dash},
                     hovertemplate=f"{escape(name)}: %{{y:.2f}}<extra></extra>"),
        row=row, col=1,
    )  # fmt: skip


def _thresholds(fig: go.Figure, report: TripReport) -> None:
    th = report.thresholds
    lines = (
        (2, th.harsh_acceleration_mps2, f"harsh acceleration {th.harsh_acceleration_mps2:g}"),
        (2, -th.harsh_braking_mps2, f"harsh braking -{th.harsh_braking_mps2:g}"),
        (3, th.harsh_cornering_mps2, f"harsh cornering ±{th.harsh_cornering_mps2:g}"),
        (3, -th.harsh_cornering_mps2, ""),
    )
    for row, y, text in lines:
        fig.add_hline(y=y, row=row, col=1, line={"color": "#c0392b", "dash": "dash", "width": 1},
                      annotation_text=text, annotation_position="top left",
                      annotation_font={"size": 10, "color": "#c0392b"})  # fmt: skip
    if sig.SPEED_LIMIT not in report.traces:
        fig.add_hline(y=th.max_speed_kmh, row=1, col=1,
                      line={"color": "#c0392b", "dash": "dash", "width": 1},
                      annotation_text=f"maximum speed {th.max_speed_kmh:g} km/h (no posted "
                      "limit on the bus)", annotation_position="top left",
                      annotation_font={"size": 10, "color": "#c0392b"})  # fmt: skip


def _events(fig: go.Figure, events: tuple[EventMark, ...]) -> None:
    for event in events:
        fig.add_vrect(x0=event.start * 1000.0, x1=max(event.end, event.start + 0.5) * 1000.0,
                      fillcolor=SEVERITY_COLOURS[event.severity], opacity=0.25, line_width=0,
                      row="all", col=1)  # fmt: skip
    for severity, colour in SEVERITY_COLOURS.items():
        mine = [e for e in events if e.severity == severity]
        if not mine:
            continue
        fig.add_trace(
            go.Scatter(
                x=_ms(e.start for e in mine), y=[e.speed_kmh for e in mine], mode="markers",
                name=f"{severity} events", marker={"color": colour, "size": 11,
                                                   "symbol": "diamond", "line": {"width": 1}},
                text=[f"{event_name(e.type)} ({e.severity}): peak {peak_text(e.type, e.peak)}, "
                      f"{e.points:g} points" for e in mine],
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1, col=1,
        )  # fmt: skip


def time_figure(report: TripReport) -> go.Figure:
    """Speed, accelerations (with the thresholds), pedals and steering over time, with
    every event shaded across all rows and marked on the speed row."""
    fig = make_subplots(rows=len(_ROWS), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        subplot_titles=[title for title, _ in _ROWS])  # fmt: skip
    tr = report.traces
    th = report.thresholds
    _line(fig, tr.get(sig.SPEED), 1, "speed", colour="#1f77b4", width=1.6)
    limit = tr.get(sig.SPEED_LIMIT)
    _line(fig, limit, 1, "posted limit", colour="#555", dash="dot")
    _line(fig, limit, 1, f"limit + {th.speeding_minor_over_kmh:g} km/h (speeding)",
          colour="#c0392b", dash="dot", width=1, offset=th.speeding_minor_over_kmh)  # fmt: skip
    _line(fig, tr.get(sig.ACCEL_LON), 2, "longitudinal (raw)", colour="#9ecae1", opacity=0.7)
    _line(fig, report.scored_lon, 2, f"longitudinal, as scored ({th.smoothing_s:g} s mean)",
          colour="#08519c", width=1.6)  # fmt: skip
    _line(fig, tr.get(sig.ACCEL_LAT), 3, "lateral (raw)", colour="#fdd0a2", opacity=0.7)
    _line(fig, report.scored_lat, 3, f"lateral, as scored ({th.smoothing_s:g} s mean)",
          colour="#d94801", width=1.6)  # fmt: skip
    _line(fig, tr.get(sig.ACCEL_PEDAL), 4, "accelerator pedal", colour="#2ca02c")
    _line(fig, tr.get(sig.BRAKE_PEDAL), 4, "brake pedal", colour="#d62728")
    _line(fig, tr.get(sig.STEERING_ANGLE), 5, "steering wheel angle", colour="#6a51a3")
    _thresholds(fig, report)
    _events(fig, report.events)
    for row, (_, unit) in enumerate(_ROWS, 1):
        fig.update_yaxes(title_text=unit, row=row, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=len(_ROWS), col=1)
    fig.update_layout(height=1250, template="plotly_white", hovermode="x unified",
                      legend={"orientation": "h", "y": -0.06},
                      margin={"l": 60, "r": 20, "t": 40, "b": 40})  # fmt: skip
    return fig


def route_figure(report: TripReport) -> go.Figure | None:
    """The route on longitude/latitude axes at true proportions, events marked; None
    without positions."""
    if not report.route:
        return None
    lats = np.array([p[1] for p in report.route])
    lons = np.array([p[2] for p in report.route])
    fig = go.Figure(go.Scatter(x=lons, y=lats, mode="lines", name="route",
                                 line={"color": "#1f77b4", "width": 2},
                                 hovertemplate="%{y:.5f}, %{x:.5f}<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=[lons[0], lons[-1]], y=[lats[0], lats[-1]], mode="markers+text",
                             text=["start", "end"], textposition="top center", name="start, end",
                             marker={"color": "#333", "size": 9}))  # fmt: skip
    for severity, colour in SEVERITY_COLOURS.items():
        mine = [e for e in report.events if e.severity == severity and e.location is not None]
        if mine:
            fig.add_trace(go.Scatter(
                x=[e.location[1] for e in mine if e.location], y=[e.location[0] for e in mine
                                                                  if e.location],
                mode="markers", name=f"{severity} events",
                marker={"color": colour, "size": 12, "symbol": "diamond", "line": {"width": 1}},
                text=[f"{event_name(e.type)} ({e.severity})" for e in mine],
                hovertemplate="%{text}<extra></extra>"))  # fmt: skip
    ratio = 1.0 / max(math.cos(math.radians(float(lats.mean()))), 0.05)
    fig.update_yaxes(scaleanchor="x", scaleratio=ratio, title_text="latitude (°)")
    fig.update_xaxes(title_text="longitude (°)")
    fig.update_layout(height=620, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 20, "b": 40})  # fmt: skip
    return fig


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary_html(report: TripReport) -> str:
    parts = []
    for i, trip in enumerate(report.trips, 1):
        score = "no score (under 1 km)" if trip.score is None else f"{trip.score:.1f}"
        rows = "".join(
            f"<tr><td>{escape(event_name(line.type))}</td><td class=num>{line.count}</td>"
            f"<td class=num>{line.points:g}</td></tr>"
            for line in trip.penalties
        ) or "<tr><td colspan=3>no penalty</td></tr>"
        parts.append(
            f"<h2>Trip {i}</h2><p>{escape(trip_line(trip))}</p>"
            f'<p>score <span class="score" data-score="{trip.score}">{escape(score)}</span>'
            f" / 100</p><table><tr><th>penalty</th><th class=num>events</th>"
            f"<th class=num>points</th></tr>{rows}<tr><th>total</th><th></th>"
            f'<th class=num data-penalty-points="{trip.penalty_points:g}">'
            f"{trip.penalty_points:g}</th></tr></table>"
            f'<p class="muted">{escape(score_formula(trip))}</p>'
        )
    if not report.trips:
        parts.append("<p class=note>No trip in this log (the vehicle did not move, or not for "
                     "long enough): no score.</p>")  # fmt: skip
    return "".join(parts)


def _events_html(report: TripReport) -> str:
    if not report.events:
        return "<p>No event detected.</p>"
    start = report.start or 0.0
    rows = "".join(
        f'<tr class="event" data-type="{escape(e.type)}" data-severity="{escape(e.severity)}">'
        f"<td>{escape(_utc(e.start))}</td><td class=num>+{e.start - start:.1f} s</td>"
        f"<td>{escape(event_name(e.type))}</td>"
        f'<td><span class="sev" style="background:{SEVERITY_COLOURS[e.severity]}"></span>'
        f"{escape(e.severity)}</td><td class=num>{e.duration_s:g} s</td>"
        f"<td class=num>{escape(peak_text(e.type, e.peak))}</td>"
        f"<td class=num>{e.speed_kmh:.0f}</td>"
        f"<td class=num>{e.points:g}</td></tr>"
        for e in report.events
    )
    head = ("<tr><th>start</th><th class=num>into the log</th><th>event</th><th>severity</th>"
            "<th class=num>duration</th><th class=num>peak</th><th class=num>km/h</th>"
            "<th class=num>points</th></tr>")  # fmt: skip
    return f"<table>{head}{rows}</table>"


def _thresholds_html(report: TripReport) -> str:
    th = report.thresholds
    return (
        f'<p class="muted" id="thresholds">Thresholds ({escape(th.vehicle_class)}, '
        "docs/scoring.md): harsh braking "
        f'<span data-threshold="harsh_braking">{th.harsh_braking_mps2:g}</span> m/s² '
        f"(from {th.braking_min_speed_kmh:g} km/h), harsh acceleration "
        f'<span data-threshold="harsh_acceleration">{th.harsh_acceleration_mps2:g}</span> '
        "m/s², harsh cornering "
        f'<span data-threshold="harsh_cornering">{th.harsh_cornering_mps2:g}</span> m/s² '
        f"(from {th.cornering_min_speed_kmh:g} km/h), on the acceleration averaged over "
        f"{th.smoothing_s:g} s; speeding from {th.speeding_minor_over_kmh:g} km/h over the "
        f"posted limit (or over {th.max_speed_kmh:g} km/h where the bus has none).</p>"
    )


def render(report: TripReport) -> str:
    """The whole page, plotly's JavaScript inline."""
    config = {"displaylogo": False, "responsive": True}
    time_div = time_figure(report).to_html(full_html=False, include_plotlyjs=True,
                                           config=config)  # fmt: skip
    route = route_figure(report)
    if route is None:
        route_html = f'<p class="note" id="no-route">No route: {escape(no_route_reason())}</p>'
    else:
        route_html = route.to_html(full_html=False, include_plotlyjs=False, config=config)
    bad = ", ".join(f"{reason} {n:,}" for reason, n in report.rejected)
    bad_scoring = ", ".join(f"{reason} {n:,}" for reason, n in report.scoring_rejected)
    notes = ""
    if bad:
        notes += f"<p class=note>Rejected while decoding: {escape(bad)}.</p>"
    if bad_scoring:
        notes += f"<p class=note>Samples scoring rejected: {escape(bad_scoring)}.</p>"
    title = f"Trip report: {report.source}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><p class=muted>{report.frames:,} frames, "
        f"{report.decoded_frames:,} decoded; replayed through the agent's decode and scoring "
        "path (msp-agent replay)</p>"
        f"{notes}{_summary_html(report)}"
        f"<h2>Over time</h2>{_thresholds_html(report)}{time_div}"
        f"<h2>Route</h2>{route_html}"
        f'<h2>Events</h2><div id="events">{_events_html(report)}</div>'
        "</body></html>\n"
    )


def write_html(report: TripReport, path: Path) -> int:
    """Write the page to ``path`` (atomically); return its size in bytes. Raises
    ReportError naming the file when it cannot be written."""
    return write_atomically(path, render(report).encode("utf-8"))
