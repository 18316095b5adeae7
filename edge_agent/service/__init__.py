"""The agent as a long-running service: ``Agent(config).run()`` wires every stage together.

See :mod:`.agent` for the threads and their ownership, docs/configuration.md for the
configuration and docs/install-raspberry-pi.md for running it under systemd.
"""

from .agent import Agent
from .sources import build_stages

__all__ = ["Agent", "build_stages"]
