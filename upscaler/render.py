"""The frame pipeline: decode -> model -> resize -> encode, overlapped.

Three stages run at once, joined by bounded queues so memory stays flat with
video length and the device is not starved: a decoder thread (demux, decode,
deinterlace, colour conversion), the model on the calling thread, and an
encoder thread (colour conversion back, encode, mux). Audio and subtitle
packets travel through the same queues in demux order. Every output frame keeps
its source timestamp; nothing is dropped; the file appears under its final
name only after it has been verified.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from upscaler.colour import ColourTags, from_rgb, rgb_format, source_tags, to_rgb
from upscaler.encode import DEFAULT_CODEC, EncoderChoice, choose_encoder
from upscaler.errors import PlanError, RenderError
from upscaler.geometry import Plan, Source, plan
from upscaler.inference import FrameUpscaler, best_device
from upscaler.models import ModelIdentity, load_model
from upscaler.provenance import NOTICE, container_tags, now, software, write_sidecar
from upscaler.registry import ModelChoice
from upscaler.weights import file_sha256

logger = logging.getLogger(__name__)

QUEUE_DEPTH = 8
# Audio the output container can hold as it is; anything else is transcoded.
_COPYABLE_AUDIO = {
    ".mov": {"aac", "alac", "mp3", "ac3", "eac3"},
    ".mp4": {"aac", "alac", "mp3", "ac3", "eac3", "opus", "flac"},
}
_TRANSCODE_AUDIO = {".mov": "pcm_s24le", ".mp4": "flac"}  # lossless either way


@dataclass(frozen=True)
class RenderRequest:
    master: Path
    output: Path
    target: str = "4k"
    model: ModelChoice = field(default_factory=ModelChoice)
    codec: str = DEFAULT_CODEC
    force: bool = False
    tile: int | None = None
    device: str | None = None
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "footage" / "models")
    overwrite: bool = False


@dataclass(frozen=True)
class RenderProgress:
    frames_done: int
    frames_total: int | None
    fps: float


@dataclass(frozen=True)
class RenderResult:
    output: Path
    sidecar: Path
    plan: Plan
    frames: int
    duration_s: float
    model: ModelIdentity
    provenance: dict[str, Any]


def sha256_of(path: Path) -> str:
    """``sha256:<hex>``, the form the catalog stores content hashes in."""
    return "sha256:" + file_sha256(path)


class _Stop(Exception):
    """Raised inside a stage when another stage failed or the render was cancelled."""


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop()
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stop()
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue


def _deinterlacer(stream: av.video.stream.VideoStream) -> av.filter.Graph:
    """bwdif, one output frame per input frame, so timestamps and frame count stay."""
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    bwdif = graph.add("bwdif", "mode=send_frame:parity=auto:deint=all")
    sink = graph.add("buffersink")
    source.link_to(bwdif)
    bwdif.link_to(sink)
    graph.configure()
    return graph


def _pull_all(graph: av.filter.Graph) -> list[av.VideoFrame]:
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames


@dataclass
class _Job:
    request: RenderRequest
    plan: Plan
    encoder: EncoderChoice
    tags: ColourTags
    rgb_fmt: str
    interlaced: bool
    copied: list[int]
    transcoded: list[int]
    dropped: list[str]
    frames_total: int | None
    time_base: Fraction
    rate: Fraction | None


def _decode(job: _Job, container: av.container.InputContainer, out_q: queue.Queue[Any], shared: _Shared) -> None:
    try:
        stream = container.streams.video[0]
        graph = _deinterlacer(stream) if job.interlaced else None
        reformatter = VideoReformatter()
        others = [container.streams[i] for i in job.copied + job.transcoded]

        def emit(frames: list[av.VideoFrame]) -> None:
            for frame in frames:
                pts = frame.pts
                # bwdif doubles the time base's resolution (it could emit fields); map back.
                if frame.time_base is not None and frame.time_base != job.time_base and pts is not None:
                    pts = round(pts * frame.time_base / job.time_base)
                shared.put(out_q, ("frame", pts, to_rgb(frame, job.tags, job.rgb_fmt, reformatter)))

        def through(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
            if graph is None:
                return frames
            for frame in frames:
                graph.push(frame)
            return _pull_all(graph)

        # demux ends with an empty packet per stream, which flushes the decoder.
        for packet in container.demux([stream, *others]):
            if packet.stream.index == stream.index:
                emit(through(list(packet.decode())))
            elif packet.dts is not None:
                shared.put(out_q, ("packet", packet))
        if graph is not None:
            graph.push(None)
            emit(_pull_all(graph))
        shared.put(out_q, None)
    except _Stop:
        pass
    except BaseException as exc:  # handed to the calling thread
        shared.fail(exc)


def _open_output(
    job: _Job, tmp: Path, master: av.container.InputContainer, metadata: dict[str, str]
) -> tuple[av.container.OutputContainer, Any, dict[int, Any]]:
    options = {"movflags": "use_metadata_tags+write_colr"} if tmp.suffix in (".mov", ".mp4") else {}
    out = av.open(str(tmp), "w", format="mov" if job.request.output.suffix == ".mov" else None, options=options)
    out.metadata.update(
        {
            k: v
            for k, v in master.metadata.items()
            if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands")
        }
    )
    out.metadata.update(metadata)
    vs = out.add_stream(job.encoder.encoder, rate=job.rate, options=job.encoder.options)
    vs.width, vs.height, vs.pix_fmt = job.plan.width, job.plan.height, job.encoder.pix_fmt
    vs.time_base = job.time_base
    ctx = vs.codec_context
    ctx.time_base = job.time_base
    ctx.sample_aspect_ratio = Fraction(1)
    ctx.color_primaries, ctx.color_trc = job.tags.primaries, job.tags.transfer
    ctx.colorspace, ctx.color_range = job.tags.matrix, job.tags.range
    if job.encoder.codec.codec_tag:
        ctx.codec_tag = job.encoder.codec.codec_tag
    source_video = master.streams.video[0]
    for key in ("language", "timecode", "handler_name"):
        if key in source_video.metadata:
            vs.metadata[key] = source_video.metadata[key]
    streams: dict[int, Any] = {}
    for index in job.copied:
        streams[index] = out.add_stream_from_template(master.streams[index])
    for index in job.transcoded:
        src = master.streams[index]
        codec = _TRANSCODE_AUDIO[job.request.output.suffix]
        streams[index] = out.add_stream(codec, rate=src.codec_context.sample_rate, layout=src.codec_context.layout.name)
        streams[index].metadata.update(src.metadata)
    try:
        chapters = master.chapters()
        if chapters:
            out.set_chapters(chapters)
    except (AttributeError, av.error.FFmpegError, ValueError):
        pass
    return out, vs, streams


def _encode(
    job: _Job,
    out: av.container.OutputContainer,
    vs: Any,
    streams: dict[int, Any],
    master: av.container.InputContainer,
    in_q: queue.Queue[Any],
    shared: _Shared,
    counts: dict[str, int],
) -> None:
    try:
        reformatter = VideoReformatter()
        while (item := shared.get(in_q)) is not None:
            if item[0] == "frame":
                _, pts, pixels = item
                frame = from_rgb(pixels, job.rgb_fmt, job.encoder.pix_fmt, job.tags, reformatter)
                frame.pts, frame.time_base = pts, job.time_base
                out.mux(vs.encode(frame))
                counts["frames"] += 1
            else:
                packet = item[1]
                index = packet.stream.index
                if index in job.transcoded:
                    target = streams[index]
                    for decoded in master.streams[index].codec_context.decode(packet):
                        out.mux(target.encode(decoded))
                else:
                    packet.stream = streams[index]
                    out.mux(packet)
        out.mux(vs.encode(None))
        for index in job.transcoded:
            for decoded in master.streams[index].codec_context.decode(None):
                out.mux(streams[index].encode(decoded))
            out.mux(streams[index].encode(None))
        out.close()
        counts["closed"] = 1
    except _Stop:
        pass
    except BaseException as exc:
        shared.fail(exc)


def _verify(path: Path, frames: int, duration_s: float | None, frame_s: float, audio_streams: int) -> float:
    """Check the written file: every frame there, duration as the master's, audio present."""
    with av.open(str(path)) as check:
        video = check.streams.video[0]
        packets = sum(1 for p in check.demux(video) if p.size)
        got_audio = len(check.streams.audio)
        duration = float(video.duration * video.time_base) if video.duration and video.time_base else None
    if packets != frames:
        raise RenderError(f"verification failed: {packets} frames written, {frames} decoded")
    if got_audio != audio_streams:
        raise RenderError(f"verification failed: {got_audio} audio streams written, {audio_streams} expected")
    if duration is not None and duration_s is not None and abs(duration - duration_s) > 1.5 * frame_s + 0.05:
        raise RenderError(f"verification failed: duration {duration:.3f} s, master {duration_s:.3f} s")
    return duration or 0.0


