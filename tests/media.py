"""Real video files for tests, written with PyAV.

Every clip is made of "shots": stretches of one distinct picture (a colour
field with a moving bar, so encoders see motion), so scene-change detection
has real cuts to find. Files are tiny and fast to make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

SHOT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),
    (40, 200, 60),
    (40, 60, 220),
    (230, 210, 40),
    (200, 40, 200),
    (30, 200, 210),
)


@dataclass(frozen=True)
class Clip:
    """What to write. Sizes are coded (storage) pixels; times are seconds."""

    width: int = 160
    height: int = 90
    fps: Fraction = Fraction(25)
    shots: tuple[float, ...] = (1.0, 1.0)
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    sar: Fraction | None = None
    audio: bool = False
    audio_rate: int = 48000
    # Audio as cameras record it in MOV and MXF, a mono PCM track a channel; track k holds a
    # tone of 440 * (k + 1) Hz, so each can be told apart.
    mono_tracks: int = 0
    interlaced: bool = False
    vfr: bool = False
    rotation: int = 0
    start_time: float = 0.0
    options: dict[str, str] = field(default_factory=dict)
    # Container tags and the video stream's (a MOV's reel_name goes on its timecode track).
    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return sum(self.shots)


def shot_picture(index: int, width: int, height: int, t: float) -> np.ndarray:
    """An RGB24 (H, W, 3) picture for shot ``index`` at ``t`` seconds into it."""
    r, g, b = SHOT_COLOURS[index % len(SHOT_COLOURS)]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = (r, g, b)
    # A pattern per shot so shots differ in structure, not only in colour.
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = ((xx // max(2, width // (4 + 2 * index)) + yy // max(2, height // 3)) % 2).astype(bool)
    image[stripes] = (np.array((r, g, b)) * 0.55).astype(np.uint8)
    bar = int((t * 40) % max(1, width - 8))
    image[:, bar : bar + 8] = 255
    return image


def _frame_times(clip: Clip) -> list[tuple[int, float]]:
    """(shot index, time) of every frame; VFR clips alternate short and long frames."""
    times: list[tuple[int, float]] = []
    step = 1.0 / float(clip.fps)
    shot_start = 0.0
    for index, length in enumerate(clip.shots):
        t, n = shot_start, 0
        while t < shot_start + length - step / 4:
            times.append((index, t))
            t += step * (0.5 if n % 2 == 0 else 1.5) if clip.vfr else step
            n += 1
        shot_start += length
    return times


def write_clip(path: Path, clip: Clip = Clip()) -> Path:
    """Write ``clip`` to ``path`` (container from the suffix) and return the path."""
    time_base = Fraction(1, 1000) if clip.vfr else 1 / clip.fps
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream(clip.codec, rate=clip.fps, options=dict(clip.options))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, clip.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        out.metadata.update(clip.metadata)
        stream.metadata.update(clip.stream_metadata)
        if clip.sar is not None:
            stream.codec_context.sample_aspect_ratio = clip.sar
        if clip.interlaced:
            stream.codec_context.flags |= av.codec.context.Flags.interlaced_dct
            stream.codec_context.field_order = 2  # AV_FIELD_TT: top field first
        if clip.rotation:
            stream.set_display_rotation(clip.rotation)
        audio: Any = None
        if clip.audio:
            audio = out.add_stream("aac", rate=clip.audio_rate, layout="stereo")
        tracks = [out.add_stream("pcm_s24le", rate=clip.audio_rate, layout="mono") for _ in range(clip.mono_tracks)]
        offset = round(clip.start_time / time_base)
        last_pts = -1
        for shot, t in _frame_times(clip):
            pts = max(last_pts + 1, offset + round(t / time_base))
            last_pts = pts
            frame = av.VideoFrame.from_ndarray(shot_picture(shot, clip.width, clip.height, t), format="rgb24")
            frame = frame.reformat(format=clip.pix_fmt)
            frame.pts = pts
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _write_tone(out, audio, clip)
        for k, track in enumerate(tracks):
            _write_tone(out, track, clip, hz=440 * (k + 1))
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.AudioStream, clip: Clip, hz: float = 440) -> None:
    rate, total = clip.audio_rate, int(clip.duration * clip.audio_rate)
    chunk = 1024
    offset = round(clip.start_time * rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * math.pi * hz * t)).astype(np.float32)
        layout = "mono" if stream.channels == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([tone] * stream.channels), format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = offset + start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def truncate(path: Path, keep_fraction: float = 0.4) -> Path:
    """Cut a file short, as an interrupted copy would leave it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path
