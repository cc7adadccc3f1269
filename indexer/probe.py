"""Media facts of a file, read with PyAV (demuxing only, plus one decoded frame)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from catalog.media import PROXY_TAG, RENDITION_TAG, Picture, first_frame, unreadable_reason, video_facts
from indexer.errors import UNREADABLE, MediaError

# A file whose video ends this much (seconds, and share of the whole) before its
# header's duration was cut short; smaller gaps are containers' own rounding.
_SHORTFALL_S = 1.0
_SHORTFALL_SHARE = 0.05
# Packets looked at to decide whether the frame rate is variable.
_VFR_PACKETS = 240


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class MediaInfo:
    """What a video file holds. Sizes are coded pixels; times are seconds.

    ``display_aspect_ratio`` is the coded frame's, before rotation, as
    containers state it (and the catalog stores it); ``display_size`` is what
    a viewer sees: non-square pixels made square and rotation applied.
    """

    container: str
    video_codec: str
    width: int
    height: int
    sample_aspect_ratio: Fraction
    display_aspect_ratio: Fraction
    frame_rate: Fraction | None
    variable_frame_rate: bool
    duration_s: float | None
    start_time_s: float
    pixel_format: str | None
    bit_depth: int | None
    color_primaries: str | None
    color_transfer: str | None
    color_matrix: str | None
    color_range: str | None
    field_order: str | None
    rotation: int
    timecode: str | None
    audio_streams: tuple[AudioStreamInfo, ...]
    tags: dict[str, str]
    declared_duration_s: float | None = None  # what the container's header says, if anything

    @property
    def shortfall(self) -> str | None:
        """Why the file holds less than its header promises (a copy cut short), or None."""
        if self.declared_duration_s is None or self.duration_s is None:
            return None
        missing = self.declared_duration_s - self.duration_s
        if missing <= max(_SHORTFALL_S, _SHORTFALL_SHARE * self.declared_duration_s):
            return None
        return (
            f"truncated: {self.duration_s:.1f} s of video decode, the container declares "
            f"{self.declared_duration_s:.1f} s"
        )

    @property
    def interlaced(self) -> bool:
        return self.field_order not in (None, "progressive")

    @property
    def is_footage_rendition(self) -> bool:
        return RENDITION_TAG in {k.lower() for k in self.tags}

    @property
    def is_footage_proxy(self) -> bool:
        return PROXY_TAG in {k.lower() for k in self.tags}

    @property
    def picture(self) -> Picture:
        return Picture(self.width, self.height, self.sample_aspect_ratio, self.rotation)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) in square pixels as displayed, after rotation."""
        return self.picture.display_size


# FFmpeg's colour enums (pixfmt.h) by number, named as ffprobe names them; 2 is "unspecified".
PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
TRANSFERS = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    11: "iec61966-2-4",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
MATRICES = {
    0: "gbr",
    1: "bt709",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}
RANGES = {1: "tv", 2: "pc"}

