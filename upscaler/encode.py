"""Output codecs: which encoder, container, pixel format and quality settings."""

from __future__ import annotations

import dataclasses
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
    containers: tuple[str, ...] = (".mov", ".mp4", ".mkv")  # output suffixes whose container holds it


_STANDARD = (
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
        containers=(".mov", ".mkv"),  # FFmpeg's MP4 muxer refuses ProRes
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
# The fast tier: the same codec, quality target and pixel formats with faster presets,
# for renders that must keep up with the GPU. Each description states what the tier
# costs against the standard one (bench/encode_tiers.py: 24 frames of generated edits
# at 3840x2160, 2-core EPYC, luma PSNR against the frames that went in); NVENC's p2 is
# its second-fastest preset (no NVENC here to measure).
_FAST_PRESETS = {
    "hevc": (
        {"libx265": "veryfast", "hevc_nvenc": "p2"},
        "HEVC fast tier (x265 veryfast / NVENC p2), CRF 18: 2.2x x265 medium's speed, same size, -0.5 dB",
    ),
    "h264": (
        {"libx264": "veryfast", "h264_nvenc": "p2"},
        "H.264 fast tier (x264 veryfast / NVENC p2), CRF 16: 2.5x x264 medium's speed, 8% smaller, -1.2 dB",
    ),
    "av1": (
        {"libsvtav1": "10", "av1_nvenc": "p2"},
        "AV1 fast tier (SVT-AV1 preset 10 / NVENC p2), CRF 24: 3.4x preset 6's speed, 3% smaller, -0.4 dB",
    ),
}


def _fast(codec: Codec) -> Codec:
    presets, description = _FAST_PRESETS[codec.name]
    options = {encoder: {**opts, "preset": presets[encoder]} for encoder, opts in codec.options.items()}
    return dataclasses.replace(codec, name=f"{codec.name}-fast", options=options, description=description)


CODECS: dict[str, Codec] = {
    c.name: c for codec in _STANDARD for c in (codec, *([_fast(codec)] if codec.name in _FAST_PRESETS else []))
}
DEFAULT_CODEC = "hevc"


# Software encoders whose video can be cut into chunks encoded at once (upscaler.chunks).
# Hardware encoders have few sessions; SVT-AV1 already spreads one stream over every
# core and holds gigabytes per instance at 4K.
CHUNKABLE = frozenset({"libx264", "libx265", "prores_ks"})


@dataclass(frozen=True)
class EncoderChoice:
    codec: Codec
    encoder: str
    pix_fmt: str
    options: dict[str, str]

    @property
    def chunkable(self) -> bool:
        return self.encoder in CHUNKABLE


def chunk_options(choice: EncoderChoice, threads: int) -> dict[str, str]:
    """``choice``'s options for one of several encoders sharing the cores, ``threads`` each."""
    options = dict(choice.options)
    if choice.encoder == "libx265":  # x265 sizes its own thread pool; FFmpeg's thread count does not reach it
        params = options.get("x265-params", "")
        options["x265-params"] = f"{params}:pools={threads}" if params else f"pools={threads}"
    else:
        options["threads"] = str(threads)
    return options


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
