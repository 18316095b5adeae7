"""``python -m edge_agent.cli``: the same as ``msp-agent``."""

import sys

from . import main

sys.exit(main())
