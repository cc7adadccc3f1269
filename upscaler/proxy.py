"""Making a proxy: a small H.264 file every browser and editing system plays, from any version.

One pass with FFmpeg's own filters: decode, deinterlace (bwdif, a frame per frame, so
timestamps stay), turn upright, scale to at most 1280x720 display size with square pixels,
4:2:0 8-bit; then x264 High with a keyframe every second (scrubbing), AAC stereo (a
camera's first two mono tracks as left and right), fast start, the source's start timecode
and every frame's own timestamp (VFR kept). Written under a hidden partial name and renamed
when checked, so no half proxy is ever visible. The source is only read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from catalog.media import PROXY_TAG, VideoFacts, unreadable_reason, video_facts
from upscaler.errors import RenderError
from upscaler.files import opened_video, partial_path, pull_all, remove_partials
from upscaler.provenance import NOTICE, now

# x264: CRF for a constant look, capped so a proxy stays small on grainy footage
# (bench/proxy_speed.py: size and PSNR on the bench's footage).
_ENCODER = "libx264"


@dataclass(frozen=True)
class ProxyFormat:
    """How proxies are made: the box they fit in and the encoder's settings."""

    max_width: int = 1280
    max_height: int = 720
    crf: int = 23
    max_bitrate: int = 2_300_000  # with 128 kb/s of audio and the container, a file stays under 2.5 Mb/s
    preset: str = "veryfast"
    audio_bitrate: int = 128_000
    audio_rate: int = 48_000


@dataclass(frozen=True)
class ProxyResult:
    path: Path
    width: int
    height: int
    frames: int
    duration_s: float
    size_bytes: int
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)


class ProxyCancelled(RenderError):
    """The proxy was asked to stop; nothing was written."""


