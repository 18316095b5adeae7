"""The words and colours both renderings of a report share (HTML and PNG)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from msp_protocol.scoring import MIN_SCORED_KM, SHORT_TRIP_KM

from .model import TripSummary

#: Colour of each severity (minor, major, critical).
SEVERITY_COLOURS: Final[dict[str, str]] = {
    "minor": "#f1c40f",
    "major": "#e67e22",
    "critical": "#c0392b",
}


#: The unit of each event type's ``peak`` (docs/scoring.md).
PEAK_UNITS: Final[dict[str, str]] = {
    "harsh_braking": "m/s²",
    "harsh_acceleration": "m/s²",
    "harsh_cornering": "m/s²",
    "speeding": "km/h",
    "idling": "l",
    "continuous_driving": "h",
    "pedal_misapplication": "m/s²",
    "seatbelt": "km/h",
    "crash": "m/s²",
}


def peak_text(kind: str, peak: float) -> str:
    """An event's peak with its unit: ``5.149 m/s²``."""
    unit = PEAK_UNITS.get(kind)
    return f"{peak:g} {unit}" if unit else f"{peak:g}"


def event_name(kind: str) -> str:
    """``harsh_braking`` -> ``harsh braking``."""
    return kind.replace("_", " ")


def no_route_reason() -> str:
    """Why a report has no route."""
    return ("this log has no positions (the signal map names no Vehicle.CurrentLocation "
            "signals, or none decoded with a fix).")  # fmt: skip


def trip_line(trip: TripSummary) -> str:
    """One line about a trip: when, how far, how long, how fast, fuel."""
    start = datetime.fromtimestamp(trip.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
    end = datetime.fromtimestamp(trip.end, UTC).strftime("%H:%M:%S UTC")
    text = (f"{start} .. {end}: {trip.distance_km:.2f} km in {trip.duration_s / 60:.1f} min, "
            f"top speed {trip.max_speed_kmh:.0f} km/h")  # fmt: skip
    if trip.fuel_l is not None and trip.co2_kg is not None:
        text += f", {trip.fuel_l:.2f} l of fuel, {trip.co2_kg:.2f} kg CO2"
    return text


def score_formula(trip: TripSummary) -> str:
    """How the trip's score follows from its points (msp_protocol.scoring.trip_score)."""
    if trip.score is None:
        return f"Trips under {MIN_SCORED_KM:g} km get no score."
    over = max(trip.distance_km, SHORT_TRIP_KM)
    return (f"score = 100 - min(100, {trip.penalty_points:g} points * 100 / {over:g} km) = "
            f"{trip.score:.1f}: points per 100 km, trips under {SHORT_TRIP_KM:g} km counted "
            f"as {SHORT_TRIP_KM:g} km.")  # fmt: skip
