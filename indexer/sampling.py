"""Choosing the moments of a video: decode real frames once, start a moment at
every shot boundary, and never leave more than a maximum gap between two moments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

from indexer.errors import MediaError
from indexer.probe import MediaInfo
from indexer.shots import BackgroundShots, ShotDetector, ShotFrame, make_detector, reformatter

DEFAULT_MAX_GAP_S = 2.0
# Pictures that may stand for a moment are kept at most this far apart, so the
# one chosen lies within 0.1 s of its moment's middle.
PICTURE_STEP_S = 0.2
# Pictures handed on for embedding keep at most this many pixels on their short
# side: twice CLIP's input, so each square view is downscaled with antialiasing
# from real detail, without carrying 4K frames around.
WORKING_SHORT_SIDE = 448


@dataclass(frozen=True)
class Moment:
    """A moment: its span and the frame standing for it, in seconds from the first frame.

    ``image`` is RGB uint8 (H, W, 3) as displayed: square pixels, rotation applied.
    """

    start_s: float
    end_s: float
    frame_s: float
    image: np.ndarray


@dataclass(frozen=True)
class SamplingOptions:
    max_gap_s: float = DEFAULT_MAX_GAP_S
    keyframes_only: bool = False


def _working_size(info: MediaInfo) -> tuple[int, int]:
    """(width, height) before rotation, square pixels, short side capped."""
    width, height = info.picture.square_size
    scale = min(1.0, WORKING_SHORT_SIDE / min(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def _picture(frame: av.VideoFrame, size: tuple[int, int], rotation: int) -> np.ndarray:
    shrunk = reformatter().reformat(frame, width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    image = shrunk.to_ndarray()
    # Display-matrix rotation is counter-clockwise, as is np.rot90.
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def sample_moments(
    path: Path, info: MediaInfo, options: SamplingOptions = SamplingOptions(), device: str = "cpu"
) -> Iterator[Moment]:
    """Yield the moments of ``path`` in order, decoding once as it goes (memory stays flat).

    Each moment opens at a shot boundary or when the previous one reached
    ``max_gap_s``; its representative is the kept frame nearest its middle.
    Keyframes mode decodes too few frames to see shots: moments follow ``max_gap_s``.
    """
    size = _working_size(info)
    detector = None if options.keyframes_only else BackgroundShots(make_detector(device))
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if options.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            yield from _Timeline(info, size, options, detector).moments(container.decode(stream))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: video stops decoding ({exc.strerror or exc})") from exc
    finally:
        if detector is not None:
            detector.close()


class _Timeline:
    """Cuts decoded frames into moments as soon as the detector has settled where shots start.

    Detectors decide some frames late, so pictures are kept on a grid (one per
    ``PICTURE_STEP_S`` at most) until their moment is closed. Of the pictures
    that can only belong to the open moment, those past its latest possible
    middle are let go, so memory holds about half a gap plus the detector's lag.
    """

    def __init__(
        self, info: MediaInfo, size: tuple[int, int], options: SamplingOptions, detector: ShotDetector | None
    ) -> None:
        self._info, self._size, self._options, self._detector = info, size, options, detector
        self._step = min(PICTURE_STEP_S, options.max_gap_s / 8)
        self._pictures: list[tuple[float, np.ndarray]] = []
        self._times: list[float] = []  # frame times from the open moment's start on
        self._cuts: list[float] = []  # boundaries reported and not yet reached
        self._start: float | None = None
        self._held: Moment | None = None  # the last closed moment: a short span with no picture joins it

    def moments(self, frames: Iterator[av.VideoFrame]) -> Iterator[Moment]:
        last_t: float | None = None
        for frame in frames:
            if frame.time is None:
                continue
            t = max(0.0, float(frame.time) - self._info.start_time_s)
            if last_t is not None and t <= last_t:
                continue  # a repeated timestamp adds nothing to the timeline
            last_t = t
            yield from self._close(self._take(t, frame))
        if last_t is None:
            return
        if self._detector is not None:
            self._cuts.extend(self._detector.finish())
        yield from self._close(last_t)
        frame_duration = 1 / float(self._info.frame_rate) if self._info.frame_rate else 0.0
        yield from self._end_moment(max(last_t + frame_duration, self._info.duration_s or 0.0))
        if self._held is not None:
            yield self._held

    def _take(self, t: float, frame: av.VideoFrame) -> float:
        """Add a frame at ``t`` to the timeline; return the time up to which boundaries are settled."""
        if self._start is None:
            self._start = t
        self._times.append(t)
        if not self._pictures or t - self._pictures[-1][0] >= self._step:
            self._pictures.append((t, _picture(frame, self._size, self._info.rotation)))
        if self._detector is None:
            return t
        self._cuts.extend(self._detector.push(t, ShotFrame(frame)))
        return self._detector.settled

    def _close(self, settled: float) -> Iterator[Moment]:
        """Close each moment whose end is certain: a boundary, or ``max_gap_s`` with none before it."""
        while self._start is not None:
            end = self._certain_end(self._start, settled)
            if end is None:
                break
            yield from self._end_moment(end)
            self._advance(end)
        self._let_go(settled)

    def _certain_end(self, start: float, settled: float) -> float | None:
        """Where the moment open at ``start`` ends, once nothing reported later can move it."""
        cut = min((c for c in self._cuts if c > start), default=None)
        bound = next((t for t in self._times if t - start >= self._options.max_gap_s), None)
        if cut is not None and (bound is None or cut <= bound):
            return self._frame_at(start, cut)
        if bound is not None and bound <= settled:
            return bound  # boundaries reported later lie after ``settled``
        return None

    def _frame_at(self, start: float, cut: float) -> float:
        """The frame a boundary falls on (a fade's middle is computed, not a frame's time)."""
        return next((t for t in self._times if t > start and t >= cut - 1e-3), cut)

    def _advance(self, end: float) -> None:
        """Open the next moment at ``end``, forgetting what lies before it."""
        self._start = end
        self._cuts = [c for c in self._cuts if c > end]
        self._times = [t for t in self._times if t >= end]
        self._pictures = [p for p in self._pictures if p[0] >= end]

    def _end_moment(self, end: float) -> Iterator[Moment]:
        assert self._start is not None
        start, middle = self._start, (self._start + end) / 2
        inside = [p for p in self._pictures if start <= p[0] < end]
        if not inside:
            # Shorter than the picture grid (a flash frame, a sliver before a cut).
            assert self._held is not None, "the first frame always keeps its picture"
            self._held = replace(self._held, end_s=end)
            return
        t, image = min(inside, key=lambda p: abs(p[0] - middle))
        if self._held is not None:
            yield self._held
        self._held = Moment(start, end, t, image)

    def _let_go(self, settled: float) -> None:
        """Drop pictures that only the open moment could use and that lie past its latest middle."""
        assert self._start is not None
        latest_middle = self._start + self._options.max_gap_s / 2
        kept, past = [], False
        for t, image in self._pictures:
            if latest_middle <= t <= settled:
                if past:
                    continue
                past = True  # the first one past the middle may still be the nearest
            kept.append((t, image))
        self._pictures = kept
