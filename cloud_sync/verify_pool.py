"""Signature verification in a process pool, so that one registry worker uses every core.

Verifying Ed25519 (or ES256) signatures is the physical floor of ingest and holds the GIL in
``cryptography``'s calls only briefly, so threads do not help; processes do. A worker with
``--verify-workers N`` hands each batch's signatures to N processes, in chunks, and gets the
verdicts back in the batch's order: each device's records are then placed in the order they
arrived, exactly as without a pool. Only public keys (PEM), signing inputs and signatures
cross the process boundary; each process keeps the keys it has parsed.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import Jws, PublicKey, load_public_key, verify_parts

log = logging.getLogger(__name__)

_KEYS: dict[str, PublicKey] = {}  # in each pool process: parsed keys, by PEM


def _verify_chunk(items: Sequence[tuple[str, Jws]]) -> list[ProtocolError | None]:
    """In a pool process: the verdict of each ``(pem, jws)``, ``None`` when it verifies."""
    out: list[ProtocolError | None] = []
    for pem, jws in items:
        try:
            key = _KEYS.get(pem)
            if key is None:
                if len(_KEYS) > 100_000:
                    _KEYS.clear()
                key = _KEYS[pem] = load_public_key(pem.encode("ascii"))
            verify_parts(jws, key)
            out.append(None)
        except ProtocolError as exc:
            out.append(exc)
    return out


class VerifyPool:
    """``processes`` verifier processes (forkserver: no inherited sockets or locks)."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"{processes} verification processes: at least 1")
        self.processes = processes
        context = multiprocessing.get_context("forkserver")
        self._executor = ProcessPoolExecutor(processes, mp_context=context)

    def verify(self, items: Sequence[tuple[str, Jws]]) -> list[ProtocolError | None]:
        """The verdict of each ``(public key PEM, split JWS)``, in order."""
        if not items:
            return []
        size = -(-len(items) // self.processes)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        return [v for verdicts in self._executor.map(_verify_chunk, chunks) for v in verdicts]

    def close(self) -> None:
        """Stop the processes."""
        self._executor.shutdown(wait=True, cancel_futures=True)
