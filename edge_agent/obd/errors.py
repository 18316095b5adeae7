"""Errors of the OBD-II stack, all below ``edge_agent.errors.ObdError``.

ObdError
 ├── NoResponseError         no ECU answered a request before its deadline
 ├── NegativeResponseError   an ECU answered 0x7F (service, negative response code)
 ├── MalformedResponseError  an answer that does not parse (names the ECU, service and PID)
 └── AdapterError            the ELM327 adapter or its serial link failed
      ├── AdapterTimeoutError  the adapter gave no prompt before the read deadline
      └── AdapterReplyError    the adapter answered an error text (?, STOPPED, CAN ERROR...)
"""

from __future__ import annotations

from ..errors import ObdError

__all__ = [
    "AdapterError",
    "AdapterReplyError",
    "AdapterTimeoutError",
    "MalformedResponseError",
    "NegativeResponseError",
    "NoResponseError",
    "ObdError",
]

#: ISO 14229 / J1979 negative response codes seen from OBD ECUs.
NRC_NAMES: dict[int, str] = {
    0x10: "general reject",
    0x11: "service not supported",
    0x12: "sub-function not supported",
    0x13: "incorrect message length or format",
    0x21: "busy, repeat request",
    0x22: "conditions not correct",
    0x31: "request out of range",
    0x78: "response pending",
}


class NoResponseError(ObdError):
    """No ECU answered the request before its deadline."""


class NegativeResponseError(ObdError):
    """An ECU refused the request with a negative response (0x7F service NRC)."""

    def __init__(self, ecu: str, service: int, code: int) -> None:
        self.ecu = ecu
        self.service = service
        self.code = code
        name = NRC_NAMES.get(code, "unknown code")
        super().__init__(f"ECU {ecu} refused service 0x{service:02X}: NRC 0x{code:02X} ({name})")


class MalformedResponseError(ObdError):
    """An answer could not be parsed; the message names the ECU and what was expected."""


class AdapterError(ObdError):
    """The ELM327 adapter reported an error or its serial link failed."""


class AdapterTimeoutError(AdapterError):
    """The adapter gave no ``>`` prompt before the read deadline."""


class AdapterReplyError(AdapterError):
    """The adapter answered a request with an error text instead of data.

    ``kind`` names the reply (``refused`` for ``?``, ``can_error``, ``buffer_full``,
    ``bus_busy``, ``data_error``, ``stopped``, ``unable_to_connect``, ...); ``transient`` is
    True for the ones a repeated request may not meet again (bus noise, a busy bus).
    """

    def __init__(self, message: str, kind: str, transient: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