def _stream_plan(master: av.container.InputContainer, suffix: str) -> tuple[list[int], list[int], list[str]]:
    copied, transcoded, dropped = [], [], []
    for stream in master.streams:
        if stream.type == "video":
            if stream.index != master.streams.video[0].index:
                dropped.append(
                    f"#{stream.index} video ({stream.codec_context.name}): only the first video stream is upscaled"
                )
        elif stream.type == "audio":
            (copied if stream.codec_context.name in _COPYABLE_AUDIO[suffix] else transcoded).append(stream.index)
        elif stream.type == "subtitle" and stream.codec_context.name == "mov_text":
            copied.append(stream.index)
        else:
            name = stream.codec_context.name if stream.codec_context else "data"
            dropped.append(f"#{stream.index} {stream.type} ({name}): the output container cannot hold it")
    return copied, transcoded, dropped


def render(
    request: RenderRequest,
    progress: Callable[[RenderProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Render ``request.master`` to ``request.output``; the master is only ever read."""
    master_path = Path(os.path.abspath(request.master))
    output = Path(os.path.abspath(request.output))
    if output == master_path or (output.exists() and output.samefile(master_path)):
        raise PlanError("the output would overwrite the master; choose another --out")
    if output.exists() and not request.overwrite:
        raise PlanError(f"{output} already exists; choose another --out or add --overwrite")
    if output.suffix not in _COPYABLE_AUDIO:
        raise PlanError(f"output must be .mov or .mp4, not {output.suffix or 'no suffix'}")
    if not master_path.is_file():
        raise PlanError(f"no such master file: {master_path}")
    started = time.perf_counter()
    master_hash = sha256_of(master_path)
    timings: dict[str, float] = {"hash_master_s": time.perf_counter() - started}

    device = best_device(request.device)
    descriptor, identity = load_model(request.model, request.cache_dir, device)
    try:
        container = av.open(str(master_path), "r")
    except av.error.FFmpegError as exc:
        raise RenderError(f"{master_path}: cannot open: {exc}") from exc
    tmp = output.with_name(f".{output.stem}.partial-{os.getpid()}{output.suffix}")
    shared = _Shared()
    counts = {"frames": 0, "closed": 0}
    try:
        if not container.streams.video:
            raise RenderError(f"{master_path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = next(container.decode(stream))
        rotation = int(round(first.rotation or 0)) % 360
        rotation = rotation if rotation in (90, 180, 270) else 0
        container.seek(0)
        sar = Fraction(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or 1) or Fraction(1)
        the_plan = plan(Source(stream.width, stream.height, sar, rotation), request.target, force=request.force)
        bit_depth = max(c.bits for c in stream.format.components) if stream.format else 8
        encoder = choose_encoder(request.codec, bit_depth)
        interlaced = bool(first.interlaced_frame) or int(stream.codec_context.field_order or 0) > 1
        copied, transcoded, dropped = _stream_plan(container, output.suffix)
        rate = stream.average_rate or stream.guessed_rate
        job = _Job(
            request,
            the_plan,
            encoder,
            source_tags(stream.codec_context, first),
            rgb_format(bit_depth),
            interlaced,
            copied,
            transcoded,
            dropped,
            stream.frames or None,
            stream.time_base,
            Fraction(rate) if rate else None,
        )
        upscaler = FrameUpscaler(descriptor, device, the_plan.width, the_plan.height, rotation, tile=request.tile)
        provenance: dict[str, Any] = {
            "notice": NOTICE,
            "created_at": now(),
            "master": {
                "path": str(master_path),
                "content_hash": master_hash,
                "width": stream.width,
                "height": stream.height,
                "sample_aspect_ratio": str(sar),
                "codec": stream.codec_context.name,
                "pix_fmt": stream.codec_context.pix_fmt,
                "interlaced": interlaced,
                "rotation": rotation,
            },
            "model": {
                "name": identity.name,
                "sha256": identity.sha256,
                "architecture": identity.architecture,
                "scale": identity.scale,
                "parameters": identity.parameters,
            },
            "output": {
                "label": the_plan.label,
                "width": the_plan.width,
                "height": the_plan.height,
                "codec": encoder.codec.name,
                "encoder": encoder.encoder,
                "pix_fmt": encoder.pix_fmt,
                "encoder_options": encoder.options,
                "container": output.suffix.lstrip("."),
                "colour": {
                    "primaries": job.tags.primaries,
                    "transfer": job.tags.transfer,
                    "matrix": job.tags.matrix,
                    "range": job.tags.range,
                },
            },
            "processing": {
                "device": str(device),
                "deinterlaced": "bwdif (send_frame)" if interlaced else None,
                "resize": "bicubic, antialiased, on the device",
            },
            "streams": {
                "copied": copied,
                "transcoded": {i: _TRANSCODE_AUDIO[output.suffix] for i in transcoded},
                "dropped": dropped,
            },
            "software": software(),
        }
        out, vs, streams = _open_output(job, tmp, container, container_tags(provenance, master_path.name))
        to_model: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        to_encoder: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        decoder = threading.Thread(target=_decode, args=(job, container, to_model, shared), name="footage-decode")
        encoder_thread = threading.Thread(
            target=_encode, args=(job, out, vs, streams, container, to_encoder, shared, counts), name="footage-encode"
        )
        decoder.start()
        encoder_thread.start()
        model_s, done, t0 = 0.0, 0, time.perf_counter()
        try:
            while (item := shared.get(to_model)) is not None:
                if cancel is not None and cancel.is_set():
                    raise RenderError("render cancelled")
                if item[0] == "frame":
                    m0 = time.perf_counter()
                    item = ("frame", item[1], upscaler(item[2]))
                    model_s += time.perf_counter() - m0
                    done += 1
                    if progress:
                        progress(RenderProgress(done, job.frames_total, done / max(1e-9, time.perf_counter() - t0)))
                shared.put(to_encoder, item)
            shared.put(to_encoder, None)
        except _Stop:
            pass
        except BaseException as exc:
            shared.fail(exc)
        decoder.join()
        encoder_thread.join()
        if shared.error is not None:
            raise shared.error
        if not counts["closed"]:
            raise RenderError("the encoder stopped before the end")
        timings.update(
            {
                "pipeline_s": time.perf_counter() - t0,
                "model_s": model_s,
                "fps": done / max(1e-9, time.perf_counter() - t0),
            }
        )
        frame_s = 1 / float(job.rate) if job.rate else 0.04
        master_duration = float(stream.duration * stream.time_base) if stream.duration else None
        if master_duration is None and container.duration:
            master_duration = container.duration / av.time_base
        duration = _verify(tmp, done, master_duration, frame_s, len(copied) + len(transcoded))
        if sha256_of(master_path) != master_hash:
            raise RenderError(f"{master_path} changed during the render; the rendition was discarded")
        provenance["processing"].update(
            {"precision": upscaler.precision, "tile": upscaler.tile, "fallbacks": upscaler.fallbacks, "frames": done}
        )
        provenance["timings"] = {k: round(v, 3) for k, v in timings.items()}
        sidecar = write_sidecar(output, provenance)
        os.replace(tmp, output)
        return RenderResult(output, sidecar, the_plan, done, duration, identity, provenance)
    except av.error.FFmpegError as exc:
        raise RenderError(f"rendering {master_path.name} failed: {exc}") from exc
    finally:
        shared.stop.set()
        container.close()
        tmp.unlink(missing_ok=True)
