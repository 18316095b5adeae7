"""The dashboard's server-rendered pages: login, fleet overview, vehicle, driver, operator.

A page needs the session cookie (else a redirect to ``/login``); a fleet's pages answer only
that fleet (403 otherwise), the operator's page only an operator. Every page showing a
person's data writes it to their exchange log, like the API.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from . import public_map
from .auth import COOKIE, Principal
from .exchange_log import log_shown
from .html import e, layout, link, score_text, sparkline, table, trend_text, url, when
from .state import require_fleet, require_operator, web_state
from .views import Copy, FleetView, OperatorView, shown_of

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):  # noqa: N818 - a redirect, handled by the app
    """No valid session cookie: the app answers with a redirect to the login page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def page_principal(request: Request) -> Principal:
    """The logged-in recipient of a page request; ``LoginRequired`` otherwise."""
    cookie = request.cookies.get(COOKIE)
    principal = web_state(request).sessions.check(cookie) if cookie else None
    if principal is None:
        raise LoginRequired(request.url.path)
    return principal


Viewer = Annotated[Principal, Depends(page_principal)]


def _safe_next(target: str) -> str:
    """A redirect target on this site only: a path, not ``//host`` nor ``/\\host`` (which
    browsers read as ``//host``), without control characters."""
    local = target.startswith("/") and target[1:2] not in ("/", "\\")
    return target if local and "\\" not in target and target.isprintable() else "/"


def login_form(target: str = "/", error: str | None = None) -> str:
    """The login page."""
    message = f'<p class="error">{e(error)}</p>' if error else ""
    return layout("Log in", (
        '<section class="login"><form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{e(target)}">{message}'
        '<label for="user">User</label>'
        '<input id="user" name="user" autocomplete="username" placeholder="fleet.FLEET">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password">'
        "<button>Log in</button></form>"
        "<p>Fleets log in with the password <code>msp-registry fleet add --password</code>"
        " issued, operators with <code>msp-registry operator add</code>'s.</p></section>"))


@router.get("/login", response_class=HTMLResponse)
async def login_page(next: str = "/") -> HTMLResponse:
    """The login form."""
    return HTMLResponse(login_form(_safe_next(next)))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the form's credential; on success set the session cookie and go on."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    user = form.get("user", [""])[0]
    password = form.get("password", [""])[0]
    target = _safe_next(form.get("next", ["/"])[0])
    state = web_state(request)
    principal = state.credentials.verify(user, password)
    if principal is None:
        return HTMLResponse(login_form(target, "wrong user or password"), status_code=401)
    answer = RedirectResponse(principal.home if target == "/" else target, status_code=303)
    answer.set_cookie(COOKIE, state.sessions.issue(principal), max_age=state.sessions.lifetime_s,
                      httponly=True, samesite="strict", secure=state.secure_cookies, path="/")
    return answer


@router.post("/logout")
async def logout() -> Response:
    """Forget the session cookie."""
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


@router.get("/")
async def home(viewer: Viewer) -> Response:
    """The logged-in recipient's own page."""
    return RedirectResponse(viewer.home, status_code=303)


def _copy_cells(copy: Copy, fleet: str) -> list[str]:
    """When (a trip's end, an event's start, else the record's time), vehicle, driver."""
    at = copy.body.get("end") or copy.body.get("start") or copy.body.get("detected_at")
    who = link(url("fleet", fleet, "driver", copy.person), copy.person) if copy.person else "—"
    return [when(str(at or copy.ts)), link(url("fleet", fleet, "vehicle", copy.vin), copy.vin),
            who]  # fmt: skip


def _trip_rows(trips: list[Copy], fleet: str) -> list[list[str]]:
    return [[*_copy_cells(c, fleet), e(f"{c.body['distance_km']:.1f}"),
             e(f"{c.body['duration_s'] / 60:.0f}"), e(f"{c.body['max_speed_kmh']:.0f}"),
             e(score_text(c.body.get("score")))] for c in reversed(trips)]  # fmt: skip


_TRIP_HEAD = ["ended", "vehicle", "driver", "km", "min", "max km/h", "trip score"]


def _event_rows(events: list[Copy], fleet: str) -> list[list[str]]:
    rows = []
    for c in reversed(events):
        b = c.body
        severity = str(b.get("severity", "emergency" if c.kind == "emergency" else ""))
        place = "removed (no location consent)" if c.redacted else (
            f"{b['location']['lat']:.4f}, {b['location']['lon']:.4f}" if b.get("location")
            else "—")  # fmt: skip
        what = b.get("type") or b.get("trigger") or c.kind
        rows.append([*_copy_cells(c, fleet), e(what), f'<span class="badge {e(severity)}">'
                     f"{e(severity)}</span>", e(f"{b.get('speed_kmh', 0):.0f}"), e(place)])
    return rows


