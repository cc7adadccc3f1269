"""Chunked encoding on its own: chunks joined into one stream that decodes whole, in order,
even where a chunk's B-frame delay would reach back before the previous chunk."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from upscaler.chunks import ChunkedVideo
from upscaler.errors import RenderError

TIME_BASE = Fraction(1, 1000)


def _options(name: str) -> dict[str, str]:
    return {"x265-params": "log-level=error"} if name == "libx265" else {}


def _encoder(name: str, flags: int) -> Any:
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base, ctx.framerate = 64, 48, "yuv420p", TIME_BASE, 25
    ctx.flags = flags
    ctx.options = _options(name)
    ctx.open()
    return ctx


def _frame(i: int, pts: int) -> av.VideoFrame:
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, (i * 3) % 64 :] = (200, 60 + i, 30)  # an edge that moves: P and B frames have work
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = pts, TIME_BASE
    return frame


@pytest.mark.parametrize("name", ["libx264", "libx265"])
def test_chunks_join_even_where_timestamps_crowd(tmp_path: Path, name: str) -> None:
    # Frames 40 ms apart, then from the second chunk on 400 ms apart: a new encoder reckons
    # its first decode times back from its first gaps, to before the previous chunk's last.
    pts = [40 * i for i in range(8)] + [40 * 8 + 400 * i for i in range(16)]
    out = tmp_path / f"joined-{name}.mov"
    with av.open(str(out), "w", format="mov") as container:
        stream: Any = container.add_stream(name, rate=25, options=_options(name))
        stream.width, stream.height, stream.pix_fmt, stream.time_base = 64, 48, "yuv420p", TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        flags = stream.codec_context.flags
        chunks = ChunkedVideo(container, stream, lambda: _encoder(name, flags), workers=2, chunk_frames=8)
        for i, t in enumerate(pts):
            chunks.frame(_frame(i, t))
        chunks.finish()
        assert chunks.chunks == 3
    with av.open(str(out)) as check:
        packets = [p for p in check.demux(video=0) if p.size]
        dts = [p.dts for p in packets]
        assert all(d is not None for d in dts) and dts == sorted(dts) and len(set(dts)) == len(dts)  # type: ignore[type-var]
        assert all(p.dts <= p.pts for p in packets if p.dts is not None and p.pts is not None)
    with av.open(str(out)) as check:
        decoded = [round(float(f.time) * 1000) for f in check.decode(video=0)]
    assert decoded == pts


def test_chunks_unlike_the_stream_header_are_refused(tmp_path: Path) -> None:
    def other_rate() -> Any:  # the stream's settings but no frame rate (the SPS's timing says it)
        ctx: Any = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 48, "yuv420p", TIME_BASE
        ctx.flags = flags
        ctx.open()
        return ctx

    with av.open(str(tmp_path / "unlike.mov"), "w", format="mov") as container:
        stream: Any = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.time_base = 64, 48, "yuv420p", TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        flags = stream.codec_context.flags
        chunks = ChunkedVideo(container, stream, other_rate, workers=2, chunk_frames=4)
        for i in range(4):
            chunks.frame(_frame(i, 40 * i))
        with pytest.raises(RenderError, match="parameter sets"):
            chunks.finish()
