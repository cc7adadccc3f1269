"""Edited footage with known shot boundaries, for judging shot detection.

Each shot films a textured scene of its own (soft blobs of colour over fine
grain, all scenes brought to the same mean brightness, so a cut is never a
jump in brightness) with a camera that drifts, pans fast or is handheld. Shots
are joined by hard cuts, dissolves or fades through black; the file may open
with a fade in from black; some shots hold a flash (two near-white frames).
What must be found is recorded as frame spans, and so is what must not be cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

FPS = 25
MOTIONS = ("drift", "pan", "handheld")
TRANSITIONS = ("cut", "dissolve", "fade")


@dataclass(frozen=True)
class Boundary:
    """A shot boundary: its kind and the frames it spans (a cut's span is the new shot's first frame)."""

    kind: str
    first: int
    last: int


@dataclass(frozen=True)
class Shot:
    scene: int
    seconds: float
    motion: str
    flash: bool = False


@dataclass(frozen=True)
class Edit:
    """A script: shots and the transitions between them (one fewer than shots)."""

    shots: tuple[Shot, ...]
    transitions: tuple[str, ...]
    fade_in: bool = False
    width: int = 480
    height: int = 270
    seed: int = 0


@dataclass
class Truth:
    """What an edit holds: boundaries to find, and spans (flashes, pans, handheld) that must not be cut."""

    frames: int
    boundaries: list[Boundary] = field(default_factory=list)
    keep_whole: list[Boundary] = field(default_factory=list)


def random_edit(seed: int, shots: int = 14, width: int = 480, height: int = 270) -> Edit:
    """A varied edit: every motion and transition kind, flashes in about one shot in four."""
    rng = np.random.default_rng(seed)
    return Edit(
        shots=tuple(
            Shot(
                scene=i,
                seconds=float(rng.uniform(1.6, 4.0)),
                motion=MOTIONS[(i + seed) % len(MOTIONS)],
                flash=bool(rng.random() < 0.25),
            )
            for i in range(shots)
        ),
        transitions=tuple(TRANSITIONS[int(k)] for k in rng.integers(0, len(TRANSITIONS), shots - 1)),
        fade_in=seed % 2 == 0,
        width=width,
        height=height,
        seed=seed,
    )


def _scene(seed: int, width: int, height: int) -> np.ndarray:
    """A float32 RGB canvas twice the frame's size; its mean luma is 110 whatever the palette."""
    rng = np.random.default_rng(10_000 + seed)
    h, w = 2 * height, 2 * width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    canvas = np.empty((h, w, 3), np.float32)
    canvas[...] = rng.uniform(40, 200, 3)
    for _ in range(24):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(h / 20, h / 4), rng.uniform(w / 20, w / 4)
        weight = np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))[..., None]
        canvas = canvas * (1 - weight) + rng.uniform(0, 255, 3).astype(np.float32) * weight
    canvas += rng.normal(0, 12, (h, w, 1)).astype(np.float32)  # grain, so motion shows everywhere
    luma = canvas @ np.array([0.299, 0.587, 0.114], np.float32)
    canvas += 110 - float(luma.mean())
    return np.clip(canvas, 0, 255)


def _camera(shot: Shot, frames: int, width: int, height: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corner of the frame on the scene's canvas, frame by frame."""
    x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    vx, vy = rng.uniform(-1.5, 1.5, 2)
    path = []
    for _ in range(frames):
        if shot.motion == "pan":
            x += width / 30  # the whole width in little more than a second
        elif shot.motion == "handheld":
            vx, vy = 0.7 * vx + rng.normal(0, 4), 0.7 * vy + rng.normal(0, 4)
            x, y = x + vx, y + vy
        else:
            x, y = x + vx, y + vy
        path.append((round(x), round(y)))
    return path


def _view(canvas: np.ndarray, corner: tuple[int, int], width: int, height: int) -> np.ndarray:
    h, w = canvas.shape[:2]
    rows = np.arange(corner[1], corner[1] + height) % h
    cols = np.arange(corner[0], corner[0] + width) % w
    return canvas[rows][:, cols]


def _shot_frames(shot: Shot, edit: Edit, rng: np.random.Generator) -> list[np.ndarray]:
    canvas = _scene(edit.seed * 100 + shot.scene, edit.width, edit.height)
    n = round(shot.seconds * FPS)
    frames = [_view(canvas, c, edit.width, edit.height) for c in _camera(shot, n, edit.width, edit.height, rng)]
    if shot.flash:
        for i in (n // 2, n // 2 + 1):
            frames[i] = frames[i] * 0.25 + 230
    return frames


def render_edit(edit: Edit) -> tuple[list[np.ndarray], Truth]:
    """Every frame (float32 RGB) of the edit, and its truth."""
    rng = np.random.default_rng(edit.seed)
    out: list[np.ndarray] = []
    truth = Truth(frames=0)
    if edit.fade_in:
        out.extend(np.zeros((edit.height, edit.width, 3), np.float32) for _ in range(12))
    shots = [_shot_frames(s, edit, rng) for s in edit.shots]
    if edit.fade_in:
        fade = 12
        for i in range(fade):
            shots[0][i] = shots[0][i] * (i + 1) / (fade + 1)
        truth.boundaries.append(Boundary("fade-in", 0, 12 + fade - 1))
    for index, (shot, frames) in enumerate(zip(edit.shots, shots, strict=True)):
        transition = edit.transitions[index - 1] if index else None
        start = len(out)
        if transition == "dissolve":
            length = min(15, len(frames) // 3)
            for i in range(length):
                a = (i + 1) / (length + 1)
                out[start - length + i] = out[start - length + i] * (1 - a) + frames[i] * a
            frames = frames[length:]
            truth.boundaries.append(Boundary("dissolve", start - length, start - 1))
        elif transition == "fade":
            length = 8
            for i in range(length):
                out[start - length + i] = out[start - length + i] * (1 - (i + 1) / length)
                frames[i] = frames[i] * (i + 1) / (length + 1)
            truth.boundaries.append(Boundary("fade", start - length, start + length - 1))
        elif transition == "cut":
            truth.boundaries.append(Boundary("cut", start, start))
        if shot.flash:
            # The flash sits at the shot's middle; a dissolve takes its first frames.
            at = start + round(shot.seconds * FPS) // 2 - (round(shot.seconds * FPS) - len(frames))
            truth.keep_whole.append(Boundary("flash", at - 2, at + 3))
        if shot.motion != "drift":
            truth.keep_whole.append(Boundary(shot.motion, start + 15, start + len(frames) - 15))
        out.extend(frames)
    truth.frames = len(out)
    return out, truth


def write_edit(path: Path, edit: Edit, crf: int = 20) -> Truth:
    """Encode the edit as H.264 at 25 fps and return its truth."""
    frames, truth = render_edit(edit)
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("libx264", rate=Fraction(FPS), options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = edit.width, edit.height, "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return truth
