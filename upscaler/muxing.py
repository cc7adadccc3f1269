"""The rendition's container: which streams it carries, how it is opened, and its check."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from upscaler.encode import chunk_options
from upscaler.errors import RenderError
from upscaler.pipeline import Output, PipelineSpec, StreamPlan

# Audio the output container holds as it is and players play from it; anything else is
# transcoded. (FLAC in MP4 is valid but many players refuse it.)
COPYABLE_AUDIO = {
    ".mov": {"aac", "alac", "mp3", "ac3", "eac3"},
    ".mp4": {"aac", "alac", "mp3", "ac3", "eac3", "opus"},
    ".mkv": {
        *("aac", "alac", "mp2", "mp3", "ac3", "eac3", "opus", "flac", "vorbis", "dts", "truehd"),
        *("pcm_s16le", "pcm_s24le"),
    },
}
# In QuickTime, where it is at home, lossless PCM: nothing of the master's sound is lost.
# In MP4, AAC-LC at this rate per channel (256 kb/s stereo), which every player takes.
# In Matroska, FLAC: lossless and smaller than PCM.
TRANSCODE_AUDIO = {".mov": "pcm_s24le", ".mp4": "aac", ".mkv": "flac"}
# Text subtitles become the text track each container carries: mov_text in QuickTime and
# MP4, ASS in Matroska (which keeps the styling).
SUBTITLE_CODEC = {".mov": "mov_text", ".mp4": "mov_text", ".mkv": "ass"}
_MUXERS = {".mov": "mov", ".mp4": "mp4", ".mkv": "matroska"}
AAC_BITS_PER_CHANNEL = 128_000
# Text subtitles, converted to the text track of the output container (SUBTITLE_CODEC).
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"}
# Container tags that describe the master's muxer, not its content.
_MUXER_TAGS = ("encoder", "major_brand", "minor_version", "compatible_brands")
# Video stream tags worth keeping: an editor's timeline reads them.
_VIDEO_TAGS = ("language", "timecode", "handler_name")
# A file's duration may differ from the master's by container rounding: this
# many frame durations, plus a fixed slack for edit lists (seconds).
_DURATION_FRAMES_SLACK = 1.5
_DURATION_SLACK_S = 0.05


def plan_streams(master: av.container.InputContainer, suffix: str) -> StreamPlan:
    """Which of the master's streams the ``suffix`` container copies, transcodes or leaves out (and why)."""
    copied: list[int] = []
    transcoded: list[int] = []
    subtitles: list[int] = []
    dropped: list[str] = []
    for stream in master.streams:
        if stream.type == "video":
            if stream.index != master.streams.video[0].index:
                dropped.append(
                    f"#{stream.index} video ({stream.codec_context.name}): only the first video stream is upscaled"
                )
        elif stream.type == "audio":
            (copied if stream.codec_context.name in COPYABLE_AUDIO[suffix] else transcoded).append(stream.index)
        elif stream.type == "subtitle" and stream.codec_context.name == SUBTITLE_CODEC[suffix]:
            copied.append(stream.index)
        elif stream.type == "subtitle" and stream.codec_context.name in _TEXT_SUBTITLES:
            subtitles.append(stream.index)
        else:
            name = stream.codec_context.name if stream.codec_context else "data"
            dropped.append(f"#{stream.index} {stream.type} ({name}): the output container cannot hold it")
    codec = TRANSCODE_AUDIO[suffix]
    described = tuple(_transcoded_as(codec, master.streams[i].codec_context) for i in transcoded)
    audio = sum(1 for stream in master.streams.audio)
    return StreamPlan(
        tuple(copied),
        tuple(transcoded),
        codec,
        tuple(dropped),
        tuple(subtitles),
        audio,
        described,
        SUBTITLE_CODEC[suffix],
    )


def _transcoded_as(codec: str, source: Any) -> str:
    channels = source.layout.nb_channels
    return f"aac {AAC_BITS_PER_CHANNEL * channels // 1000} kb/s" if codec == "aac" else codec


def _configure(ctx: Any, spec: PipelineSpec) -> None:
    """The video encoder's settings: the stream's own and every chunk encoder's alike."""
    ctx.width, ctx.height, ctx.pix_fmt = spec.plan.width, spec.plan.height, spec.encoder.pix_fmt
    ctx.time_base = spec.time_base
    if spec.rate:
        ctx.framerate = spec.rate
    ctx.sample_aspect_ratio = Fraction(1)
    ctx.color_primaries, ctx.color_trc = spec.tags.primaries, spec.tags.transfer
    ctx.colorspace, ctx.color_range = spec.tags.matrix, spec.tags.range