def proxy_size(display: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The display size fitted into ``box`` (never enlarged), even both ways for 4:2:0."""
    width, height = display
    scale = min(Fraction(1), Fraction(box[0], width), Fraction(box[1], height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _turn(rotation: int) -> list[tuple[str, str]]:
    # Rotation is counter-clockwise (catalog.media); FFmpeg's transpose 2 turns that way.
    return {90: [("transpose", "2")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "1")]}.get(rotation, [])


def _graph(stream: av.video.stream.VideoStream, facts: VideoFacts, size: tuple[int, int]) -> av.filter.Graph:
    graph = av.filter.Graph()
    chain: list[tuple[str, str]] = []
    if facts.interlaced:
        chain.append(("bwdif", "mode=send_frame:parity=auto:deint=all"))
    chain += _turn(facts.picture.rotation)
    chain += [
        ("scale", f"{size[0]}:{size[1]}:flags=bicubic"),
        ("setsar", "1"),
        ("format", "yuv420p"),
    ]
    node = graph.add_buffer(template=stream)
    for name, args in chain:
        step = graph.add(name, args) if args else graph.add(name)
        node.link_to(step)
        node = step
    node.link_to(graph.add("buffersink"))
    graph.configure()
    return graph


def _tags(source: av.container.InputContainer, made_from: dict[str, Any]) -> dict[str, str]:
    name = made_from.get("name", "")
    ai = made_from.get("kind") == "rendition"
    comment = f"Proxy of {name} made by footage; for viewing and editing, not delivery."
    if ai:
        comment += " " + NOTICE
    tags = {k: str(v) for k, v in source.metadata.items() if k.lower() in ("title", "reel_name", "creation_time")}
    tags.update({"comment": comment, PROXY_TAG: "1", "footage_proxy_of": str(made_from.get("content_hash", ""))})
    return tags


def _audio_said(src: _Source, fmt: ProxyFormat) -> str | None:
    if not src.audio:
        return None
    said = f"aac stereo {fmt.audio_bitrate // 1000} kb/s"
    return said + " (mono tracks 1 and 2 as left and right)" if len(src.audio) == 2 else said


def make_proxy(
    source: Path,
    output: Path,
    made_from: dict[str, Any],
    fmt: ProxyFormat = ProxyFormat(),
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> ProxyResult:
    """Write the proxy of ``source`` at ``output`` (an .mp4). ``made_from`` describes the source
    (asset id, kind, name, content hash) for the provenance."""
    started = time.perf_counter()
    remove_partials(output)
    tmp = partial_path(output, os.getpid())
    try:
        frames, src = _transcode(source, tmp, made_from, fmt, progress, cancel)
        duration = _check(tmp, frames)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    provenance = {
        "made_from": made_from,
        "made_at": now(),
        "format": {
            "container": "mp4",
            "video": f"h264 high 8-bit 4:2:0 {src.size[0]}x{src.size[1]}",
            "keyframe_every_s": 1,
            "crf": fmt.crf,
            "max_bitrate": fmt.max_bitrate,
            "audio": _audio_said(src, fmt),
        },
        "processing": {
            "deinterlaced": src.facts.interlaced,
            "rotation_applied": src.facts.picture.rotation,
            "timecode": src.timecode,
            "frame_rate": str(src.rate),
        },
        "encoder": f"{_ENCODER} (FFmpeg {'.'.join(str(p) for p in av.library_versions['libavcodec'])})",
        "seconds": round(seconds, 3),
    }
    return ProxyResult(output, *src.size, frames, duration, output.stat().st_size, seconds, provenance)


def _open(source: Path) -> av.container.InputContainer:
    try:
        return av.open(str(source), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise RenderError(f"{source}: {unreadable_reason(source, exc)}") from exc


@dataclass(frozen=True)
class _Source:
    """What the proxy takes from its source."""

    stream: av.video.stream.VideoStream
    audio: tuple[av.audio.stream.AudioStream, ...]  # what the proxy's stereo is made of
    facts: VideoFacts
    size: tuple[int, int]
    rate: Fraction
    time_base: Fraction
    timecode: str | None
    duration_s: float | None


def _inspect(container: av.container.InputContainer, source: Path, fmt: ProxyFormat) -> _Source:
    stream, first = opened_video(container, source)
    facts = video_facts(stream, first)
    return _Source(
        stream=stream,
        audio=_stereo_from(container),
        facts=facts,
        size=proxy_size(facts.picture.display_size, (fmt.max_width, fmt.max_height)),
        rate=facts.frame_rate or Fraction(25),
        time_base=stream.time_base or Fraction(1, 90000),
        timecode=stream.metadata.get("timecode") or container.metadata.get("timecode"),
        duration_s=float(container.duration / av.time_base) if container.duration else None,
    )


def _stereo_from(container: av.container.InputContainer) -> tuple[av.audio.stream.AudioStream, ...]:
    """The audio the proxy's stereo is made of: the first track, or the first two where each
    holds one channel, as cameras and MXF record a channel a track (the second is the second
    microphone, which the first track alone would drop)."""
    tracks = list(container.streams.audio)
    if len(tracks) >= 2 and all(t.channels == 1 and t.sample_rate == tracks[0].sample_rate for t in tracks[:2]):
        return (tracks[0], tracks[1])
    return tuple(tracks[:1])


def _stereo_graph(left: av.audio.stream.AudioStream, right: av.audio.stream.AudioStream) -> av.filter.Graph:
    """Two mono tracks joined as left and right."""
    graph = av.filter.Graph()
    join = graph.add("join", "inputs=2:channel_layout=stereo:map=0.0-FL|1.0-FR")
    for at, track in enumerate((left, right)):
        # Said to be mono: a MOV's PCM track often leaves its one channel's position unset,
        # which join cannot map.
        source = graph.add_abuffer(
            sample_rate=track.sample_rate, format=track.format, layout="mono", time_base=track.time_base
        )
        source.link_to(join, 0, at)
    join.link_to(graph.add("abuffersink"))
    graph.configure()
    return graph


class _Sound:
    """The proxy's stereo track: the source's track encoded, or its two mono tracks joined first."""

    def __init__(
        self, out: av.container.OutputContainer, tracks: tuple[av.audio.stream.AudioStream, ...], fmt: ProxyFormat
    ):
        self._out = out
        self._stream: Any = out.add_stream("aac", rate=fmt.audio_rate, layout="stereo")
        self._stream.bit_rate = fmt.audio_bitrate
        self._join = _stereo_graph(*tracks) if len(tracks) == 2 else None
        self._at = {track.index: at for at, track in enumerate(tracks)}

    def add(self, packet: av.Packet) -> None:
        for decoded in packet.decode():
            if not isinstance(decoded, av.AudioFrame):
                continue
            if self._join is None:
                self._encode(decoded)
                continue
            self._join.push(decoded, at=self._at[packet.stream.index])
            for joined in pull_all(self._join, av.AudioFrame):
                self._encode(joined)

    def finish(self) -> None:
        if self._join is not None:
            self._join.push(None)
            for joined in pull_all(self._join, av.AudioFrame):
                self._encode(joined)
        self._out.mux(self._stream.encode(None))

    def _encode(self, frame: av.AudioFrame) -> None:
        self._out.mux(self._stream.encode(frame))


def _video_out(out: av.container.OutputContainer, src: _Source, fmt: ProxyFormat) -> Any:
    gop = max(1, round(src.rate))  # a keyframe every second: scrubbing lands on one
    video: Any = out.add_stream(
        _ENCODER,
        rate=src.rate,
        options={
            "crf": str(fmt.crf),
            "preset": fmt.preset,
            "profile": "high",
            "g": str(gop),
            "keyint_min": str(gop),
            "maxrate": str(fmt.max_bitrate),
            "bufsize": str(2 * fmt.max_bitrate),
        },
    )
    video.width, video.height, video.pix_fmt = src.size[0], src.size[1], "yuv420p"
    # The source's time base: every frame keeps its own timestamp (VFR stays VFR).
    video.time_base = video.codec_context.time_base = src.time_base
    for name in ("color_primaries", "color_trc", "colorspace", "color_range"):
        value = getattr(src.stream.codec_context, name, None)
        if value:
            setattr(video.codec_context, name, value)
    if src.timecode:
        video.metadata["timecode"] = src.timecode
    return video


def _transcode(
    source: Path,
    tmp: Path,
    made_from: dict[str, Any],
    fmt: ProxyFormat,
    progress: Callable[[float], None] | None,
    cancel: threading.Event | None,
) -> tuple[int, _Source]:
    with _open(source) as container:
        src = _inspect(container, source, fmt)
        options = {"movflags": "faststart+use_metadata_tags", "write_tmcd": "1" if src.timecode else "0"}
        with av.open(str(tmp), "w", format="mp4", options=options) as out:
            out.metadata.update(_tags(container, made_from))
            video = _video_out(out, src, fmt)
            sound = _Sound(out, src.audio, fmt) if src.audio else None
            graph = _graph(src.stream, src.facts, src.size)
            frames = 0

            def emit(pulled: list[av.VideoFrame]) -> None:
                nonlocal frames
                for frame in pulled:
                    # bwdif doubles the time base's resolution (it could emit fields); map back.
                    if frame.time_base is not None and frame.time_base != src.time_base and frame.pts is not None:
                        frame.pts = round(frame.pts * frame.time_base / src.time_base)
                    frame.time_base = src.time_base
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(video.encode(frame))
                    frames += 1
                    if progress is not None and src.duration_s and frame.pts is not None:
                        progress(float(frame.pts * src.time_base - src.facts.start_time_s) / src.duration_s)

            for packet in container.demux([src.stream, *src.audio]):
                if cancel is not None and cancel.is_set():
                    raise ProxyCancelled(f"{source}: proxy cancelled")
                if packet.stream.index == src.stream.index:
                    for decoded in packet.decode():
                        if isinstance(decoded, av.VideoFrame):
                            graph.push(decoded)
                    emit(pull_all(graph, av.VideoFrame))
                elif sound is not None:
                    sound.add(packet)
            graph.push(None)
            emit(pull_all(graph, av.VideoFrame))
            out.mux(video.encode(None))
            if sound is not None:
                sound.finish()
    if frames == 0:
        raise RenderError(f"{source}: no video frame could be decoded")
    return frames, src


def _check(path: Path, frames: int) -> float:
    """The written proxy holds every frame; its duration in seconds."""
    with av.open(str(path)) as written:
        stream = written.streams.video[0]
        count = sum(1 for p in written.demux(stream) if p.size)
        if count != frames:
            raise RenderError(f"{path}: proxy holds {count} frames, {frames} were encoded")
        return float(written.duration / av.time_base) if written.duration else 0.0
