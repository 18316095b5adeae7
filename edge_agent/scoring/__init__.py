"""Driving scores on the edge: detectors, trips and their records from canonical samples.

``Scorer(config).feed(sample)`` returns events as they close (a crash at once);
``Scorer.finish()`` returns the trips. Formulas shared with the registry live in
``msp_protocol.scoring``; thresholds and their sources in ``docs/scoring.md``.
"""

from .config import ScoringConfig, config_from_mapping, load_scoring_config
from .model import Event, Location, Trip
from .scorer import Scorer

__all__ = [
    "Event",
    "Location",
    "Scorer",
    "ScoringConfig",
    "Trip",
    "config_from_mapping",
    "load_scoring_config",
]
