"""The decode stage: routes frames to the decoders that asked for their IDs, yields samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

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
        decode = self.decode
        for frame in frames:
            yield from decode(frame)

    def decode(self, frame: Frame) -> Sequence[Sample]:
        """The samples of one frame, in order (what :meth:`run` yields for it)."""
        self.frames += 1
        decoders = self._routes.get(frame.arbitration_id)
        if decoders is None:
            self.unmapped += 1
            return ()
        if len(decoders) == 1:
            samples: Sequence[Sample] = decoders[0].decode(frame)
        else:
            samples = [sample for decoder in decoders for sample in decoder.decode(frame)]
        if samples:
            self.decoded_frames += 1
        return samples

    def rejected(self) -> Counter[str]:
        """Rejections of every decoder, by reason."""
        total: Counter[str] = Counter()
        for decoder in self.decoders:
            total.update(decoder.rejected)
        return total


class BusRouter:
    """Routes each frame to the decode stage of its bus (``Frame.bus``).

    Either one stage takes every bus (``every_bus``: a bare ``--map``), or each stage its own
    named bus, and a frame of a bus no stage claims is counted in :attr:`unmapped_bus` and
    dropped before any decode work. Offers what :class:`DecodeStage` offers, summed over its
    stages.
    """

    def __init__(
        self, named: Mapping[str, DecodeStage] | None = None, every_bus: DecodeStage | None = None
    ) -> None:
        if (named is None) == (every_bus is None):
            raise ValueError("give named stages or one stage for every bus")
        self.named = dict(named or {})
        self.every_bus = every_bus
        self._all = [every_bus] if every_bus is not None else list(self.named.values())
        self.wanted: frozenset[int] = frozenset().union(*(s.wanted for s in self._all))
        self.unmapped_bus = 0

    def run(self, frames: Iterable[Frame]) -> Iterator[Sample]:
        """Decode ``frames`` lazily, each by its bus's stage, yielding samples in frame order."""
        decode = self.every_bus.decode if self.every_bus is not None else self.decode
        for frame in frames:
            yield from decode(frame)

    def decode(self, frame: Frame) -> Sequence[Sample]:
        """The samples of one frame, in order (what :meth:`run` yields for it)."""
        if self.every_bus is not None:
            return self.every_bus.decode(frame)
        stage = self.named.get(frame.bus)
        if stage is None:
            self.unmapped_bus += 1
            return ()
        return stage.decode(frame)

    @property
    def unmapped(self) -> int:
        """Frames on IDs no decoder of their bus asked for."""
        return sum(stage.unmapped for stage in self._all)

    @property
    def decoded_frames(self) -> int:
        """Frames that yielded at least one sample."""
        return sum(stage.decoded_frames for stage in self._all)

    def rejected(self) -> Counter[str]:
        """Rejections of every stage's decoders, by reason."""
        total: Counter[str] = Counter()
        for stage in self._all:
            total.update(stage.rejected())
        return total
