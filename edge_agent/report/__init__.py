"""Trip reports: a replayed log's traces, events and score, drawn for a person to look at.

:func:`collect` replays a log through :meth:`edge_agent.replay.Replay.run` (the code path of
``msp-agent replay``) while recording the traces the report draws, and returns a
:class:`TripReport`. Drawing it needs the optional extra ``msp-gateway[report]``:
:mod:`edge_agent.report.html` (plotly, one self-contained HTML file) and
:mod:`edge_agent.report.png` (matplotlib). Neither is imported here, so the agent on a Pi,
which never draws, does not need them.
"""

from .collect import TraceRecorder, collect
from .errors import ReportError
from .model import EventMark, PenaltyLine, Thresholds, Trace, TripReport, TripSummary

__all__ = [
    "EventMark",
    "PenaltyLine",
    "ReportError",
    "Thresholds",
    "Trace",
    "TraceRecorder",
    "TripReport",
    "TripSummary",
    "collect",
]
