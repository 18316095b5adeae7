"""The decode stage: routes frames to the decoders that asked for their IDs, yields samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from .frames import Frame, FrameDecoder
from .samples import Sample


class DecodeStage:
    """Routes each frame to the decoders registered for its arbitration ID.

    The same stage serves live buses and replayed logs. Frames nobody asked for are counted
    (``unmapped``) and dropped before any decode work.
    """

    def __init__(self, decoders: Sequence[FrameDecoder]) -> None:
        self.decoders = tuple(decoders)
        routes: dict[int, list[FrameDecoder]] = {}
        for decoder in self.decoders:
            for can_id in decoder.ids:
                routes.setdefault(can_id, []).append(decoder)
        self._routes = {can_id: tuple(ds) for can_id, ds in routes.items()}
        self.wanted = frozenset(self._routes)
        self.frames = 0
        self.unmapped = 0
        self.decoded_frames = 0

    def run(self, frames: Iterable[Frame]) -> Iterator[Sample]:
        """Decode ``frames`` lazily, yielding samples in frame order."""
        routes = self._routes
        for frame in frames:
            self.frames += 1
            decoders = routes.get(frame.arbitration_id)
            if decoders is None:
                self.unmapped += 1
                continue
            decoded = False
            for decoder in decoders:
                samples = decoder.decode(frame)
                if samples:
                    decoded = True
                    yield from samples
            self.decoded_frames += decoded

    def rejected(self) -> Counter[str]:
        """Rejections of every decoder, by reason."""
        total: Counter[str] = Counter()
        for decoder in self.decoders:
            total.update(decoder.rejected)
        return total
