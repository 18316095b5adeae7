"""Map check: a replayed log's mapped signals tested against physics, for signs, scales and units.

Makers differ in sign conventions and units (Toyota's ``ACCEL_X`` is positive backward, a miles
odometer mapped as km reads 1/1.609 of the distance), and a map that gets them wrong scores
braking as acceleration. Each check compares one mapped signal with what the log's other
signals say it must be:

| signal | reference |
|---|---|
| longitudinal acceleration | d(speed)/dt |
| yaw rate | the course over ground from positions, else the steering angle (sign only) |
| lateral acceleration | yaw rate x speed |
| steering angle | yaw rate (sign only) |
| odometer | integrated speed |
| speed | distance between positions |
| pedal positions | their range while driving |

The speed is the anchor: its sign and unit are taken as right, as the dashboard shows them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from . import signals as sig
from .samples import Sample

Verdict = Literal["consistent", "inverted", "scale", "no_motion", "inconsistent"]

#: Resampling period of the aligned series, seconds.
STEP_S = 0.1
#: A value older than this is not carried forward on the grid, seconds.
STALE_S = 1.0
#: Half-width of the window for derivatives and smoothing, in grid steps (0.5 s).
HALF_WINDOW = 5
#: Grid points (0.1 s each) the reference must show motion at, to tell anything.
MIN_MOTION_POINTS = 30
#: |correlation| needed to call a sign.
MIN_CORRELATION = 0.5
#: Odometer steps a drive must cover for its ratio to be read (a 1 km odometer: 20 km).
MIN_ODOMETER_STEPS = 20
#: A ratio within these bounds is consistent.
RATIO_OK = (0.8, 1.25)
#: Hints for ratios near common unit mix-ups: ratio → what the map probably says.
_UNIT_HINTS = (
    (1.609344, 'a miles signal read as km: set unit = "mi"'),
    (1 / 1.609344, 'a km signal read as miles: set unit = "km"'),
    (3.6, 'a m/s signal read as km/h: set unit = "m/s"'),
    (1 / 3.6, 'a km/h signal read as m/s: set unit = "km/h"'),
    (9.80665, 'a g signal read as m/s^2: set unit = "g"'),
    (100.0, 'a 0-1 ratio read as %: set unit = "ratio"'),
    (1000.0, 'a km signal read as m, or m read as km: check unit'),
    (0.001, 'a m signal read as km: set unit = "m"'),
    (math.degrees(1.0), 'a rad signal read as deg: set unit = "rad" or "rad/s"'),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict on one mapped signal: ``ratio`` is the factor it must be multiplied by to
    agree with its reference (negative: inverted), where the check measures one."""

    signal: str
    reference: str
    verdict: Verdict
    message: str
    points: int
    correlation: float | None = None
    ratio: float | None = None

    def to_json(self) -> dict[str, object]:
        """The finding as one object of ``msp-agent map check --json``."""
        return {
            "signal": self.signal,
            "reference": self.reference,
            "verdict": self.verdict,
            "message": self.message,
            "points": self.points,
            "correlation": None if self.correlation is None else round(self.correlation, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
        }


class Series:
    """The samples of each signal on a common ``STEP_S`` grid, built as they stream in (the
    last value in each step, held forward for up to ``STALE_S``): memory grows with the
    drive's duration, not with the bus's sample rate."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        start: float | None = None
        grid: dict[str, list[float | None]] = {}
        stamps: dict[str, list[float | None]] = {}
        for sample in samples:
            value, ts = float(sample.value), sample.timestamp
            if not (math.isfinite(value) and math.isfinite(ts)):
                continue
            if start is None:
                start = ts
            i = int((ts - start) / STEP_S)
            if i < 0:
                continue  # before the first sample: out of order
            values = grid.setdefault(sample.name, [])
            times = stamps.setdefault(sample.name, [])
            if i >= len(values):
                values.extend([None] * (i + 1 - len(values)))
                times.extend([None] * (i + 1 - len(times)))
            values[i], times[i] = value, ts
        self.start = start or 0.0
        self.length = max((len(v) for v in grid.values()), default=0)
        self.names = frozenset(grid)
        self._grid = {name: self._hold(grid[name], stamps[name]) for name in grid}

    def _hold(self, values: list[float | None], times: list[float | None]) -> list[float | None]:
        out: list[float | None] = [None] * self.length
        last: tuple[float, float] | None = None
        for i in range(self.length):
            ts = times[i] if i < len(times) else None
            if ts is not None:
                value = values[i]
                assert value is not None
                last = (ts, value)
            if last is not None and self.start + i * STEP_S - last[0] <= STALE_S:
                out[i] = last[1]
        return out

    def get(self, name: str) -> list[float | None]:
        """The aligned series of ``name`` (all None when the log does not carry it)."""
        return self._grid.get(name) or [None] * self.length


def check(samples: Iterable[Sample]) -> list[Finding]:
    """Check every mapped signal the log carries against its reference; see the module doc."""
    series = Series(samples)
    speed = series.get(sig.SPEED)
    speed_ms = [None if v is None else abs(v) / 3.6 for v in speed]
    findings: list[Finding] = []
    if sig.ACCEL_LON in series.names:
        slope = _derivative(speed_ms)
        findings.append(
            _compare(sig.ACCEL_LON, "d(speed)/dt", _smooth(series.get(sig.ACCEL_LON)), slope,
                     min_motion=0.3, moving=speed_ms)
        )
    yaw_sign = 1.0
    course = _course_rate(series)
    if sig.YAW_RATE in series.names:
        if course is not None:
            yaw = _compare(sig.YAW_RATE, "course over ground", _smooth(series.get(sig.YAW_RATE)),
                           course, min_motion=2.0, moving=speed_ms)
        else:
            steer = series.get(sig.STEERING_ANGLE)
            yaw = _compare(sig.YAW_RATE, "steering angle", series.get(sig.YAW_RATE), steer,
                           min_motion=10.0, moving=speed_ms, sign_only=True)
        findings.append(yaw)
        yaw_sign = -1.0 if yaw.verdict == "inverted" and course is not None else 1.0
        if sig.ACCEL_LAT in series.names:
            centripetal = [
                None if y is None or v is None else yaw_sign * math.radians(y) * v
                for y, v in zip(_smooth(series.get(sig.YAW_RATE)), speed_ms, strict=True)
            ]
            findings.append(
                _compare(sig.ACCEL_LAT, "yaw rate x speed", _smooth(series.get(sig.ACCEL_LAT)),
                         centripetal, min_motion=0.3, moving=speed_ms)
            )
        if sig.STEERING_ANGLE in series.names and course is not None:
            corrected = [None if y is None else yaw_sign * y for y in series.get(sig.YAW_RATE)]
            findings.append(
                _compare(sig.STEERING_ANGLE, "yaw rate", series.get(sig.STEERING_ANGLE),
                         corrected, min_motion=2.0, moving=speed_ms, sign_only=True)
            )
    if sig.ODOMETER in series.names:
        findings.append(_odometer(series))
    if course is not None and sig.SPEED in series.names:
        findings.append(_speed_against_positions(series))
    for pedal in (sig.ACCEL_PEDAL, sig.BRAKE_PEDAL):
        if pedal in series.names:
            findings.append(_pedal(pedal, series.get(pedal), speed_ms))
    return findings


def _compare(
    name: str,
    reference: str,
    values: Sequence[float | None],
    expected: Sequence[float | None],
    *,
    min_motion: float,
    moving: Sequence[float | None],
    sign_only: bool = False,
) -> Finding:
    """Fit ``expected ≈ ratio · values`` over the moments the vehicle moves; at least
    ``MIN_MOTION_POINTS`` of them must show the reference at ``min_motion`` or more."""
    pairs = [
        (x, y)
        for x, y, v in zip(values, expected, moving, strict=True)
        if x is not None and y is not None and v is not None and v > 2.0
    ]
    if len(pairs) < 50 or sum(abs(y) >= min_motion for _, y in pairs) < MIN_MOTION_POINTS:
        return Finding(name, reference, "no_motion", "not enough motion to tell", len(pairs))
    r = _correlation(pairs)
    sxx = sum(x * x for x, _ in pairs)
    ratio = sum(x * y for x, y in pairs) / sxx if sxx else None
    if r is None or abs(r) < MIN_CORRELATION or ratio is None:
        return Finding(name, reference, "inconsistent",
                       f"does not follow its reference (correlation {r or 0:.2f}): check "
                       "message, signal and unit", len(pairs), r, ratio)
    if r < 0:
        scale = "" if sign_only or _ratio_ok(-ratio) else f"; then {_scale_text(-ratio)}"
        return Finding(name, reference, "inverted",
                       f"sign looks inverted: set invert = true{scale}", len(pairs), r, ratio)
    if sign_only or _ratio_ok(ratio):
        return Finding(name, reference, "consistent", "consistent", len(pairs), r,
                       None if sign_only else ratio)
    return Finding(name, reference, "scale", _scale_text(ratio), len(pairs), r, ratio)


def _odometer(series: Series) -> Finding:
    odometer, speed = series.get(sig.ODOMETER), series.get(sig.SPEED)
    known = [i for i, value in enumerate(odometer) if value is not None]
    reference = "integrated speed"
    if not known:
        return Finding(sig.ODOMETER, reference, "no_motion", "not enough motion to tell", 0)
    first, last = known[0], known[-1]
    start_km, end_km = odometer[first], odometer[last]
    assert start_km is not None and end_km is not None
    travelled = end_km - start_km
    driven = sum(abs(v) * STEP_S / 3600 for v in speed[first:last] if v is not None)
    if driven < 0.5:
        return Finding(sig.ODOMETER, reference, "no_motion", "not enough motion to tell",
                       len(known))
    readings = [value for value in odometer if value is not None]
    steps = [b - a for a, b in itertools.pairwise(readings) if b > a]
    resolution = min(steps, default=0.0)
    if 0 < travelled < MIN_ODOMETER_STEPS * resolution:  # whole-km odometers need a long drive
        return Finding(sig.ODOMETER, reference, "no_motion",
                       f"not enough motion to tell: {travelled:g} in steps of {resolution:g}; "
                       f"drive at least {MIN_ODOMETER_STEPS} steps", len(known))
    if travelled <= 0:
        return Finding(sig.ODOMETER, reference, "inconsistent",
                       f"does not advance over {driven:.2f} km driven", len(known))
    ratio = driven / travelled
    if _ratio_ok(ratio):
        return Finding(sig.ODOMETER, reference, "consistent", "consistent", len(known),
                       ratio=ratio)
    return Finding(sig.ODOMETER, reference, "scale", _scale_text(ratio), len(known),
                   ratio=ratio)


def _speed_against_positions(series: Series) -> Finding:
    lats, lons = series.get(sig.LATITUDE), series.get(sig.LONGITUDE)
    speed = series.get(sig.SPEED)
    gps_km = driven_km = 0.0
    for i in range(1, series.length):
        la0, lo0, la1, lo1, v = lats[i - 1], lons[i - 1], lats[i], lons[i], speed[i]
        if None in (la0, lo0, la1, lo1, v):
            continue
        assert la0 is not None and lo0 is not None and la1 is not None and lo1 is not None
        assert v is not None
        gps_km += _haversine_km(la0, lo0, la1, lo1)
        driven_km += abs(v) * STEP_S / 3600
    if driven_km < 0.5:
        return Finding(sig.SPEED, "positions", "no_motion", "not enough motion to tell", 0)
    ratio = gps_km / driven_km
    verdict: Verdict = "consistent" if _ratio_ok(ratio) else "scale"
    message = "consistent" if verdict == "consistent" else _scale_text(ratio)
    return Finding(sig.SPEED, "positions", verdict, message, series.length, ratio=ratio)


def _pedal(name: str, values: Sequence[float | None], moving: Sequence[float | None]) -> Finding:
    driving = [p for p, v in zip(values, moving, strict=True) if p is not None and v and v > 2.0]
    if not driving or max(driving) - min(driving) <= 0.0:
        return Finding(name, "range while driving", "no_motion", "not enough motion to tell",
                       len(driving))
    low, high = min(driving), max(driving)
    if high <= 1.05 and low >= -0.05:
        return Finding(name, "range while driving", "scale", _scale_text(100.0), len(driving),
                       ratio=100.0)
    if high <= 0.0:
        return Finding(name, "range while driving", "inverted",
                       "sign looks inverted: set invert = true", len(driving), ratio=-1.0)
    return Finding(name, "range while driving", "consistent", "consistent", len(driving))


def _scale_text(ratio: float) -> str:
    for value, hint in _UNIT_HINTS:
        if abs(ratio / value - 1) < 0.05:
            return f"scale looks off by x{value:.4g} ({hint})"
    return f"scale looks off by x{ratio:.3g}"


def _ratio_ok(ratio: float) -> bool:
    return RATIO_OK[0] <= ratio <= RATIO_OK[1]


def _smooth(values: Sequence[float | None]) -> list[float | None]:
    """Centred moving average over ±HALF_WINDOW steps (None where the window has a gap)."""
    out: list[float | None] = [None] * len(values)
    for i in range(HALF_WINDOW, len(values) - HALF_WINDOW):
        window = values[i - HALF_WINDOW : i + HALF_WINDOW + 1]
        if all(v is not None for v in window):
            out[i] = sum(v for v in window if v is not None) / len(window)
    return out


def _derivative(values: Sequence[float | None]) -> list[float | None]:
    """Centred difference over ±HALF_WINDOW steps, per second."""
    out: list[float | None] = [None] * len(values)
    smooth = _smooth(values)
    for i in range(HALF_WINDOW, len(values) - HALF_WINDOW):
        before, after = smooth[i - HALF_WINDOW], smooth[i + HALF_WINDOW]
        if before is not None and after is not None:
            out[i] = (after - before) / (2 * HALF_WINDOW * STEP_S)
    return out


def _course_rate(series: Series) -> list[float | None] | None:
    """Rate of change of the course over ground (deg/s, + counter-clockwise), or None."""
    if sig.LATITUDE not in series.names or sig.LONGITUDE not in series.names:
        return None
    lats, lons = series.get(sig.LATITUDE), series.get(sig.LONGITUDE)
    courses: list[float | None] = [None] * series.length
    for i in range(HALF_WINDOW, series.length - HALF_WINDOW):
        la0, lo0 = lats[i - HALF_WINDOW], lons[i - HALF_WINDOW]
        la1, lo1 = lats[i + HALF_WINDOW], lons[i + HALF_WINDOW]
        if None in (la0, lo0, la1, lo1):
            continue
        assert la0 is not None and lo0 is not None and la1 is not None and lo1 is not None
        east = (lo1 - lo0) * math.cos(math.radians(la0))
        north = la1 - la0
        if math.hypot(east, north) * 111_320 > 1.0:  # metres moved: a course is defined
            courses[i] = math.degrees(math.atan2(north, east))  # counter-clockwise from east
    rates: list[float | None] = [None] * series.length
    seen = 0
    for i in range(1, series.length):
        c0, c1 = courses[i - 1], courses[i]
        if c0 is not None and c1 is not None:
            rates[i] = ((c1 - c0 + 180) % 360 - 180) / STEP_S
            seen += 1
    return _smooth(rates) if seen >= 50 else None


def _haversine_km(lat0: float, lon0: float, lat1: float, lon1: float) -> float:
    p0, p1 = math.radians(lat0), math.radians(lat1)
    a = (math.sin((p1 - p0) / 2) ** 2
         + math.cos(p0) * math.cos(p1) * math.sin(math.radians(lon1 - lon0) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def _correlation(pairs: Sequence[tuple[float, float]]) -> float | None:
    n = len(pairs)
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)
