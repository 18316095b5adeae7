"""Exception tree of the wire protocol: every rejection names the field or record at fault.

ProtocolError             anything the protocol refuses (``field`` names the JSON path, if any)
 ├── RecordError          a record or body that does not match its schema (unknown kind, missing,
 │                        extra or mistyped field, value out of range, oversized payload)
 ├── SignatureError       a JWS that is malformed, uses a refused algorithm, or does not verify
 ├── ChainError           a sequence of records whose chain breaks (gap, fork, bad prev, ...)
 └── SealError            a sealed reply that cannot be sealed (no X25519 key) or opened
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Root of every error the protocol raises; ``field`` is the JSON path at fault, or ``""``."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class RecordError(ProtocolError):
    """A record, envelope or body does not match its schema; ``field`` names where."""


class SignatureError(ProtocolError):
    """A JWS is malformed, uses an algorithm the key does not allow, or fails to verify."""


class ChainError(ProtocolError):
    """A chain of records breaks: ``seq`` is the first record at fault, ``reason`` how.

    Reasons: ``gap`` (a seq missing and not declared evicted), ``fork`` (one seq, two contents),
    ``bad_signature``, ``bad_record``, ``bad_prev`` (prev is not the hash of the record before),
    ``bad_gap`` (a gap record that contradicts what it declares), ``device`` (another device).
    """

    def __init__(self, message: str, seq: int, reason: str) -> None:
        super().__init__(f"seq {seq}: {reason}: {message}")
        self.field = "seq"
        self.seq = seq
        self.reason = reason


class SealError(ProtocolError):
    """A reply that cannot be sealed (no X25519 key) or opened (missing part, wrong key)."""
