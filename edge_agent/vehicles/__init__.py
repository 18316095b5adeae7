"""The vehicle catalogue: signal maps for common cars, on opendbc's DBC files read as data.

:mod:`.opendbc` finds and assembles opendbc's DBCs (installed, or a fetched wheel);
:mod:`.catalogue` lists the entries and their maps (``maps/*.toml``, package data).
"""

from .catalogue import BY_NAME, VEHICLES, Vehicle, vehicle
from .opendbc import OPENDBC_VERSION, VehicleError

__all__ = ["BY_NAME", "OPENDBC_VERSION", "VEHICLES", "Vehicle", "VehicleError", "vehicle"]
