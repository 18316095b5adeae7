"""Hand-made damage to the BLF fixture: its first container unpacked so that tests can edit
the objects inside it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from tests.conftest import DATA


def uncompressed_blf(edit: Callable[[bytearray], None] = lambda _data: None) -> bytes:
    """drive_short.blf with its first container stored uncompressed, after ``edit`` changed
    the container's bytes (the objects, each starting with ``LOBJ``)."""
    blf = (DATA / "drive_short.blf").read_bytes()
    header_size = struct.unpack_from("<4sL", blf)[1]
    signature, _, _, size, kind = struct.unpack_from("<4sHHLL", blf, header_size)
    assert signature == b"LOBJ" and kind == 10  # a log container
    method = struct.unpack_from("<H", blf, header_size + 16)[0]
    body = blf[header_size + 32 : header_size + size]
    data = bytearray(zlib.decompress(body) if method == 2 else body)
    edit(data)
    container = struct.pack("<4sHHLL", b"LOBJ", 16, 1, 32 + len(data), 10)
    container += struct.pack("<H6xL4x", 0, len(data)) + bytes(data)
    return blf[:header_size] + container + b"\0" * (len(container) % 4)


def empty_object(version: int, index: int = 3) -> Callable[[bytearray], None]:
    """An edit setting the ``index``-th object's size to 0 and its header version."""

    def edit(data: bytearray) -> None:
        at = -1
        for _ in range(index):
            at = data.index(b"LOBJ", at + 1)
        struct.pack_into("<HL", data, at + 6, version, 0)

    return edit
