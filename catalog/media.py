"""Facts about media files, read with PyAV, for every package.

The indexer probes files with these functions, the upscaler plans and renders
with them, and the catalog stores what they return, so a fact such as "which
way up is this clip" is derived in exactly one place.

Units: sizes are coded pixels unless a name says ``display`` or ``square``;
times are seconds; rotation is degrees counter-clockwise (the sense of the
container's display matrix and of ``np.rot90``), always 0, 90, 180 or 270.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

# The container tag footage writes into every rendition it makes. The indexer
# reads it to never take a rendition for a master; the upscaler writes it.
RENDITION_TAG = "footage_rendition"
# The tag of every proxy footage makes: the indexer never takes one for footage.
PROXY_TAG = "footage_proxy"

# FFmpeg's AVFieldOrder, as PyAV reports it on a codec context.
FIELD_ORDERS = {0: None, 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a whole file, streamed in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def content_hash(path: Path) -> str:
    """``sha256:<hex>``: the form the catalog and provenance store content hashes in."""
    return "sha256:" + file_sha256(path)


# Recognising a file cheaply, for moves and renames: the indexer compares it on every
# scan, and whoever rewrites a catalogued file (signing one afterwards) records the new one.
_FINGERPRINT_SAMPLE = 64 * 1024  # bytes hashed at each of the fingerprint's sample points
_SAMPLE_POINTS = 5


def quick_fingerprint(path: Path) -> str:
    """``size:blake2b`` of a few blocks spread over the file (start, end and between).

    Cheap enough to compute for every file of a scan, stable under rename and
    move, and different for a file that was re-encoded or cut.
    """
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= _FINGERPRINT_SAMPLE * _SAMPLE_POINTS:
            digest.update(f.read())
        else:
            span = size - _FINGERPRINT_SAMPLE
            for i in range(_SAMPLE_POINTS):
                f.seek(span * i // (_SAMPLE_POINTS - 1))
                digest.update(f.read(_FINGERPRINT_SAMPLE))
    return f"{size}:{digest.hexdigest()}"


def quarter_turns(degrees: float | None) -> int:
    """A display rotation as 0, 90, 180 or 270; anything that is not a quarter turn counts as 0."""
    rotation = int(round(degrees or 0)) % 360
    return rotation if rotation in (90, 180, 270) else 0


@dataclass(frozen=True)
class Picture:
    """A video's picture: coded size, sample (pixel) aspect ratio and rotation."""

    width: int
    height: int
    sample_aspect_ratio: Fraction = Fraction(1)
    rotation: int = 0

    @property
    def turned(self) -> bool:
        """Whether the picture is shown a quarter turn from how it is coded."""
        return self.rotation in (90, 270)

    @property
    def frame_aspect_ratio(self) -> Fraction:
        """Width / height of the coded frame with square pixels, before rotation.

        This is what containers and ffprobe call the display aspect ratio, and
        what the catalog stores as ``dar``.
        """
        return Fraction(self.width, self.height) * self.sample_aspect_ratio

    @property
    def display_aspect_ratio(self) -> Fraction:
        """Width / height as a viewer sees it: square pixels, upright."""
        return 1 / self.frame_aspect_ratio if self.turned else self.frame_aspect_ratio

    @property
    def square_size(self) -> tuple[int, int]:
        """(width, height) with square pixels, before rotation: the height is what was coded."""
        return max(2, round(self.height * self.frame_aspect_ratio)), self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as displayed: square pixels, rotation applied."""
        width, height = self.square_size
        return (height, width) if self.turned else (width, height)


@dataclass(frozen=True)
class VideoFacts:
    """What a video stream and its first decoded frame say about the picture and its timing."""

    picture: Picture
    frame_rate: Fraction | None
    start_time_s: float
    bit_depth: int | None
    field_order: str | None

    @property
    def interlaced(self) -> bool:
        return self.field_order not in (None, "progressive")


def sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's pixel aspect ratio (the container's, else the codec's), 1 when unknown."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 else Fraction(1)


def bit_depth(stream: av.video.stream.VideoStream) -> int | None:
    """Bits per sample of the deepest component of the stream's pixel format."""
    fmt = stream.codec_context.format
    if fmt is None or not fmt.components:
        return None
    return max(c.bits for c in fmt.components)


def start_time_s(stream: av.video.stream.VideoStream) -> float:
    """Timestamp of the stream's first frame, in seconds (0 when the container does not say)."""
    if stream.start_time is None or not stream.time_base:
        return 0.0
    return float(stream.start_time * stream.time_base)


def frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The exact frame rate: the container's average, else FFmpeg's guess, else the base rate."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def field_order(stream: av.video.stream.VideoStream, first: av.VideoFrame) -> str | None:
    """``progressive``, ``tt``, ``bb``, ``tb``, ``bt`` or ``None`` when nothing says.

    Some encoders flag interlaced frames without setting the stream's field
    order; such frames are taken as top field first, as FFmpeg's bwdif does.
    """
    order = FIELD_ORDERS.get(int(stream.codec_context.field_order or 0))
    if first.interlaced_frame and order in (None, "progressive"):
        return "tt"
    return order


def video_facts(stream: av.video.stream.VideoStream, first: av.VideoFrame) -> VideoFacts:
    """The facts of ``stream``; ``first`` is a decoded frame of it (rotation and
    interlacing live on frames, not on streams)."""
    ctx = stream.codec_context
    picture = Picture(ctx.width, ctx.height, sample_aspect_ratio(stream), quarter_turns(first.rotation))
    return VideoFacts(
        picture=picture,
        frame_rate=frame_rate(stream),
        start_time_s=start_time_s(stream),
        bit_depth=bit_depth(stream),
        field_order=field_order(stream, first),
    )


def first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first decodable frame of ``stream`` (``None`` if there is none), leaving the container at the start."""
    container.seek(0)
    try:
        return next(container.decode(stream), None)
    finally:
        container.seek(0)


# FFmpeg answers "Operation not permitted" for encrypted samples it has no key for;
# said as is, it reads like a file-permission problem.
_PROTECTED = (
    "FFmpeg refused to read its video (Operation not permitted), as it does for encrypted (DRM-protected) files"
)


def unreadable_reason(path: Path, exc: av.error.FFmpegError) -> str:
    """Why FFmpeg could not open or decode ``path``, in words a person can act on
    (no errno number, no repeated file name)."""
    try:
        size = os.stat(path).st_size
    except OSError as err:
        return f"cannot read: {err.strerror}"
    if size == 0:
        return "empty file (0 bytes)"
    if exc.errno == errno.EPERM and os.access(path, os.R_OK):
        return _PROTECTED
    if isinstance(exc, av.error.InvalidDataError):
        return f"not a video file FFmpeg can read ({exc.strerror})"
    return f"unreadable ({exc.strerror or exc})"
