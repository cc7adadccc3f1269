"""The video track encoded in GOP-aligned chunks by several encoders at once, joined as
they are (no re-encoding).

One x264 or x265 instance stops scaling long before a 16-core machine runs out of
cores at 4K (frame threads wait on each other's reference rows, and the lookahead
is serial), while the model turns out frames faster than it encodes them. Here the
frames are cut into chunks of ``chunk_frames``; each chunk gets an encoder of its
own, which starts it with a keyframe, so the chunks decode independently; up to
``workers`` chunks encode at once on their own threads (PyAV lets go of the GIL
while FFmpeg encodes). Finished chunks are muxed in order into the one video
stream, each followed by the audio and subtitle packets that arrived while it was
filled, so the file interleaves as the master does.

Every chunk's encoder has the output stream's settings, so all give the same
parameter sets (SPS/PPS) as the stream's own header says (checked, chunk by
chunk). Timestamps are the frames' own; a chunk's first decode timestamps may
reach back before the previous chunk's last (B-frame delay measured on a new
encoder's first frames, which can matter with variable frame rates): they are moved
forward to follow on, never past a frame's presentation time.

Memory: at most ``workers`` chunks of frames wait at once.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import av

from upscaler.errors import RenderError


@dataclass
class _Chunk:
    frames: queue.Queue[av.VideoFrame | None]
    done: Future[tuple[list[av.Packet], bytes | None, float]]
    count: int = 0
    # Audio/subtitle work that arrived while this chunk filled, muxed after its video.
    held: list[Callable[[], None]] = field(default_factory=list)


def _encode_chunk(
    make_encoder: Callable[[], Any], frames: queue.Queue[av.VideoFrame | None]
) -> tuple[list[av.Packet], bytes | None, float]:
    """Encode one chunk's frames as they arrive: its packets, the encoder's parameter sets
    and the seconds spent encoding."""
    encoder = make_encoder()
    packets: list[av.Packet] = []
    busy = 0.0
    while (frame := frames.get()) is not None:
        started = time.perf_counter()
        packets.extend(encoder.encode(frame))
        busy += time.perf_counter() - started
    started = time.perf_counter()
    packets.extend(encoder.encode(None))
    return packets, encoder.extradata, busy + time.perf_counter() - started


class ChunkedVideo:
    """Frames in, in presentation order; packets muxed into ``stream`` of ``container`` in order."""

    def __init__(
        self,
        container: av.container.OutputContainer,
        stream: Any,
        make_encoder: Callable[[], Any],
        workers: int,
        chunk_frames: int,
    ) -> None:
        self._container, self._stream = container, stream
        self._make_encoder = make_encoder
        self._workers, self._chunk_frames = workers, chunk_frames
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="footage-encode-chunk")
        self._chunks: deque[_Chunk] = deque()  # started, not yet muxed; the last one is filling
        self._held: list[Callable[[], None]] = []  # arrived before the first frame
        self._last_dts: int | None = None
        self.chunks = 0
        self.busy_s = 0.0  # seconds the chunk encoders spent encoding, all together

    def frame(self, frame: av.VideoFrame) -> None:
        filling = self._chunks[-1] if self._chunks else None
        if filling is None or filling.count >= self._chunk_frames:
            if filling is not None:
                filling.frames.put(None)
            if len(self._chunks) >= self._workers:
                self._mux_oldest()  # memory stays bounded: wait for the oldest before starting another
            frames: queue.Queue[av.VideoFrame | None] = queue.Queue()
            filling = _Chunk(frames, self._pool.submit(_encode_chunk, self._make_encoder, frames))
            filling.held, self._held = self._held, []
            self._chunks.append(filling)
            self.chunks += 1
        filling.frames.put(frame)
        filling.count += 1
        while len(self._chunks) > 1 and self._chunks[0].done.done():
            self._mux_oldest()

    def other(self, mux: Callable[[], None]) -> None:
        """Mux an audio or subtitle packet after the video of the chunk now filling."""
        (self._chunks[-1].held if self._chunks else self._held).append(mux)

    def finish(self) -> None:
        if self._chunks:
            self._chunks[-1].frames.put(None)
        while self._chunks:
            self._mux_oldest()
        for mux in self._held:
            mux()
        self._pool.shutdown()

    def abandon(self) -> None:
        """Stop the chunk encoders without muxing anything more (a failed render)."""
        for chunk in self._chunks:
            chunk.frames.put(None)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _mux_oldest(self) -> None:
        chunk = self._chunks.popleft()
        packets, extradata, busy = chunk.done.result()
        self.busy_s += busy
        for packet in packets:
            self._follow_on(packet)
            packet.stream = self._stream
            self._container.mux(packet)
        # Checked once the stream's header is written (with the first packet of all): a
        # mismatch fails the render, whose file is then thrown away.
        if extradata != self._stream.codec_context.extradata:
            raise RenderError("a chunk's encoder made parameter sets unlike the stream's; the chunks cannot be joined")
        for mux in chunk.held:
            mux()

    def _follow_on(self, packet: av.Packet) -> None:
        if packet.dts is None:
            return
        if self._last_dts is not None and packet.dts <= self._last_dts:
            moved = self._last_dts + 1
            if packet.pts is not None and moved > packet.pts:
                raise RenderError(
                    f"chunked encoding: a chunk's packet at {packet.pts} cannot decode after the one before it"
                )
            packet.dts = moved
        self._last_dts = packet.dts
