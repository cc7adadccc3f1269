"""Colour-correct conversion between decoded YUV frames and RGB tensors.

Frames are converted with the source's own matrix and range. Where a file does
not say, footage assumes what players assume (BT.601 below 720 lines, BT.709
from 720 up; limited range for YUV) and then writes that choice explicitly
on the output, so a UHD player never reinterprets an SD source's colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

# FFmpeg AVColorSpace -> swscale matrix (6, SMPTE 170M, has BT.601's matrix).
_MATRICES = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
_UNSPECIFIED = 2
# FFmpeg enums: primaries/transfer BT.709 = 1, SMPTE 170M = 6; matrix BT.709 = 1, SMPTE 170M = 6.
_SD = (6, 6, 6)
_HD = (1, 1, 1)
# (ACCURATE_RND is left out: with it this swscale ignores the limited-range scaling.)
_ROUND = Interpolation.BICUBIC


@dataclass(frozen=True)
class ColourTags:
    """FFmpeg enum values (AVColorPrimaries, AVColorTransferCharacteristic, AVColorSpace, AVColorRange)."""

    primaries: int
    transfer: int
    matrix: int
    range: int

    @property
    def swscale_matrix(self) -> Colorspace:
        return _MATRICES.get(self.matrix, Colorspace.ITU709)

    @property
    def swscale_range(self) -> ColorRange:
        return ColorRange.JPEG if self.range == 2 else ColorRange.MPEG


def source_tags(ctx: av.video.codeccontext.VideoCodecContext, first: av.VideoFrame) -> ColourTags:
    """The colour a master is in: its own tags, else what players assume for its size."""
    defaults = _SD if ctx.height < 720 else _HD

    def pick(frame_value: int | None, ctx_value: int | None, default: int) -> int:
        # 0 is "reserved" for primaries/transfer; 2 is "unspecified" everywhere.
        for value in (frame_value, ctx_value):
            if value is not None and int(value) not in (0, _UNSPECIFIED):
                return int(value)
        return default

    full = (first.format.name or "").startswith("yuvj")
    colour_range = int(first.color_range or ctx.color_range or 0) or (2 if full else 1)
    return ColourTags(
        primaries=pick(first.color_primaries, ctx.color_primaries, defaults[0]),
        transfer=pick(first.color_trc, ctx.color_trc, defaults[1]),
        matrix=pick(first.colorspace, ctx.colorspace, defaults[2]),
        range=colour_range,
    )


def rgb_format(bit_depth: int) -> str:
    """Packed RGB wide enough for the source: 8 bits per channel, or 16 for deeper sources."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


def to_rgb(frame: av.VideoFrame, tags: ColourTags, fmt: str, reformatter: VideoReformatter) -> np.ndarray:
    """RGB (H, W, 3) uint8 or uint16 of a decoded frame, converted with the source's matrix and range."""
    rgb = reformatter.reformat(
        frame,
        format=fmt,
        src_colorspace=tags.swscale_matrix,
        src_color_range=tags.swscale_range,
        dst_color_range=ColorRange.JPEG,
        interpolation=_ROUND,
    )
    return rgb.to_ndarray()


def from_rgb(
    pixels: np.ndarray, fmt: str, pix_fmt: str, tags: ColourTags, reformatter: VideoReformatter
) -> av.VideoFrame:
    """An encoder-ready frame in ``pix_fmt`` from RGB pixels, in the same matrix and range, tagged."""
    frame = av.VideoFrame.from_ndarray(pixels, format=fmt)
    out = reformatter.reformat(
        frame,
        format=pix_fmt,
        dst_colorspace=tags.swscale_matrix,
        src_color_range=ColorRange.JPEG,
        dst_color_range=tags.swscale_range,
        interpolation=_ROUND,
        dst_color_trc=tags.transfer,
        dst_color_primaries=tags.primaries,
    )
    out.colorspace = tags.matrix
    out.color_range = tags.range
    return out
