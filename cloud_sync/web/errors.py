"""The web dashboard's errors: one root, a refusal, an unknown thing."""

from __future__ import annotations

from ..errors import RegistryError


class WebError(RegistryError):
    """Something the web dashboard cannot do (names what and why)."""


class Forbidden(WebError):  # noqa: N818 - answered as 403 Forbidden
    """The logged-in recipient may not see this (another fleet's page, a fleet's page for an
    operator)."""


class NotFound(WebError):  # noqa: N818 - answered as 404 Not Found
    """No such vehicle, driver or page for this recipient (never says whether another
    recipient has one)."""
