"""Writing a report file whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ReportError


def write_atomically(path: Path, data: bytes) -> int:
    """Write ``data`` to ``path`` through a temporary file beside it (a reader never sees
    half a report); return the size. Raises ReportError naming the file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"{path}: cannot write the report: {exc.strerror}") from None
    return len(data)
