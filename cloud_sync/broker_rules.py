"""Who may read and write which topic: the one rule set behind every broker's permissions.

DESIGN.md, Topics: a gateway writes only ``msp/v1/dev/<its id>/rec`` and reads only its
``ack`` and ``reply`` (the person's sealed answers); a fleet operator reads only
``msp/v1/fleet/<its fleet>/#``; the registry reads every ``rec`` and writes acks, replies,
fleet data and public statistics; the read-only ``public`` user (anyone) reads public
statistics, the dashboard's ``web`` user what it shows live (docs/web.md); the registry also
writes what it makes for the recipients of the other roles, and a recipient of role ``R``
named ``N`` (broker user ``R.N``) reads only ``msp/v1/R/N/#``; everyone may read the
registry's key (``msp/v1/registry/key``).
``cloud_sync.mosquitto`` renders these grants as mosquitto's ACL file (a device's as a ``%u``
pattern), ``cloud_sync.nats_config`` as NATS subject permissions (one user per device, since
NATS has no such pattern); both read them from here, so the two brokers cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from msp_protocol.roles import REGISTRABLE, REGISTRY_KEY_TOPIC
from msp_protocol.topics import PREFIX, PUBLIC_FILTER, REC_FILTER

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
    Grant("write", f"{PREFIX}/dev/+/reply"),
    Grant("write", f"{PREFIX}/fleet/#"),
    Grant("write", PUBLIC_FILTER),
    *(Grant("write", f"{PREFIX}/{role}/#") for role in REGISTRABLE if role != "fleet"),
    Grant("write", REGISTRY_KEY_TOPIC),
)

#: What every broker user may read: the registry's public key.
EVERYONE_GRANTS: Final = (Grant("read", REGISTRY_KEY_TOPIC),)

#: Anyone's rights (the ``public`` user): public statistics, read only (docs/public.md).
PUBLIC_GRANTS: Final = (Grant("read", PUBLIC_FILTER),)

#: The dashboard's live feed (the ``web`` user): what it shows, read only.
WEB_GRANTS: Final = (Grant("read", f"{PREFIX}/fleet/#"), Grant("read", PUBLIC_FILTER))

#: A gateway's rights, ``{device}`` standing for its id (the certificate CN).
DEVICE_TEMPLATES: Final = (
    Grant("write", f"{PREFIX}/dev/{{device}}/rec"),
    Grant("read", f"{PREFIX}/dev/{{device}}/ack"),
    Grant("read", f"{PREFIX}/dev/{{device}}/reply"),
)

#: A fleet operator's rights, ``{fleet}`` standing for its fleet id.
FLEET_TEMPLATES: Final = (Grant("read", f"{PREFIX}/fleet/{{fleet}}/#"),)


def device_grants(device: str) -> tuple[Grant, ...]:
    """The grants of gateway ``device`` (``%u`` gives mosquitto's pattern form)."""
    return tuple(Grant(g.access, g.topic.format(device=device)) for g in DEVICE_TEMPLATES)


def fleet_grants(fleet: str) -> tuple[Grant, ...]:
    """The grants of the operator of ``fleet``."""
    return tuple(Grant(g.access, g.topic.format(fleet=fleet)) for g in FLEET_TEMPLATES)


#: A recipient's rights, ``{role}``/``{name}`` standing for its role and name.
RECIPIENT_TEMPLATES: Final = (Grant("read", f"{PREFIX}/{{role}}/{{name}}/#"),)


def recipient_grants(role: str, name: str) -> tuple[Grant, ...]:
    """The grants of recipient ``name`` of ``role`` (a fleet's are :func:`fleet_grants`)."""
    if role == "fleet":
        return fleet_grants(name)
    return tuple(Grant(g.access, g.topic.format(role=role, name=name))
                 for g in RECIPIENT_TEMPLATES)  # fmt: skip
