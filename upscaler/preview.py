"""A contact sheet to choose a model by eye: one frame through several models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw

from catalog.devices import torch_device
from catalog.media import Picture, start_time_s, video_facts
from upscaler.colour import rgb_format, source_tags, to_rgb
from upscaler.errors import PlanError, RenderError
from upscaler.inference import FrameUpscaler
from upscaler.loader import load_model
from upscaler.registry import ModelChoice

_PANEL_WIDTH = 960  # each full-frame panel is scaled to this width
_LABEL_HEIGHT = 28
# Every panel is shown at 4x the displayed size: the scale of the registry's
# main models, so each model's own output needs the least resizing.
_SCALE = 4


@dataclass(frozen=True)
class PreviewResult:
    path: Path
    frame_s: float
    panels: tuple[str, ...]


@dataclass(frozen=True)
class _Frame:
    """A decoded frame as RGB (H, W, 3) uint8 in coded pixels, with what it takes to show it."""

    pixels: np.ndarray
    time_s: float
    picture: Picture


# Frame times within this of the asked time count as reached (float rounding of time bases).
_TIME_EPSILON_S = 1e-6


def _decode_from(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, seek_s: float | None, target_s: float
) -> tuple[av.VideoFrame | None, float | None]:
    """Seek to ``seek_s`` (stream time; None: decode from where the file starts) and decode up to
    the first frame at or after ``target_s``: (that frame, or the last one; the first frame's time)."""
    if seek_s is not None and stream.time_base is not None:
        container.seek(int(seek_s / stream.time_base), stream=stream, backward=True)
    chosen, first = None, None
    for frame in container.decode(stream):
        chosen = frame
        first = frame.time if first is None else first
        if frame.time is not None and frame.time >= target_s - _TIME_EPSILON_S:
            break
    return chosen, first


def _frame_at(path: Path, at_s: float) -> _Frame:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start = start_time_s(stream)
            target = start + at_s
            # Seeking lands on a keyframe at or before the time in MP4, but MPEG-TS and
            # other byte-seeked formats can land after it: then seek further back
            # (1 s, 2 s, 4 s, ...) and decode forward to the exact frame; near the start,
            # decode from the beginning of the file.
            back_s, chosen = 0.0, None
            while target - back_s > start:
                chosen, first = _decode_from(container, stream, target - back_s, target)
                if first is None or first <= target + _TIME_EPSILON_S:
                    break
                back_s = max(1.0, back_s * 2)
            else:
                with av.open(str(path)) as again:  # a frame outlives its container
                    chosen, _ = _decode_from(again, again.streams.video[0], None, target)
            if chosen is None:
                raise PlanError(f"{path} has no frame at {at_s} s")
            # 8 bits per channel: this picture is for eyes, not for encoding.
            pixels = to_rgb(chosen, source_tags(stream.codec_context, chosen), rgb_format(8), VideoReformatter())
            picture = video_facts(stream, chosen).picture
            return _Frame(pixels, float(chosen.time or 0.0) - start, picture)
    except av.error.FFmpegError as exc:
        raise RenderError(f"{path}: cannot read a frame: {exc}") from exc


def _upright(frame: _Frame) -> Image.Image:
    """The coded pixels turned upright (display rotation applied)."""
    return Image.fromarray(np.ascontiguousarray(np.rot90(frame.pixels, k=frame.picture.rotation // 90)))


def displayed_frame(path: Path, at_s: float) -> tuple[Image.Image, float]:
    """The frame at ``at_s`` as a player shows it (upright, square pixels) and its exact time."""
    frame = _frame_at(path, at_s)
    image = _upright(frame)
    if image.size != frame.picture.display_size:  # anamorphic: widen to square pixels
        image = image.resize(frame.picture.display_size, Image.Resampling.BICUBIC)
    return image, frame.time_s


def _labelled(image: Image.Image, label: str) -> Image.Image:
    panel = Image.new("RGB", (image.width, image.height + _LABEL_HEIGHT), "black")
    panel.paste(image, (0, _LABEL_HEIGHT))
    ImageDraw.Draw(panel).text((8, 6), label, fill="white")
    return panel


def preview(
    master: Path, at_s: float, models: list[str], out: Path, cache_dir: Path, device: str | None = None
) -> PreviewResult:
    """Write a PNG: rows of (whole frame, 4x zoom of its centre) for bicubic and each model."""
    frame = _frame_at(master, at_s)
    pixels, rotation, scale = frame.pixels, frame.picture.rotation, _SCALE
    width, height = frame.picture.display_size
    on = torch_device(device)
    results: list[tuple[str, Image.Image]] = []
    source = _upright(frame)
    results.append(("source, bicubic x4", source.resize((width * scale, height * scale), Image.Resampling.BICUBIC)))
    for name in models:
        descriptor, identity = load_model(ModelChoice(name), cache_dir, on)
        upscaler = FrameUpscaler(descriptor, on, width * scale, height * scale, rotation)
        results.append(
            (f"{identity.name} ({identity.architecture}, x{identity.scale})", Image.fromarray(upscaler(pixels)))
        )
    # The zoom: the centre quarter of the frame, shown at the panel's width.
    rows = []
    for label, image in results:
        whole = image.resize((_PANEL_WIDTH, round(_PANEL_WIDTH * image.height / image.width)), Image.Resampling.LANCZOS)
        cw, ch = image.width // 4, image.height // 4
        crop = image.crop(
            (
                image.width // 2 - cw // 2,
                image.height // 2 - ch // 2,
                image.width // 2 + cw // 2,
                image.height // 2 + ch // 2,
            )
        )
        zoom = crop.resize((_PANEL_WIDTH, round(_PANEL_WIDTH * crop.height / crop.width)), Image.Resampling.NEAREST)
        row = Image.new("RGB", (2 * _PANEL_WIDTH, max(whole.height, zoom.height)), "black")
        row.paste(whole, (0, 0))
        row.paste(zoom, (_PANEL_WIDTH, 0))
        rows.append(_labelled(row, f"{label}   |   centre, zoomed"))
    sheet = Image.new("RGB", (2 * _PANEL_WIDTH, sum(r.height for r in rows)), "black")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return PreviewResult(out, frame.time_s, tuple(label for label, _ in results))
