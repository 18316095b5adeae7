"""The PNG trip report: a valid image, drawn on (not a blank sheet)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from matplotlib import image

from tests.edge_agent.report.conftest import Made


def test_the_png_is_a_valid_png(made: Made) -> None:
    data = made.png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1300, 1900)
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]  # IHDR's CRC
    assert data.endswith(b"IEND\xaeB`\x82")
    assert f"wrote {made.png}" in made.stdout


def test_the_png_is_drawn_on(made: Made) -> None:
    pixels = image.imread(made.png)  # decoded by Pillow: a corrupt stream raises
    assert pixels.shape[:2] == (1900, 1300)
    rgb = pixels[..., :3]
    not_white = (rgb < 0.95).any(axis=-1)
    assert 0.02 < not_white.mean() < 0.6  # lines, text and shading; mostly background
    packed = (rgb * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(packed)) > 50  # traces, thresholds, severities, antialiasing
    # the events are shaded in their severity's colour (minor: #f1c40f, light on white)
    minor = np.array([0xF1, 0xC4, 0x0F]) / 255
    shaded = np.abs(rgb - (0.3 * minor + 0.7)).max(axis=-1) < 0.03
    assert shaded.sum() > 1000
