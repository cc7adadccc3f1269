"""The three stages of a render, overlapped: decode -> model -> encode.

A decoder thread (demux, decode, deinterlace, colour conversion to RGB), the
model on the calling thread, and an encoder thread (colour conversion back,
encode, mux) are joined by bounded queues, so memory stays flat with video
length and the device is not starved. Audio and subtitle packets travel
through the same queues in demux order. Every frame keeps its source
timestamp; nothing is dropped.
"""

from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from upscaler.chunks import ChunkedVideo
from upscaler.colour import ColourTags, from_rgb, to_rgb
from upscaler.encode import EncoderChoice
from upscaler.errors import RenderError
from upscaler.files import pull_all
from upscaler.geometry import Plan
from upscaler.planes import Planes, frame_of, planes_of

# A decoded frame on its way to the model (RGB pixels or YUV planes), or an output frame to the encoder.
Picture = np.ndarray | Planes
# The model stage's work: frames (picture, timestamp) in, their output pictures out, in order.
# Work that looks ahead (the temporal stage) hands some back on later calls, and whatever it
# still holds when called with no frames, once, after the last.
Upscale = Callable[[list[tuple[Picture, int | None]]], list[Picture]]

# Items each queue holds: enough to ride out a slow frame in any stage, few
# enough that a 4K RGB frame (25 MB, 50 MB at 16 bits) per slot stays small.
QUEUE_DEPTH = 8
# How often a blocked stage looks whether another stage failed (seconds).
_POLL_S = 0.2


@dataclass(frozen=True)
class StreamPlan:
    """What happens to each of the master's other streams (by stream index): packets copied as
    they are, audio re-encoded as ``transcode_codec``, text subtitles converted to ``subtitle_codec``."""

    copied: tuple[int, ...]
    transcoded: tuple[int, ...]
    transcode_codec: str
    dropped: tuple[str, ...]
    subtitles: tuple[int, ...] = ()
    audio: int = 0  # how many audio streams the output carries
    transcoded_as: tuple[str, ...] = ()  # per transcoded stream, in words: "aac 256 kb/s"
    subtitle_codec: str = "mov_text"

    @property
    def carried(self) -> tuple[int, ...]:
        return self.copied + self.transcoded + self.subtitles


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the stages need to know about one render."""

    plan: Plan
    encoder: EncoderChoice
    tags: ColourTags
    rgb_fmt: str
    interlaced: bool
    streams: StreamPlan
    frames_total: int | None
    time_base: Fraction
    rate: Fraction | None
    # Decoded planes go to the model stage as they are and come back as planes
    # (upscaler.planes); otherwise swscale converts to and from RGB on the CPU.
    colour_on_device: bool = False
    # Chunk encoders at once (upscaler.chunks), each with this many threads, and frames
    # a chunk; 1 encodes the stream with one encoder.
    encode_chunks: int = 1
    encode_threads: int = 0
    chunk_frames: int = 0


@dataclass(frozen=True)
class RenderProgress:
    frames_done: int
    frames_total: int | None
    fps: float


@dataclass(frozen=True)
class PipelineStats:
    """How a render spent its time. ``stages`` holds each stage's busy seconds (waits on
    the queues left out): decode, colour_in, model, colour_out, encode."""

    frames: int
    pipeline_s: float
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def model_s(self) -> float:
        return self.stages.get("model", 0.0)

    @property
    def fps(self) -> float:
        return self.frames / max(1e-9, self.pipeline_s)


@dataclass(frozen=True)
class Output:
    """An opened output: the container, its video stream, and its other streams by the master's index."""

    container: av.container.OutputContainer
    video: Any
    others: dict[int, Any]
    # Makes an encoder for one chunk when the video is encoded in chunks.
    chunk_encoder: Callable[[], Any] | None = None


class _Stop(Exception):
    """Raised inside a stage when another stage failed or the render was cancelled."""


