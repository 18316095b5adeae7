"""Exception tree of the cloud registry.

RegistryError
 ├── EnrolmentError     a device cannot be enrolled or revoked (bad CSR, unknown or duplicate id)
 ├── PkiError           a CA, certificate or key file is missing or unusable (names the file)
 ├── StoreError         the registry database cannot be opened or written
 │    └── ChainConflict  a commit met another worker's commit of the same chain (plan again)
 └── BrokerError        the MQTT broker cannot be reached or refused the registry
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""


class EnrolmentError(RegistryError):
    """A device could not be enrolled or revoked; the message names the device and the cause."""


class PkiError(RegistryError):
    """A CA, certificate or key file is missing or unusable; the message names the file."""


class StoreError(RegistryError):
    """The registry database cannot be opened or written."""


class ChainConflict(StoreError):  # noqa: N818 - a verdict, like the StoreError it is
    """A commit was refused because the database already holds another commit of the same
    chain (a seq taken, a predecessor not the one planned): another worker got there first.
    Nothing was committed; the ingestor plans the batch again from the stored heads."""


class BrokerError(RegistryError):
    """The MQTT broker cannot be reached or refused the registry's connection."""
