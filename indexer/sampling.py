"""Choosing the moments of a video: decode real frames, cut at scene changes,
and never leave more than a maximum gap between two moments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from indexer.errors import MediaError
from indexer.probe import MediaInfo

DEFAULT_MAX_GAP_S = 2.0
# Mean absolute difference of two 32x18 grey thumbnails (0-255) above which a
# frame starts a new shot. Motion inside a shot stays well below it.
DEFAULT_CUT_THRESHOLD = 30.0
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
    cut_threshold: float = DEFAULT_CUT_THRESHOLD


def _working_size(info: MediaInfo) -> tuple[int, int]:
    """(width, height) before rotation, square pixels, short side capped."""
    width, height = info.picture.square_size
    scale = min(1.0, WORKING_SHORT_SIDE / min(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def _picture(frame: av.VideoFrame, size: tuple[int, int], rotation: int) -> np.ndarray:
    image = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
    # Display-matrix rotation is counter-clockwise, as is np.rot90.
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


def _thumb(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(width=32, height=18, format="gray", interpolation="AREA").to_ndarray().astype(np.float32)


def sample_moments(path: Path, info: MediaInfo, options: SamplingOptions = SamplingOptions()) -> Iterator[Moment]:
    """Yield the moments of ``path`` in order, decoding as it goes (memory stays flat).

    Each moment opens at a cut or when the previous one reached ``max_gap_s``;
    its representative is the frame nearest its middle that the shot reaches.
    """
    size = _working_size(info)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if options.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            yield from _moments(container.decode(stream), info, size, options)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: video stops decoding ({exc.strerror or exc})") from exc


def _moments(
    frames: Iterator[av.VideoFrame], info: MediaInfo, size: tuple[int, int], options: SamplingOptions
) -> Iterator[Moment]:
    start_offset = info.start_time_s
    moment_start: float | None = None
    chosen: tuple[float, np.ndarray] | None = None
    middle_taken = False
    previous_thumb: np.ndarray | None = None
    last_t = 0.0
    for frame in frames:
        if frame.time is None:
            continue
        t = max(0.0, float(frame.time) - start_offset)
        thumb = _thumb(frame)
        cut = previous_thumb is not None and float(np.abs(thumb - previous_thumb).mean()) > options.cut_threshold
        previous_thumb = thumb
        if moment_start is None or chosen is None:
            moment_start, chosen, middle_taken = t, (t, _picture(frame, size, info.rotation)), False
        elif cut or t - moment_start >= options.max_gap_s:
            yield Moment(moment_start, t, chosen[0], chosen[1])
            moment_start, chosen, middle_taken = t, (t, _picture(frame, size, info.rotation)), False
        elif not middle_taken and t >= moment_start + options.max_gap_s / 2:
            chosen, middle_taken = (t, _picture(frame, size, info.rotation)), True
        last_t = t
    if moment_start is None or chosen is None:
        return
    frame_duration = 1 / float(info.frame_rate) if info.frame_rate else 0.0
    end = max(last_t + frame_duration, info.duration_s or 0.0, chosen[0])
    yield Moment(moment_start, end, chosen[0], chosen[1])