_EVENT_HEAD = ["at", "vehicle", "driver", "event", "severity", "km/h", "position"]


@router.get("/fleet/{fleet}", response_class=HTMLResponse)
async def fleet_page(request: Request, viewer: Viewer, fleet: str) -> HTMLResponse:
    """Vehicles (last seen, last trip), drivers with score and trend, recent events."""
    require_fleet(viewer, fleet)
    view = FleetView(web_state(request).store, fleet)
    vehicles, drivers = view.vehicles(), view.drivers()
    events = view.copies(("event", "emergency"), last=20)[-20:]
    vrows = [[link(url("fleet", fleet, "vehicle", v.vin), v.vin), e(v.vehicle_class),
              e(", ".join(v.devices)), when(v.last_seen),
              when(v.last_trip.body["end"]) if v.last_trip else "—",
              e(f"{v.last_trip.body['distance_km']:.1f} km") if v.last_trip else "—"]
             for v in vehicles]  # fmt: skip
    drows = [[link(url("fleet", fleet, "driver", d.pseudonym), d.pseudonym),
              f'<span class="num">{e(score_text(d.score))}</span>', trend_text(d.trend),
              sparkline([p.score for p in d.history], 120, 24), e(d.trips),
              e(d.until[:10]) if d.until else "no score consent"] for d in drivers]  # fmt: skip
    log_shown(view.store, shown_of(fleet, [*drivers, *events,
                                           *(v.last_trip for v in vehicles if v.last_trip)]))
    body = (
        f'<section><h2>Vehicles</h2>{table(["VIN", "class", "gateways", "last seen", "last trip", "distance"], vrows, cls="vehicles")}</section>'  # noqa: E501
        f'<section><h2>Drivers</h2>{table(["pseudonym", "score", "trend", "history", "trips", "score until"], drows, cls="drivers")}</section>'  # noqa: E501
        f'<section class="wide"><h2>Recent events</h2>{table(_EVENT_HEAD, _event_rows(events, fleet), cls="events")}</section>'  # noqa: E501
    )
    return HTMLResponse(layout(f"Fleet {fleet}", body, viewer, live=url("fleet", fleet, "live")))


@router.get("/fleet/{fleet}/vehicle/{vin}", response_class=HTMLResponse)
async def vehicle_page(request: Request, viewer: Viewer, fleet: str, vin: str) -> HTMLResponse:
    """A vehicle's trips, events and trouble codes."""
    require_fleet(viewer, fleet)
    view = FleetView(web_state(request).store, fleet)
    vehicle = view.vehicle(vin)
    trips, events, dtcs = (view.copies(k, vin=vin)
                           for k in (("trip",), ("event", "emergency"), ("dtc",)))  # fmt: skip
    log_shown(view.store, shown_of(fleet, [*trips, *events, *dtcs]))
    crows = [[when(c.ts), e(", ".join(f"{d['code']} ({d['status']})" for d in c.body["codes"])),
              "on" if c.body.get("mil") else "off",
              e(c.body.get("odometer_km"))] for c in reversed(dtcs)]  # fmt: skip
    body = (
        f'<section><h2>Vehicle</h2><p>class {e(vehicle.vehicle_class)}, gateways '
        f'{e(", ".join(vehicle.devices))}, last seen {when(vehicle.last_seen)}</p></section>'
        f'<section><h2>Trouble codes</h2>{table(["at", "codes", "MIL", "odometer km"], crows, cls="dtcs")}</section>'  # noqa: E501
        f'<section class="wide"><h2>Trips</h2>{table(_TRIP_HEAD, _trip_rows(trips, fleet), cls="trips")}</section>'  # noqa: E501
        f'<section class="wide"><h2>Events</h2>{table(_EVENT_HEAD, _event_rows(events, fleet), cls="events")}</section>'  # noqa: E501
    )
    return HTMLResponse(layout(f"Vehicle {vin}", body, viewer, live=url("fleet", fleet, "live")))


@router.get("/fleet/{fleet}/driver/{pseudonym}", response_class=HTMLResponse)
async def driver_page(request: Request, viewer: Viewer, fleet: str,
                      pseudonym: str) -> HTMLResponse:  # fmt: skip
    """A driver's score history and trips in this fleet's vehicles."""
    require_fleet(viewer, fleet)
    view = FleetView(web_state(request).store, fleet)
    driver, trips = view.driver(pseudonym)
    log_shown(view.store, shown_of(fleet, [driver, *trips]))
    hrows = [[when(p.at), e(score_text(p.score))] for p in reversed(driver.history)]
    shown = (f'<p class="score">{e(score_text(driver.score))}</p>{trend_text(driver.trend)}'
             f"<p>shown until {when(driver.until)}</p>" if driver.until else
             "<p>No valid <code>score</code> consent to this fleet: no score.</p>")
    body = (
        f'<section><h2>Portable score</h2>{shown}'
        f"{sparkline([p.score for p in driver.history])}</section>"
        f'<section><h2>Score history</h2>{table(["after the trip ending", "score"], hrows, cls="history")}</section>'  # noqa: E501
        f'<section class="wide"><h2>Trips in this fleet\'s vehicles</h2>{table(_TRIP_HEAD, _trip_rows(trips, fleet), cls="trips")}</section>'  # noqa: E501
    )
    return HTMLResponse(layout(f"Driver {pseudonym}", body, viewer,
                               live=url("fleet", fleet, "live")))  # fmt: skip


