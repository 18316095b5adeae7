"""Exception tree of the edge agent.

AgentError
 ├── ConfigError        an unusable configuration, signal map or DBC (names file and entry)
 ├── IngestError        a CAN interface or log file that cannot be opened or read
 ├── ObdError           an OBD-II request that failed (no answer, negative response, adapter error)
 ├── CardError          the driver card or its reader failed (see edge_agent.card for the subtree)
 ├── IdentityError      no driver binding: certificate, licence, PIN entry (edge_agent.identity)
 └── OutboxError        the durable outbox cannot store or read records
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the edge agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration, signal map or DBC file is unusable; the message names file and entry."""


class IngestError(AgentError):
    """A CAN interface or log file could not be opened or read."""


class ObdError(AgentError):
    """An OBD-II exchange failed: no answer, a negative response or an adapter error."""


class CardError(AgentError):
    """The driver's card or its reader failed."""


class OutboxError(AgentError):
    """The durable outbox cannot store or read records."""
