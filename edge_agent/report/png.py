"""The trip report as one static PNG image, drawn with matplotlib (Agg, no display needed).

Needs the report extra. The same content as the HTML page, on one sheet: the score and its
breakdown, the traces with thresholds and events, the route and the first events listed.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

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
from .model import Trace, TripReport

#: Events listed on the sheet (the HTML page lists them all).
_LISTED = 14


def _threshold(ax: Axes, y: float, label: str | None = None) -> None:
    ax.axhline(y, color="#c0392b", linestyle="--", linewidth=0.9, label=label)


def _dates(times: Floats) -> Floats:
    """Epoch seconds as matplotlib's date numbers (days since 1970, UTC)."""
    return times / 86400.0


def _plot(ax: Axes, trace: Trace | None, label: str, colour: str, *, width: float = 1.0,
          style: str = "-", alpha: float = 1.0, offset: float = 0.0) -> None:  # fmt: skip
    if trace is None or not len(trace):
        return
    t, v = minmax(trace.t, trace.v)
    ax.plot(_dates(t), v + offset, style, color=colour, linewidth=width, alpha=alpha,
            label=label)  # fmt: skip


def _time_axes(fig: Figure, report: TripReport, axes: list[Axes]) -> None:
    tr, th = report.traces, report.thresholds
    speed, lon, lat, pedals, steering = axes
    _plot(speed, tr.get(sig.SPEED), "speed", "#1f77b4", width=1.4)
    _plot(speed, tr.get(sig.SPEED_LIMIT), "posted limit", "#555555", style=":")
    _plot(speed, tr.get(sig.SPEED_LIMIT), f"limit + {th.speeding_minor_over_kmh:g}", "#c0392b",
          style=":", offset=th.speeding_minor_over_kmh)  # fmt: skip
    if sig.SPEED_LIMIT not in tr:
        _threshold(speed, th.max_speed_kmh, f"maximum {th.max_speed_kmh:g}")
    _plot(lon, tr.get(sig.ACCEL_LON), "raw", "#9ecae1", alpha=0.8)
    _plot(lon, report.scored_lon, "as scored", "#08519c", width=1.3)
    _threshold(lon, th.harsh_acceleration_mps2,
               f"harsh acceleration {th.harsh_acceleration_mps2:g}")  # fmt: skip
    _threshold(lon, -th.harsh_braking_mps2, f"harsh braking -{th.harsh_braking_mps2:g}")
    _plot(lat, tr.get(sig.ACCEL_LAT), "raw", "#fdd0a2", alpha=0.8)
    _plot(lat, report.scored_lat, "as scored", "#d94801", width=1.3)
    _threshold(lat, th.harsh_cornering_mps2, f"harsh cornering ±{th.harsh_cornering_mps2:g}")
    _threshold(lat, -th.harsh_cornering_mps2)
    _plot(pedals, tr.get(sig.ACCEL_PEDAL), "accelerator", "#2ca02c")
    _plot(pedals, tr.get(sig.BRAKE_PEDAL), "brake", "#d62728")
    _plot(steering, tr.get(sig.STEERING_ANGLE), "steering wheel", "#6a51a3")
    titles = ("speed (km/h)", "longitudinal acceleration (m/s²)", "lateral acceleration (m/s²)",
              "pedals (%)", "steering wheel (deg)")  # fmt: skip
    for ax, title in zip(axes, titles, strict=True):
        for event in report.events:
            ax.axvspan(event.start / 86400.0, max(event.end, event.start + 0.5) / 86400.0,
                       color=SEVERITY_COLOURS[event.severity], alpha=0.3, linewidth=0)  # fmt: skip
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7, ncols=4, framealpha=0.8)
    for severity, colour in SEVERITY_COLOURS.items():
        mine = [e for e in report.events if e.severity == severity]
        if mine:
            speed.scatter([e.start / 86400.0 for e in mine], [e.speed_kmh for e in mine],
                          marker="D", s=40, color=colour, edgecolors="black", zorder=5,
                          label=f"{severity} events")  # fmt: skip
    if report.events:
        speed.legend(loc="upper right", fontsize=7, ncols=4, framealpha=0.8)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes[-1].set_xlabel("time (UTC)")


