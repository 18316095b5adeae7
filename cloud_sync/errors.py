"""Exception tree of the cloud registry.

RegistryError
 ├── EnrolmentError     a device cannot be enrolled or revoked (bad CSR, unknown or duplicate id)
 ├── PkiError           a CA, certificate or key file is missing or unusable (names the file)
 ├── StoreError         the registry database cannot be opened or written
 │    ├── SchemaVersionError  the database's schema version is not this code's (names both)
 │    └── ChainConflict       another worker committed first: re-plan the batch and retry
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


class SchemaVersionError(StoreError):
    """The database's schema version and this code's disagree: ``database`` is older (run
    ``msp-registry migrate``) or newer (upgrade msp-registry) than ``code``."""

    def __init__(self, where: str, database: int, code: int) -> None:
        if database > code:
            advice = f"database schema {database} is newer than this msp-registry ({code}):" \
                " upgrade msp-registry"
        else:
            advice = f"database schema {database} is older than this msp-registry ({code}):" \
                f" run msp-registry migrate --db {where}"
        super().__init__(f"{where}: {advice}")
        self.database = database
        self.code = code


class ChainConflict(StoreError):  # noqa: N818 - the brief's name; a verdict to re-plan on
    """A commit would break a device's chain or store a seq twice, because another worker
    committed that device's records first (shared subscription, many workers): nothing of the
    batch was committed. The caller re-reads the chain heads (``Store.chain_head``), re-plans
    the batch and commits again; ``device`` and ``seq`` name the first record in conflict."""

    def __init__(self, device: str, seq: int, message: str) -> None:
        super().__init__(f"{device} seq {seq}: {message}")
        self.device = device
        self.seq = seq


class BrokerError(RegistryError):
    """The MQTT broker cannot be reached or refused the registry's connection."""
