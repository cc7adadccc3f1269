"""Output codecs: which encoder, container, pixel format and quality settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from upscaler.errors import PlanError


@dataclass(frozen=True)
class Codec:
    """A user-facing codec choice. ``encoders`` are tried in order (hardware first)."""

    name: str
    encoders: tuple[str, ...]
    suffix: str
    pix_fmt_8bit: str
    pix_fmt_10bit: str
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    codec_tag: str | None = None
    description: str = ""
    containers: tuple[str, ...] = (".mov", ".mp4")  # output suffixes whose container holds it


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec(
            "hevc",
            ("hevc_nvenc", "libx265"),
            ".mov",
            "yuv420p",
            "yuv420p10le",
            {
                "hevc_nvenc": {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": "19"},
                "libx265": {"crf": "18", "preset": "medium", "x265-params": "log-level=error"},
            },
            codec_tag="hvc1",
            description="HEVC (NVENC when it works, else x265), CRF 18 / CQ 19",
        ),
        Codec(
            "h264",
            ("h264_nvenc", "libx264"),
            ".mov",
            "yuv420p",
            "yuv420p10le",
            {
                "h264_nvenc": {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": "17"},
                "libx264": {"crf": "16", "preset": "medium"},
            },
            description="H.264, CRF 16 (10-bit sources: High 10)",
        ),
        Codec(
            "prores",
            ("prores_ks",),
            ".mov",
            "yuv422p10le",
            "yuv422p10le",
            {"prores_ks": {"profile": "3", "vendor": "apl0"}},
            description="ProRes 422 HQ, 10-bit, for editing",
            containers=(".mov",),  # FFmpeg's MP4 muxer refuses ProRes
        ),
        Codec(
            "av1",
            ("av1_nvenc", "libsvtav1"),
            ".mp4",
            "yuv420p",
            "yuv420p10le",
            {"av1_nvenc": {"preset": "p5", "cq": "24"}, "libsvtav1": {"crf": "24", "preset": "6"}},
            description="AV1 (SVT-AV1), CRF 24, for delivery",
        ),
    )
}
DEFAULT_CODEC = "hevc"


@dataclass(frozen=True)
class EncoderChoice:
    codec: Codec
    encoder: str
    pix_fmt: str
    options: dict[str, str]


@functools.cache
def encoder_works(name: str, pix_fmt: str) -> bool:
    """Whether an encoder opens here (NVENC needs a GPU and driver; builds differ)."""
    try:
        ctx: Any = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 144, pix_fmt
        ctx.time_base = Fraction(1, 25)
        if name == "libx265":
            ctx.options = {"x265-params": "log-level=error"}
        ctx.open()
        return True
    except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
        return False


def choose_encoder(name: str, bit_depth: int) -> EncoderChoice:
    """The first working encoder of codec ``name``, keeping 10-bit sources 10-bit."""
    try:
        codec = CODECS[name]
    except KeyError:
        raise PlanError(f"unknown codec {name!r}; choose one of {', '.join(CODECS)}") from None
    pix_fmt = codec.pix_fmt_10bit if bit_depth > 8 else codec.pix_fmt_8bit
    for encoder in codec.encoders:
        if encoder_works(encoder, pix_fmt):
            return EncoderChoice(codec, encoder, pix_fmt, dict(codec.options.get(encoder, {})))
    raise PlanError(f"no {name} encoder for {pix_fmt} works on this machine (tried {', '.join(codec.encoders)})")