# First bytes of containers, to tell "damaged" from "not a video at all".
_SIGNATURES = (
    (4, b"ftyp", "MP4/QuickTime"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x06\x0e\x2b\x34", "MXF"),
)


def _named(table: dict[int, str], value: Any) -> str | None:
    return table.get(int(value)) if value is not None else None


def _container_signature(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(16)
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _is_vfr(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    pts = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            pts.append(packet.pts)
        if len(pts) >= _VFR_PACKETS:
            break
    pts.sort()
    deltas = {b - a for a, b in zip(pts, pts[1:], strict=False) if b > a}
    if len(deltas) <= 1:
        return False
    # Rounding of a fixed rate into the time base gives deltas one tick apart.
    return max(deltas) - min(deltas) > 1


def _encrypted(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    """Common-encryption (CENC) samples carry encryption side data on their packets."""
    for packet in container.demux(stream):
        if packet.size:
            return bool(packet.has_sidedata("encryption_info"))
    return False


def _end_time(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds at which the last video frame ends, read from the packets near the end.

    Containers disagree on whether their own duration counts from zero or
    from the first timestamp, so the packets are the only honest answer.
    """
    tb = stream.time_base
    if tb is None:
        return None
    if container.duration:
        try:
            container.seek(max(0, container.duration - 3 * av.time_base), backward=True)
        except av.error.FFmpegError:
            container.seek(0)
    end = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        stop = packet.pts + (packet.duration or 0)
        end = stop if end is None else max(end, stop)
    return float(end * tb) if end is not None else None


def _tags(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> dict[str, str]:
    """The container's tags and the video stream's over them; the other streams' (a
    timecode track's reel name) only where neither says."""
    tags: dict[str, str] = {}
    for other in container.streams:
        if other.index != stream.index:
            tags.update({str(k): str(v) for k, v in other.metadata.items()})
    tags.update({str(k): str(v) for k, v in container.metadata.items()})
    tags.update({str(k): str(v) for k, v in stream.metadata.items()})
    return tags


def probe(path: Path) -> MediaInfo:
    """Read the media facts of ``path``; raise ``MediaError`` saying why it is not usable footage."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise MediaError(f"{path}{UNREADABLE}{exc.strerror}") from exc
    if size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            return _probe_open(path, container)
    except av.error.InvalidDataError as exc:
        kind = _container_signature(path)
        if kind is not None:
            raise MediaError(f"{path}: damaged or truncated {kind} file ({exc.strerror})") from exc
        raise MediaError(f"{path}: {unreadable_reason(path, exc)}") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: {unreadable_reason(path, exc)}") from exc


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream, if it is one footage can read at all."""
    if not container.streams.video:
        kinds: list[str] = sorted({s.type for s in container.streams}) or ["no streams"]
        raise MediaError(f"{path}: no video stream (holds {', '.join(kinds)})")
    stream = container.streams.video[0]
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        # FFmpeg reads a PNG or JPEG as a one-frame "video", whatever its file is called.
        raise MediaError(f"{path}: a still image ({stream.codec_context.name}), not video")
    if _encrypted(container, stream):
        raise MediaError(f"{path}: encrypted (DRM-protected) video cannot be indexed")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise MediaError(f"{path}: video stream has no picture size (truncated or damaged)")
    return stream


def _decoded_first_frame(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> av.VideoFrame:
    """One decoded frame: proof that the stream decodes, and the facts that live on frames."""
    try:
        frame = first_frame(container, stream)
    except av.error.FFmpegError as exc:
        if exc.errno == errno.EPERM:  # an encrypted stream with no packets to tell by, e.g. an init segment
            raise MediaError(f"{path}: {unreadable_reason(path, exc)}") from exc
        raise MediaError(f"{path}: video does not decode ({exc.strerror or exc})") from exc
    if frame is None:
        raise MediaError(f"{path}: no decodable video frame (truncated or damaged)")
    return frame


def _audio_streams(container: av.container.InputContainer) -> tuple[AudioStreamInfo, ...]:
    return tuple(
        AudioStreamInfo(
            index=a.index,
            codec=a.codec_context.name,
            channels=a.codec_context.channels,
            sample_rate=a.codec_context.sample_rate,
            language=a.metadata.get("language"),
        )
        for a in container.streams.audio
    )


def _probe_open(path: Path, container: av.container.InputContainer) -> MediaInfo:
    stream = _video_stream(path, container)
    facts = video_facts(stream, _decoded_first_frame(path, container, stream))
    vfr = _is_vfr(container, stream)
    end = _end_time(container, stream)
    ctx = stream.codec_context
    tags = _tags(container, stream)
    return MediaInfo(
        container=container.format.name,
        video_codec=ctx.name,
        width=facts.picture.width,
        height=facts.picture.height,
        sample_aspect_ratio=facts.picture.sample_aspect_ratio,
        display_aspect_ratio=facts.picture.frame_aspect_ratio,
        frame_rate=facts.frame_rate,
        variable_frame_rate=vfr,
        duration_s=max(0.0, end - facts.start_time_s) if end is not None else None,
        start_time_s=facts.start_time_s,
        pixel_format=ctx.pix_fmt,
        bit_depth=facts.bit_depth,
        color_primaries=_named(PRIMARIES, ctx.color_primaries),
        color_transfer=_named(TRANSFERS, ctx.color_trc),
        color_matrix=_named(MATRICES, ctx.colorspace),
        color_range=_named(RANGES, ctx.color_range),
        field_order=facts.field_order,
        rotation=facts.picture.rotation,
        timecode=tags.get("timecode"),
        audio_streams=_audio_streams(container),
        tags=tags,
        declared_duration_s=container.duration / av.time_base if container.duration else None,
    )
