"""The settings of the public statistics tier, and the rules they must keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import RegistryError

#: No (cell, hour) is ever published with fewer distinct contributors than this.
MIN_K: Final = 5


class PublicError(RegistryError):
    """A public-statistics setting out of its range, or OpenDP missing."""


@dataclass(frozen=True, slots=True)
class PublicConfig:
    """``k``: the fewest distinct contributors a published (cell, hour) has (at least 5);
    ``epsilon``: the privacy budget of one (cell, hour)'s release, split over its five values
    (``noise.EPSILON_SHARES``); ``grace_s``: how long after an hour ends its contributions are
    still taken before it is released (later ones are dropped and counted ``late``)."""

    k: int = 10
    epsilon: float = 1.0
    grace_s: float = 2 * 3600.0

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < MIN_K:
            raise PublicError(f"k: {self.k!r} is below {MIN_K}: a cell is never published with "
                              f"fewer than {MIN_K} distinct contributors")  # fmt: skip
        if not 0 < self.epsilon <= 100:
            raise PublicError(f"epsilon: {self.epsilon!r} is not in (0, 100]")
        if not 0 <= self.grace_s <= 30 * 86400:
            raise PublicError(f"grace: {self.grace_s!r} s is not in [0, 30 days]")
