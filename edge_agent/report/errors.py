"""The trip report's error (under the agent's root, :class:`edge_agent.errors.AgentError`)."""

from __future__ import annotations

from ..errors import AgentError


class ReportError(AgentError):
    """A report cannot be made (nothing decoded in the log) or written (names the file)."""
