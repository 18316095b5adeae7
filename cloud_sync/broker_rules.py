"""Who may read and write which topic: the one rule set behind every broker's permissions.

DESIGN.md, Topics: a gateway writes only ``msp/v1/dev/<its id>/rec`` and reads only its
``ack``; a fleet operator reads only ``msp/v1/fleet/<its fleet>/#``; the registry reads every
``rec`` and writes acks, fleet data and public statistics. ``cloud_sync.mosquitto`` renders
these grants as mosquitto's ACL file (a device's as a ``%u`` pattern), ``cloud_sync.nats_config``
as NATS subject permissions (one user per device, since NATS has no such pattern); both read
them from here, so the two brokers cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from msp_protocol.topics import PREFIX, PUBLIC_STATS, REC_FILTER

Access = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Grant:
    """The right to ``access`` every topic MQTT filter ``topic`` matches."""

    access: Access
    topic: str


#: The registry's rights.
REGISTRY_GRANTS: Final = (
    Grant("read", REC_FILTER),
    Grant("write", f"{PREFIX}/dev/+/ack"),
    Grant("write", f"{PREFIX}/fleet/#"),
    Grant("write", PUBLIC_STATS),
)

#: A gateway's rights, ``{device}`` standing for its id (the certificate CN).
DEVICE_TEMPLATES: Final = (
    Grant("write", f"{PREFIX}/dev/{{device}}/rec"),
    Grant("read", f"{PREFIX}/dev/{{device}}/ack"),
)

#: A fleet operator's rights, ``{fleet}`` standing for its fleet id.
FLEET_TEMPLATES: Final = (Grant("read", f"{PREFIX}/fleet/{{fleet}}/#"),)


def device_grants(device: str) -> tuple[Grant, ...]:
    """The grants of gateway ``device`` (``%u`` gives mosquitto's pattern form)."""
    return tuple(Grant(g.access, g.topic.format(device=device)) for g in DEVICE_TEMPLATES)


def fleet_grants(fleet: str) -> tuple[Grant, ...]:
    """The grants of the operator of ``fleet``."""
    return tuple(Grant(g.access, g.topic.format(fleet=fleet)) for g in FLEET_TEMPLATES)