@dataclass
class _Shared:
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    encoder_closed: bool = False
    busy: dict[str, float] = field(default_factory=dict)

    def spent(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; the time now, to chain the next stage from."""
        now = time.perf_counter()
        self.busy[stage] = self.busy.get(stage, 0.0) + now - since
        return now

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop()
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stop()
            try:
                return q.get(timeout=_POLL_S)
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


def _decode(
    spec: PipelineSpec, container: av.container.InputContainer, out_q: queue.Queue[Any], shared: _Shared
) -> None:
    try:
        stream = container.streams.video[0]
        graph = _deinterlacer(stream) if spec.interlaced else None
        reformatter = VideoReformatter()
        others = [container.streams[i] for i in spec.streams.carried]

        def emit(frames: list[av.VideoFrame]) -> None:
            for frame in frames:
                pts = frame.pts
                # bwdif doubles the time base's resolution (it could emit fields); map back.
                if frame.time_base is not None and frame.time_base != spec.time_base and pts is not None:
                    pts = round(pts * frame.time_base / spec.time_base)
                started = time.perf_counter()
                pixels = (planes_of(frame) if spec.colour_on_device else None) or to_rgb(
                    frame, spec.tags, spec.rgb_fmt, reformatter
                )
                shared.spent("colour_in", started)
                shared.put(out_q, ("frame", pts, pixels))

        def through(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
            if graph is None:
                return frames
            for frame in frames:
                graph.push(frame)
            return pull_all(graph, av.VideoFrame)

        # demux ends with an empty packet per stream, which flushes the decoder.
        for packet in container.demux([stream, *others]):
            if packet.stream.index == stream.index:
                started = time.perf_counter()
                decoded = through([f for f in packet.decode() if isinstance(f, av.VideoFrame)])
                shared.spent("decode", started)
                emit(decoded)
            elif packet.dts is not None:
                shared.put(out_q, ("packet", packet))
        if graph is not None:
            graph.push(None)
            emit(pull_all(graph, av.VideoFrame))
        shared.put(out_q, None)
    except _Stop:
        pass
    except BaseException as exc:  # handed to the calling thread
        shared.fail(exc)


def _mux_packet(spec: PipelineSpec, output: Output, master: av.container.InputContainer, packet: av.Packet) -> None:
    index = packet.stream.index
    if index in spec.streams.subtitles:
        _convert_subtitle(output.others[index], master.streams[index], packet, output.container)
    elif index in spec.streams.transcoded:
        target = output.others[index]
        decoder: Any = master.streams[index].codec_context
        for decoded in decoder.decode(packet):
            output.container.mux(target.encode(decoded))
    else:
        packet.stream = output.others[index]
        output.container.mux(packet)


def _convert_subtitle(target: Any, source: Any, packet: av.Packet, container: av.container.OutputContainer) -> None:
    """A text subtitle (SRT, ASS, WebVTT) re-encoded as mov_text, the one text format
    QuickTime and MP4 carry, at the packet's own times."""
    decoded = source.codec_context.decode2(packet)
    if decoded is None:
        return
    converted = target.codec_context.encode_subtitle(decoded)
    if converted is None:
        return
    converted.stream = target
    converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
    container.mux(converted)


def _flush(
    spec: PipelineSpec, output: Output, master: av.container.InputContainer, chunks: ChunkedVideo | None
) -> None:
    if chunks is None:
        output.container.mux(output.video.encode(None))
    else:
        chunks.finish()
    for index in spec.streams.transcoded:
        target = output.others[index]
        decoder: Any = master.streams[index].codec_context
        for decoded in decoder.decode(None):
            output.container.mux(target.encode(decoded))
        output.container.mux(target.encode(None))
    output.container.close()


def _encode(
    spec: PipelineSpec, output: Output, master: av.container.InputContainer, in_q: queue.Queue[Any], shared: _Shared
) -> None:
    chunks = None
    if output.chunk_encoder is not None:
        chunks = ChunkedVideo(
            output.container, output.video, output.chunk_encoder, spec.encode_chunks, spec.chunk_frames
        )
    try:
        reformatter = VideoReformatter()
        while (item := shared.get(in_q)) is not None:
            if item[0] == "frame":
                _, pts, pixels = item
                started = time.perf_counter()
                if isinstance(pixels, Planes):
                    frame = frame_of(pixels, spec.tags)
                else:
                    frame = from_rgb(pixels, spec.rgb_fmt, spec.encoder.pix_fmt, spec.tags, reformatter)
                started = shared.spent("colour_out", started)
                frame.pts, frame.time_base = pts, spec.time_base
                if chunks is None:
                    output.container.mux(output.video.encode(frame))
                else:
                    chunks.frame(frame)
                shared.spent("encode", started)
            elif chunks is None:
                _mux_packet(spec, output, master, item[1])
            else:
                chunks.other(functools.partial(_mux_packet, spec, output, master, item[1]))
        _flush(spec, output, master, chunks)
        shared.encoder_closed = True
    except _Stop:
        pass
    except BaseException as exc:
        shared.fail(exc)
    finally:
        if chunks is not None:
            chunks.abandon()  # after finish(), nothing is left to stop
            # The chunk encoders' own time, all together, in place of the hand-over's.
            shared.busy["encode"] = chunks.busy_s


def _gather(to_model: queue.Queue[Any], shared: _Shared, batch: int) -> tuple[list[Any], bool]:
    """The next items in order, up to ``batch`` frames: waits for one, takes more only if
    already queued (a batch never waits to fill); True once the decoder's end is reached."""
    items: list[Any] = []
    frames = 0
    while frames < batch:
        try:
            item = shared.get(to_model) if not items else to_model.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return items, True
        items.append(item)
        frames += item[0] == "frame"
    return items, False


def _model_stage(
    spec: PipelineSpec,
    upscale: Upscale,
    queues: tuple[queue.Queue[Any], queue.Queue[Any]],
    shared: _Shared,
    progress: Callable[[RenderProgress], None] | None,
    cancel: threading.Event | None,
    batch: int,
) -> int:
    """Upscale frames from the decoder, ``batch`` at a time at most, and hand them, with the
    other packets in their order, to the encoder; how many frames were upscaled."""
    to_model, to_encoder = queues
    done, t0 = 0, time.perf_counter()
    # Items in order whose frame's output has not come back yet, and everything after them.
    held: collections.deque[Any] = collections.deque()
    outputs: collections.deque[Picture] = collections.deque()
    try:
        ended = False
        while not ended:
            items, ended = _gather(to_model, shared, batch)
            if cancel is not None and cancel.is_set():
                raise RenderError("render cancelled")
            frames = [(item[2], item[1]) for item in items if item[0] == "frame"]
            # A frame waits for its output as its timestamp alone: its picture is let go.
            held.extend(("frame", item[1]) if item[0] == "frame" else item for item in items)
            for work in ([frames] if frames else []) + ([[]] if ended else []):
                m0 = time.perf_counter()
                outputs.extend(upscale(work))
                shared.spent("model", m0)
            released = done
            while held and (held[0][0] != "frame" or outputs):
                item = held.popleft()
                if item[0] == "frame":
                    item = ("frame", item[1], outputs.popleft())
                    done += 1
                shared.put(to_encoder, item)
            if progress and done > released:
                progress(RenderProgress(done, spec.frames_total, done / max(1e-9, time.perf_counter() - t0)))
        if held or outputs:
            raise RenderError(f"the model stage lost count: {len(held)} items wait, {len(outputs)} pictures left")
        shared.put(to_encoder, None)
    except _Stop:
        pass
    except BaseException as exc:
        shared.fail(exc)
    return done


def run_pipeline(
    spec: PipelineSpec,
    master: av.container.InputContainer,
    output: Output,
    upscale: Upscale,
    progress: Callable[[RenderProgress], None] | None = None,
    cancel: threading.Event | None = None,
    batch: int = 1,
) -> PipelineStats:
    """Run the three stages to the end; the output container is closed when this returns.

    ``upscale`` takes up to ``batch`` decoded pictures (RGB (H, W, 3) pixels, or
    planes when the colour is converted on the device) with their timestamps and
    returns their output pictures. The first error of any stage stops all three
    and is raised here.
    """
    shared = _Shared()
    to_model: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    to_encoder: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
    decoder = threading.Thread(target=_decode, args=(spec, master, to_model, shared), name="footage-decode")
    encoder = threading.Thread(target=_encode, args=(spec, output, master, to_encoder, shared), name="footage-encode")
    decoder.start()
    encoder.start()
    started = time.perf_counter()
    try:
        frames = _model_stage(spec, upscale, (to_model, to_encoder), shared, progress, cancel, batch)
    finally:
        decoder.join()
        encoder.join()
    if shared.error is not None:
        raise shared.error
    if not shared.encoder_closed:
        raise RenderError("the encoder stopped before the end")
    return PipelineStats(frames, time.perf_counter() - started, {k: round(v, 3) for k, v in shared.busy.items()})
