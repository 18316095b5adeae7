"""The vehicle catalogue: signal maps this project ships for the cars most driven in Japan.

Each entry is a map in ``edge_agent/vehicles/maps/`` written against a DBC of the pinned
``opendbc`` release (:data:`~edge_agent.vehicles.opendbc.OPENDBC_VERSION`), named there as
``dbc = "opendbc:NAME"``. Every mapped signal's sign and unit is checked against how opendbc's
own ``opendbc/car/<make>/carstate.py`` reads it, cited in the map's comments; where carstate.py
does not read a signal whose sign matters, the entry lists it in :attr:`Vehicle.sign_unverified`
(check it on a drive with ``msp-agent map check``).
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .. import signals as sig
from .opendbc import VehicleError


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One catalogue entry: ``msp-agent replay --vehicle NAME``, ``vehicle = "NAME"``."""

    name: str
    make: str
    models: str
    dbc: str  # the opendbc DBC name the map reads
    sign_unverified: tuple[str, ...] = ()

    @property
    def map_path(self) -> Path:
        """The entry's signal map (package data)."""
        return Path(str(importlib.resources.files(__package__) / "maps" / f"{self.name}.toml"))

    def signals(self) -> tuple[str, ...]:
        """The canonical signals the map provides, read from the map alone (no DBC needed)."""
        with self.map_path.open("rb") as fh:
            doc = tomllib.load(fh)
        return tuple(doc.get("signals", {}))


_LAT_YAW = (sig.ACCEL_LAT, sig.YAW_RATE)
_ACCELS = (sig.ACCEL_LON, sig.ACCEL_LAT)

VEHICLES: tuple[Vehicle, ...] = (
    Vehicle("toyota_new_mc_pt", "Toyota", "Corolla 2017-19, RAV4 2017-18, Prius v, Lexus ES/CT",
            "toyota_new_mc_pt", _LAT_YAW),
    Vehicle("toyota_nodsu_pt", "Toyota", "every TSS2 car (RAV4 2019+, Corolla 2019+, Camry "
            "2021+, Alphard, ...), Prius 2016+, C-HR, Camry 2018-20, Lexus LS", "toyota_nodsu_pt",
            _LAT_YAW),
    Vehicle("toyota_tnga_k_pt", "Toyota", "RAV4 Hybrid 2016-18, Highlander 2017-19, Sienna, "
            "Avalon, Lexus IS/NX/RC/RX (TSS-P)", "toyota_tnga_k_pt", _LAT_YAW),
    Vehicle("honda_civic_2016", "Honda", "Civic 2016-18 (Nidec)",
            "honda_civic_touring_2016_can", (sig.ACCEL_LAT,)),
    Vehicle("honda_crv_2016", "Honda", "CR-V 2015-16 (Nidec)",
            "honda_crv_touring_2016_can", (sig.ACCEL_LAT,)),
    Vehicle("honda_bosch_radarless", "Honda", "Civic 2022-24, HR-V/Vezel 2023, Integra",
            "honda_bosch_radarless", (sig.ACCEL_LAT,)),
    Vehicle("nissan_leaf_2018", "Nissan", "Leaf 2018-23", "nissan_leaf_2018"),
    Vehicle("nissan_xtrail_2017", "Nissan", "X-Trail 2017, Rogue 2018-20", "nissan_x_trail_2017"),
    Vehicle("subaru_global_2017", "Subaru", "Impreza/XV 2017-19, Forester 2019-21, Ascent",
            "subaru_global_2017", _ACCELS),
    Vehicle("mazda_2017", "Mazda", "CX-5, CX-9, Mazda3, Mazda6 (2017-21)", "mazda_2017",
            _ACCELS),
    Vehicle("mazda_3_2019", "Mazda", "Mazda3 2019+, CX-30 (speed, brake and gear only)",
            "mazda_3_2019"),
    Vehicle("hyundai_kia_generic", "Hyundai/Kia", "CAN platforms: Sonata, Elantra, Tucson, "
            "Kona, Santa Fe, Niro, Ioniq, ...", "hyundai_kia_generic", (*_ACCELS, sig.YAW_RATE)),
    Vehicle("hyundai_canfd", "Hyundai/Kia", "CAN FD platforms: Ioniq 5/6, EV6, Tucson 2022+, "
            "Sportage 2023+, ...", "hyundai_canfd", (*_ACCELS, sig.YAW_RATE)),
)  # fmt: skip

BY_NAME: dict[str, Vehicle] = {v.name: v for v in VEHICLES}


def vehicle(name: str) -> Vehicle:
    """The entry called ``name``; raise VehicleError listing the known names."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(BY_NAME)
        raise VehicleError(f"{name!r}: no such vehicle in the catalogue (known: {known}; "
                           "msp-agent vehicles lists them)") from None  # fmt: skip
