"""The web dashboard's errors: one root, a refusal, an unknown thing."""

from __future__ import annotations

from ..errors import RegistryError


class WebError(RegistryError):
    """Something the web dashboard cannot do (names what and why)."""


class Forbidden(WebError):
    """The logged-in recipient may not see this (another fleet's page, a fleet's page for an
    operator)."""


class NotFound(WebError):
    """No such vehicle, driver or page for this recipient (never says whether another
    recipient has one)."""
