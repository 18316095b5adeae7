"""The read-only JSON API under ``/api/v1`` (OpenAPI at ``/openapi.json``): HTTP Basic or
the session cookie; a fleet reads only its own ``/fleets/{fleet}/...``, an operator only
``/operator``. Every answer that shows a person's data goes to their exchange log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import HTTPBasicCredentials

from . import public_map
from .auth import Principal
from .exchange_log import log_shown
from .models import (
    CopyOut,
    DriverDetailOut,
    DriverOut,
    ErrorOut,
    GatewayOut,
    MeOut,
    OperatorOut,
    PublicCellOut,
    PublicOut,
    VehicleDetailOut,
    VehicleOut,
)
from .state import (
    basic_scheme,
    principal_from,
    require_fleet,
    require_operator,
    unauthorized,
    web_state,
)
from .views import FleetView, OperatorView, shown_of

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no credential, or a wrong one"},
    403: {"model": ErrorOut, "description": "not this recipient's data"},
    404: {"model": ErrorOut, "description": "no such vehicle or driver"},
    503: {"model": ErrorOut, "description": "the registry database is not answering"},
}

router = APIRouter(prefix="/api/v1", responses=_REFUSALS)


def api_principal(request: Request,
                  basic: Annotated[HTTPBasicCredentials | None, Security(basic_scheme)]
                  ) -> Principal:  # fmt: skip
    """The caller; 401 without a valid credential."""
    principal = principal_from(request, basic)
    if principal is None:
        raise unauthorized()
    return principal


Caller = Annotated[Principal, Depends(api_principal)]


def _fleet(request: Request, caller: Principal, fleet: str) -> FleetView:
    require_fleet(caller, fleet)
    return FleetView(web_state(request).store, fleet)


@router.get("/me", response_model=MeOut, summary="who is logged in")
async def me(caller: Caller) -> MeOut:
    """The recipient the credential stands for."""
    return MeOut(user=caller.user, role=caller.role, name=caller.name)


@router.get("/fleets/{fleet}/vehicles", response_model=list[VehicleOut],
            summary="the fleet's vehicles")  # fmt: skip
async def vehicles(request: Request, caller: Caller, fleet: str) -> list[VehicleOut]:
    """Every vehicle of the fleet with when it was last seen and its last trip."""
    view = _fleet(request, caller, fleet)
    found = view.vehicles()
    log_shown(view.store, shown_of(fleet, [v.last_trip for v in found if v.last_trip]))
    return [VehicleOut.of(v) for v in found]


@router.get("/fleets/{fleet}/vehicles/{vin}", response_model=VehicleDetailOut,
            summary="one vehicle: trips, events, trouble codes")  # fmt: skip
async def vehicle(request: Request, caller: Caller, fleet: str, vin: str) -> VehicleDetailOut:
    """A vehicle of the fleet and what the fleet received of it."""
    view = _fleet(request, caller, fleet)
    found = view.vehicle(vin)
    trips, events, dtcs = (view.copies((k,), vin=vin) for k in ("trip", "event", "dtc"))
    log_shown(view.store, shown_of(fleet, [*trips, *events, *dtcs]))
    return VehicleDetailOut(vehicle=VehicleOut.of(found), trips=[CopyOut.of(c) for c in trips],
                            events=[CopyOut.of(c) for c in events],
                            dtcs=[CopyOut.of(c) for c in dtcs])  # fmt: skip


@router.get("/fleets/{fleet}/drivers", response_model=list[DriverOut],
            summary="the fleet's drivers by pseudonym, with their portable scores")  # fmt: skip
async def drivers(request: Request, caller: Caller, fleet: str) -> list[DriverOut]:
    """Every person the fleet knows, by its pseudonym of them."""
    view = _fleet(request, caller, fleet)
    found = view.drivers()
    log_shown(view.store, shown_of(fleet, found))
    return [DriverOut.of(d) for d in found]


@router.get("/fleets/{fleet}/drivers/{pseudonym}", response_model=DriverDetailOut,
            summary="one driver: score history, trips in the fleet's vehicles")  # fmt: skip
async def driver(request: Request, caller: Caller, fleet: str,
                 pseudonym: str) -> DriverDetailOut:  # fmt: skip
    """A driver the fleet knows and their trips in its vehicles."""
    view = _fleet(request, caller, fleet)
    found, trips = view.driver(pseudonym)
    log_shown(view.store, shown_of(fleet, [found, *trips]))
    return DriverDetailOut(driver=DriverOut.of(found), trips=[CopyOut.of(c) for c in trips])


@router.get("/fleets/{fleet}/events", response_model=list[CopyOut],
            summary="the fleet's most recent events")  # fmt: skip
async def events(request: Request, caller: Caller, fleet: str,
                 limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[CopyOut]:  # fmt: skip
    """The newest ``limit`` events of the fleet's vehicles, newest first."""
    view = _fleet(request, caller, fleet)
    found = view.copies(("event", "emergency"), last=limit)[::-1][:limit]
    log_shown(view.store, shown_of(fleet, found))
    return [CopyOut.of(c) for c in found]


@router.get("/operator", response_model=OperatorOut,
            summary="gateways' health and rejections (operators only)")  # fmt: skip
async def operator(request: Request, caller: Caller) -> OperatorOut:
    """Every gateway with its latest health record and last ack; rejections by reason."""
    require_operator(caller)
    view = OperatorView(web_state(request).store)
    return OperatorOut(gateways=[GatewayOut.of(g) for g in view.gateways()],
                       rejections=view.rejections())  # fmt: skip


public_router = APIRouter(prefix="/api/v1", responses={503: _REFUSALS[503]})


@public_router.get("/public/cells", response_model=PublicOut,
                   summary="published public statistics (no credential: they name no one)")
async def public_cells(request: Request,
                       hour: Annotated[str | None, Query(max_length=40)] = None) -> PublicOut:
    """The published cells of one hour (``2026-11-18T08:00:00Z``; default the latest)."""
    hours, found = public_map.cells(web_state(request).store, hour)
    return PublicOut(hours=hours, cells=[PublicCellOut(
        cell=c.cell, hour=c.hour, co2_kg=c.co2_kg, mean_speed_kmh=c.mean_speed_kmh,
        distance_km=c.distance_km, contributors=c.contributors) for c in found])  # fmt: skip