@router.get("/operator", response_class=HTMLResponse)
async def operator_page(request: Request, viewer: Viewer) -> HTMLResponse:
    """Gateways with their latest health record; rejections by reason."""
    require_operator(viewer)
    view = OperatorView(web_state(request).store)
    grows = [[e(g.device), e(g.vin), e(g.fleet), "revoked " + when(g.revoked_at) if g.revoked_at
              else "enrolled", e(g.queue_depth),
              e(None if g.frames_per_s is None else f"{g.frames_per_s:.0f}"),
              e(", ".join(f"{k} {v}" for k, v in sorted(g.errors.items())) or "none"),
              e(None if g.last_ack_age_s is None else _age(g.last_ack_age_s)),
              when(g.health_at)] for g in view.gateways()]  # fmt: skip
    rrows = [[e(reason), e(count)] for reason, count in view.rejections().items()]
    body = (
        f'<section class="wide"><h2>Gateways</h2>{table(["device", "VIN", "fleet", "state", "queue", "frames/s", "errors", "last ack", "health at"], grows, cls="gateways")}</section>'  # noqa: E501
        f'<section><h2>Rejections by reason</h2>{table(["reason", "records"], rrows, cls="rejections", empty="no rejection")}</section>'  # noqa: E501
    )
    return HTMLResponse(layout("Registry operator", body, viewer))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


@router.get("/fleet/{fleet}/live")
async def fleet_live(request: Request, viewer: Viewer, fleet: str) -> Response:
    """Server-sent events: one ``record`` event per record the fleet receives."""
    require_fleet(viewer, fleet)
    hub = web_state(request).hub
    if hub is None:
        return Response(status_code=204)  # no broker configured: the page stays as it is
    return StreamingResponse(hub.stream(f"fleet:{fleet}", request.is_disconnected),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


def login_redirect(path: str) -> RedirectResponse:
    """Where :class:`LoginRequired` sends the browser."""
    return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)


@router.get("/public", response_class=HTMLResponse)
async def public_page(request: Request, hour: str | None = None) -> HTMLResponse:
    """The published cells of one hour on two maps: CO2 and mean speed (no credential)."""
    state = web_state(request)
    hours, found = public_map.cells(state.store, hour[:40] if hour else None)
    chosen = found[0].hour if found else (hour or (hours[-1] if hours else None))
    links = " ".join(f"<strong>{e(h)}</strong>" if h == chosen
                     else link(f"/public?hour={quote(h)}", h) for h in hours)  # fmt: skip
    rows = [[e(c.cell), e(f"{max(c.co2_kg, 0):.2f}"),
             e(None if c.mean_speed_kmh is None else f"{c.mean_speed_kmh:.1f}"),
             e(f"{max(c.distance_km, 0):.1f}"), e(c.contributors)] for c in found]  # fmt: skip
    body = (
        f'<section class="wide"><h2>Hour (UTC)</h2><p>{links or "nothing published yet"}</p>'
        "<p>Noised, k-anonymous sums per H3 cell (resolution 7) and hour: no person or vehicle"
        " is in them (docs/public.md).</p></section>"
        f'<section><h2>CO2 (kg)</h2>{public_map.svg(found, "co2_kg")}</section>'
        f'<section><h2>Mean speed (km/h)</h2>{public_map.svg(found, "mean_speed_kmh")}</section>'
        f'<section class="wide"><h2>Cells</h2>{table(["cell", "CO2 kg", "km/h", "km", "contributors"], rows, cls="cells")}</section>'  # noqa: E501
    )
    return HTMLResponse(layout("Public statistics", body, _viewer_or_none(request),
                               live="/public/live"))  # fmt: skip


def _viewer_or_none(request: Request) -> Principal | None:
    cookie = request.cookies.get(COOKIE)
    return web_state(request).sessions.check(cookie) if cookie else None


@router.get("/public/live")
async def public_live(request: Request) -> Response:
    """Server-sent events: one ``record`` event per public release."""
    hub = web_state(request).hub
    if hub is None:
        return Response(status_code=204)
    return StreamingResponse(hub.stream("public", request.is_disconnected),
                             media_type="text/event-stream", headers={"Cache-Control": "no-store"})
