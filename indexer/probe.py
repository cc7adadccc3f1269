"""Media facts of a file, read with PyAV (demuxing only, plus one decoded frame)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from indexer.errors import MediaError

# FFmpeg's AVFieldOrder, as PyAV reports it.
FIELD_ORDERS = {0: None, 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
# Packets looked at to decide whether the frame rate is variable.
_VFR_PACKETS = 240
# Tag footage writes into renditions it makes, so it never takes them as masters.
RENDITION_TAG = "footage_rendition"


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

    ``display_width``/``display_height`` are what a viewer sees: non-square
    pixels made square and rotation applied.
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

    @property
    def interlaced(self) -> bool:
        return self.field_order not in (None, "progressive")

    @property
    def is_footage_rendition(self) -> bool:
        return RENDITION_TAG in {k.lower() for k in self.tags}

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) in square pixels as displayed, after rotation."""
        width = max(2, round(self.height * self.display_aspect_ratio))
        return (self.height, width) if self.rotation in (90, 270) else (width, self.height)


# FFmpeg's colour enums (pixfmt.h) by number, named as ffprobe names them; 2 is "unspecified".
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
             9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
             16: "smpte2084", 18: "arib-std-b67"}
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
            8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
RANGES = {1: "tv", 2: "pc"}

# First bytes of containers, to tell "damaged" from "not a video at all".
_SIGNATURES = ((4, b"ftyp", "MP4/QuickTime"), (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
               (0, b"RIFF", "AVI"), (0, b"\x00\x00\x01\xba", "MPEG-PS"), (0, b"\x06\x0e\x2b\x34", "MXF"))


def _named(table: dict[int, str], value: Any) -> str | None:
    return table.get(int(value)) if value is not None else None


def _container_signature(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(16)
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _bit_depth(stream: av.video.stream.VideoStream) -> int | None:
    fmt = stream.codec_context.format
    if fmt is None or not fmt.components:
        return None
    return max(c.bits for c in fmt.components)


def _is_vfr(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> bool:
    pts = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            pts.append(packet.pts)
        if len(pts) >= _VFR_PACKETS:
            break
    pts.sort()
    deltas = {b - a for a, b in zip(pts, pts[1:]) if b > a}
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
    tags = {str(k): str(v) for k, v in container.metadata.items()}
    tags.update({str(k): str(v) for k, v in stream.metadata.items()})
    return tags


def probe(path: Path) -> MediaInfo:
    """Read the media facts of ``path``; raise ``MediaError`` saying why it is not usable footage."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise MediaError(f"{path}: cannot read: {exc.strerror}") from exc
    if size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            return _probe_open(path, container)
    except av.error.InvalidDataError as exc:
        kind = _container_signature(path)
        if kind is not None:
            raise MediaError(f"{path}: damaged or truncated {kind} file ({exc.strerror})") from exc
        raise MediaError(f"{path}: not a video file FFmpeg can read ({exc.strerror})") from exc
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: unreadable ({exc.strerror or exc})") from exc


def _probe_open(path: Path, container: av.container.InputContainer) -> MediaInfo:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise MediaError(f"{path}: no video stream (holds {', '.join(kinds)})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if _encrypted(container, stream):
        raise MediaError(f"{path}: encrypted (DRM-protected) video cannot be indexed")
    if not ctx.width or not ctx.height:
        raise MediaError(f"{path}: video stream has no picture size (truncated or damaged)")

    audio = tuple(
        AudioStreamInfo(
            index=a.index,
            codec=a.codec_context.name,
            channels=a.codec_context.channels,
            sample_rate=a.codec_context.sample_rate,
            language=a.metadata.get("language"),
        )
        for a in container.streams.audio
    )
    tags = _tags(container, stream)
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio or Fraction(1)
    sar = Fraction(sar) if sar and sar > 0 else Fraction(1)
    dar = Fraction(ctx.width * sar.numerator, ctx.height * sar.denominator)

    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    start = (
        float(stream.start_time * stream.time_base)
        if stream.start_time is not None and stream.time_base
        else 0.0
    )

    # Decoding one frame proves the stream is decodable and gives the facts
    # that live on frames (rotation, interlacing flags).
    container.seek(0)
    rotation, interlaced_frame = 0, False
    try:
        for frame in container.decode(stream):
            rotation = int(round(frame.rotation or 0)) % 360
            interlaced_frame = bool(frame.interlaced_frame)
            break
        else:
            raise MediaError(f"{path}: no decodable video frame (truncated or damaged)")
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: video does not decode ({exc.strerror or exc})") from exc

    container.seek(0)
    vfr = _is_vfr(container, stream)
    end = _end_time(container, stream)
    duration = max(0.0, end - start) if end is not None else None

    field_order = FIELD_ORDERS.get(int(ctx.field_order or 0))
    if interlaced_frame and field_order in (None, "progressive"):
        field_order = "tt"

    return MediaInfo(
        container=container.format.name,
        video_codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        sample_aspect_ratio=sar,
        display_aspect_ratio=dar,
        frame_rate=Fraction(rate) if rate else None,
        variable_frame_rate=vfr,
        duration_s=duration,
        start_time_s=start,
        pixel_format=ctx.pix_fmt,
        bit_depth=_bit_depth(stream),
        color_primaries=_named(PRIMARIES, ctx.color_primaries),
        color_transfer=_named(TRANSFERS, ctx.color_trc),
        color_matrix=_named(MATRICES, ctx.colorspace),
        color_range=_named(RANGES, ctx.color_range),
        field_order=field_order,
        rotation=rotation if rotation in (0, 90, 180, 270) else 0,
        timecode=tags.get("timecode"),
        audio_streams=audio,
        tags=tags,
    )