def _chunk_encoder(spec: PipelineSpec, flags: int, options: dict[str, str]) -> Any:
    """An encoder for one chunk (upscaler.chunks): the stream's settings, header flags and options."""
    ctx: Any = av.CodecContext.create(spec.encoder.encoder, "w")
    _configure(ctx, spec)
    ctx.flags = flags
    ctx.options = dict(options)  # opening takes the options it uses out of the dict it is given
    ctx.open()
    return ctx


def _video_stream(
    out: av.container.OutputContainer,
    spec: PipelineSpec,
    master: av.container.InputContainer,
    options: dict[str, str],
    quicktime: bool,
) -> Any:
    vs: Any = out.add_stream(spec.encoder.encoder, rate=spec.rate, options=dict(options))
    vs.time_base = spec.time_base
    ctx = vs.codec_context
    _configure(ctx, spec)
    if spec.encoder.codec.codec_tag and quicktime:  # a QuickTime sample entry: Matroska has none
        ctx.codec_tag = spec.encoder.codec.codec_tag
    source_video = master.streams.video[0]
    for key in _VIDEO_TAGS:
        if key in source_video.metadata:
            vs.metadata[key] = source_video.metadata[key]
    return vs


def _other_streams(
    out: av.container.OutputContainer, streams: StreamPlan, master: av.container.InputContainer
) -> dict[int, Any]:
    others: dict[int, Any] = {}
    for index in streams.copied:
        others[index] = out.add_stream_from_template(master.streams[index])
    for index in streams.transcoded:
        ctx: Any = master.streams[index].codec_context
        others[index] = out.add_stream(streams.transcode_codec, rate=ctx.sample_rate, layout=ctx.layout.name)
        if streams.transcode_codec == "aac":
            others[index].bit_rate = AAC_BITS_PER_CHANNEL * ctx.layout.nb_channels
        others[index].metadata.update(master.streams[index].metadata)
    for index in streams.subtitles:
        others[index] = out.add_stream(streams.subtitle_codec)
        others[index].time_base = master.streams[index].time_base
        # The encoder opens with the header when the output starts; the text decoder makes
        # its (ASS) style header when it opens.
        decoder: Any = master.streams[index].codec_context
        decoder.open()
        others[index].codec_context.subtitle_header = decoder.subtitle_header
        others[index].metadata.update(master.streams[index].metadata)
    return others


def open_output(
    path: Path, suffix: str, spec: PipelineSpec, master: av.container.InputContainer, tags: dict[str, str]
) -> Output:
    """Open ``path`` as a ``suffix`` (.mov, .mp4 or .mkv) container with the master's metadata and
    chapters plus ``tags``."""
    quicktime = suffix != ".mkv"
    options = {"movflags": "use_metadata_tags+write_colr"} if quicktime else {}
    out = av.open(str(path), "w", format=_MUXERS[suffix], options=options)
    out.metadata.update({k: v for k, v in master.metadata.items() if k.lower() not in _MUXER_TAGS})
    out.metadata.update(tags)
    # Encoded in chunks, the stream's header comes from an encoder set up as the chunks'
    # are, with their share of the cores (x265 writes its options into the header), so the
    # check that they match is exact.
    chunked = spec.encode_chunks > 1
    encoder_options = chunk_options(spec.encoder, spec.encode_threads) if chunked else spec.encoder.options
    video = _video_stream(out, spec, master, encoder_options, quicktime)
    chunk_encoder = None
    if chunked:
        chunk_encoder = functools.partial(_chunk_encoder, spec, video.codec_context.flags, encoder_options)
    output = Output(out, video, _other_streams(out, spec.streams, master), chunk_encoder)
    try:
        chapters = master.chapters()
        if chapters:
            out.set_chapters(chapters)
    except (AttributeError, av.error.FFmpegError, ValueError):
        pass  # a PyAV without chapter support, or chapters the muxer refuses: listed nowhere, not fatal
    return output


def verify_output(path: Path, frames: int, duration_s: float | None, frame_s: float, audio_streams: int) -> float:
    """Check the written file: every frame there, duration as the master's, audio present; its duration."""
    with av.open(str(path)) as check:
        video = check.streams.video[0]
        packets = sum(1 for p in check.demux(video) if p.size)
        got_audio = len(check.streams.audio)
        duration = float(video.duration * video.time_base) if video.duration and video.time_base else None
    if packets != frames:
        raise RenderError(f"verification failed: {packets} frames written, {frames} decoded")
    if got_audio != audio_streams:
        raise RenderError(f"verification failed: {got_audio} audio streams written, {audio_streams} expected")
    slack = _DURATION_FRAMES_SLACK * frame_s + _DURATION_SLACK_S
    if duration is not None and duration_s is not None and abs(duration - duration_s) > slack:
        raise RenderError(f"verification failed: duration {duration:.3f} s, master {duration_s:.3f} s")
    return duration or 0.0
