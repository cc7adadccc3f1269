"""What every file footage writes from a source shares: how the source's video is opened and
pulled through a filter graph, and the hidden partial name an output is written under until
it is checked (a killed writer leaves only that, and the next attempt clears it)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TypeVar

import av

from upscaler.errors import RenderError

_Frame = TypeVar("_Frame", av.VideoFrame, av.AudioFrame)


def opened_video(
    container: av.container.InputContainer, path: Path
) -> tuple[av.video.stream.VideoStream, av.VideoFrame]:
    """The source's first video stream, set to decode on every core, and its first frame."""
    from catalog.media import first_frame

    if not container.streams.video:
        raise RenderError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    first = first_frame(container, stream)
    if first is None:
        raise RenderError(f"{path}: no decodable video frame")
    return stream, first


def pull_all(graph: av.filter.Graph, kind: type[_Frame]) -> list[_Frame]:
    """Every frame a filter graph (of ``kind``'s frames: video or audio) has ready."""
    frames: list[_Frame] = []
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames
        assert isinstance(frame, kind)
        frames.append(frame)


def partial_path(output: Path, attempt: object) -> Path:
    return output.with_name(f".{output.stem}.partial-{attempt}{output.suffix}")


def remove_partials(output: Path) -> None:
    """Clear the partial files earlier attempts at ``output`` left (never visible under its name)."""
    for leftover in glob.glob(str(output.with_name(f".{glob.escape(output.stem)}.partial-*{output.suffix}"))):
        Path(leftover).unlink(missing_ok=True)