def _route(ax: Axes, report: TripReport) -> None:
    ax.set_title("route", loc="left", fontsize=10)
    if not report.route:
        ax.text(0.5, 0.5, "No route:\n" + no_route_reason().replace(" (", "\n("),
                ha="center", va="center", fontsize=9, wrap=True)  # fmt: skip
        ax.set_axis_off()
        return
    lats = np.array([p[1] for p in report.route])
    lons = np.array([p[2] for p in report.route])
    ax.plot(lons, lats, color="#1f77b4", linewidth=1.6)
    ax.plot([lons[0]], [lats[0]], "o", color="#333333")
    ax.annotate("start", (lons[0], lats[0]), fontsize=8)
    for e in report.events:
        if e.location is not None:
            ax.scatter([e.location[1]], [e.location[0]], marker="D", s=45, zorder=5,
                       color=SEVERITY_COLOURS[e.severity], edgecolors="black")  # fmt: skip
    ax.set_aspect(1.0 / max(math.cos(math.radians(float(lats.mean()))), 0.05))
    ax.ticklabel_format(useOffset=False)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


def _text(ax: Axes, report: TripReport) -> None:
    ax.set_axis_off()
    lines = [f"{report.frames:,} frames, {report.decoded_frames:,} decoded"]
    for i, trip in enumerate(report.trips, 1):
        score = "no score (< 1 km)" if trip.score is None else f"score {trip.score:.1f} / 100"
        lines += [f"trip {i}: {score}", "  " + trip_line(trip)]
        lines += [f"  {event_name(p.type)}: {p.count} event{'s' if p.count > 1 else ''}, "
                  f"{p.points:g} points"
                  for p in trip.penalties] or ["  no penalty"]  # fmt: skip
        lines.append("  " + score_formula(trip))
    if not report.trips:
        lines.append("no trip in this log: no score")
    start = report.start or 0.0
    lines.append("")
    lines.append(f"events ({len(report.events)}):" if report.events else "no event detected")
    for e in report.events[:_LISTED]:
        clock = datetime.fromtimestamp(e.start, UTC).strftime("%H:%M:%S")
        lines.append(f"  {clock} (+{e.start - start:.0f} s) {event_name(e.type)}, {e.severity}, "
                     f"peak {peak_text(e.type, e.peak)}, at {e.speed_kmh:.0f} km/h, "
                     f"{e.points:g} points")  # fmt: skip
    if len(report.events) > _LISTED:
        lines.append(f"  … and {len(report.events) - _LISTED} more (see the HTML report)")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8.5, family="monospace",
            wrap=True)  # fmt: skip


def render(report: TripReport) -> bytes:
    """The sheet as PNG bytes."""
    fig = Figure(figsize=(13, 19), dpi=100, layout="constrained")
    grid = fig.add_gridspec(7, 2, height_ratios=[1.1, 1, 1, 1, 1, 1, 2.2], width_ratios=[3, 2])
    fig.suptitle(f"Trip report: {report.source}", fontsize=14, x=0.02, ha="left")
    _text(fig.add_subplot(grid[0, :]), report)
    first = fig.add_subplot(grid[1, :])
    axes = [first] + [fig.add_subplot(grid[row, :], sharex=first) for row in range(2, 6)]
    _time_axes(fig, report, axes)
    _route(fig.add_subplot(grid[6, 0]), report)
    legend = fig.add_subplot(grid[6, 1])
    legend.set_axis_off()
    th = report.thresholds
    legend.text(0.0, 1.0, "\n".join([
        f"thresholds ({th.vehicle_class}, docs/scoring.md):",
        f"  harsh braking {th.harsh_braking_mps2:g} m/s² (from {th.braking_min_speed_kmh:g} km/h)",
        f"  harsh acceleration {th.harsh_acceleration_mps2:g} m/s²",
        f"  harsh cornering {th.harsh_cornering_mps2:g} m/s² "
        f"(from {th.cornering_min_speed_kmh:g} km/h)",
        f"  on the acceleration averaged over {th.smoothing_s:g} s ('as scored')",
        f"  speeding from {th.speeding_minor_over_kmh:g} km/h over the limit",
        "",
        "shaded: events (" + ", ".join(SEVERITY_COLOURS) + ")",
    ]), va="top", ha="left", fontsize=8.5, family="monospace")  # fmt: skip
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(report: TripReport, path: Path) -> int:
    """Write the sheet to ``path`` (atomically); return its size in bytes. Raises
    ReportError naming the file when it cannot be written."""
    return write_atomically(path, render(report))
