"""Where a device's chain stands, kept in a small file apart from the outbox database.

The outbox database can be lost, zeroed, truncated or restored from an old copy; the seqs it
handed out must still never be handed out again, or the registry sees two contents for one
seq (its key-theft alarm, ``seq_reused``) and the vehicle can never upload again. So seqs are
*reserved* here in blocks before they are signed: the file's ``reserved`` is always greater
than every seq ever signed, at the cost of one fsync per block, not per record. The file also
keeps the last committed seq, its hash and the last acked seq as they stood when it was last
written (at each reservation and at a clean close).

The file is JSON, mode 0600, replaced atomically (write a temporary file, fsync it, rename it
over the old one, fsync the directory), so a crash leaves the old or the new content, never a
mix. Default place: beside the outbox, ``outbox.db.chain`` (the device key is often a
read-only systemd credential, so it cannot live beside the key).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from ..errors import OutboxError
from .database import OutboxStorageError

log = logging.getLogger(__name__)

#: Seqs reserved at a time: one fsync of the chain-state file per this many records.
BLOCK: Final = 1024
#: The file format this code writes and reads.
FORMAT: Final = 1


class ChainStateError(OutboxError):
    """The chain-state file exists but cannot be read or belongs to another device."""


@dataclass(frozen=True, slots=True)
class ChainState:
    """What is known of a device's chain apart from its outbox.

    ``reserved``: every seq ever signed is below it (it is itself never signed before the
    next reservation); ``seq``/``hash``: the last committed record when the file was written
    (``hash`` is ``None`` before the first record); ``acked``: the last seq the registry had
    acknowledged then (a lower bound of what it holds).
    """

    device: str
    reserved: int
    seq: int
    hash: str | None
    acked: int

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object."""
        return {"v": FORMAT, "device": self.device, "reserved": self.reserved,
                "seq": self.seq, "hash": self.hash, "acked": self.acked}  # fmt: skip


def chain_state_path(outbox: Path) -> Path:
    """Where the chain state of the outbox at ``outbox`` is kept by default."""
    return outbox.with_name(outbox.name + ".chain")


def _count(value: Any, name: str, path: Path) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise ChainStateError(f"{path}: {name!r} must be a non-negative integer")
    return value


class ChainStateFile:
    """The chain-state file of one outbox; :meth:`load` it, :meth:`save` to replace it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> ChainState | None:
        """Return the stored state, ``None`` if there is no file.

        Raises ``ChainStateError`` naming the file if it cannot be read or parsed.
        """
        try:
            data = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ChainStateError(f"cannot read chain state {self.path}: {exc.strerror}") from None
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ChainStateError(f"{self.path}: not a chain-state file (not JSON)") from None
        if not isinstance(value, dict) or value.get("v") != FORMAT:
            raise ChainStateError(f"{self.path}: not a chain-state file of format {FORMAT}")
        device, digest = value.get("device"), value.get("hash")
        if not isinstance(device, str) or not (digest is None or isinstance(digest, str)):
            raise ChainStateError(f"{self.path}: 'device' or 'hash' is not a string")
        state = ChainState(
            device=device,
            reserved=_count(value.get("reserved"), "reserved", self.path),
            seq=_count(value.get("seq"), "seq", self.path),
            hash=digest,
            acked=_count(value.get("acked"), "acked", self.path),
        )
        if not state.acked <= state.seq < state.reserved:
            raise ChainStateError(f"{self.path}: needs acked <= seq < reserved")
        return state

    def save(self, state: ChainState) -> None:
        """Replace the file with ``state`` durably (mode 0600); raises ``OutboxStorageError``."""
        data = json.dumps(state.to_json(), sort_keys=True).encode("ascii") + b"\n"
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # an old temporary file may have another mode
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            reason = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full",
                      errno.EROFS: "read_only"}.get(exc.errno or 0, "io")  # fmt: skip
            raise OutboxStorageError(
                f"cannot write chain state {self.path}: {exc.strerror}", reason
            ) from None

    def reserve(self, state: ChainState, seq: int, head: int, head_hash: str | None,
                acked: int) -> ChainState:  # fmt: skip
        """Reserve seqs up to ``seq + BLOCK`` (so ``seq`` may be signed) and save; ``head`` is
        the committed chain head at this moment. Returns the new state."""
        new = replace(state, reserved=seq + BLOCK, seq=head, hash=head_hash, acked=acked)
        self.save(new)
        log.debug("reserved seqs up to %d in %s", new.reserved, self.path)
        return new
