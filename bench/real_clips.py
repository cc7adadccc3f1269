"""Real footage for the quality benches: a folder of clips, each a video file or a folder of
numbered frames (PNG/JPEG), cut to one size so they play as one stream with a real cut
between consecutive clips.

The clips are not kept in the repository (their licences and sizes do not all allow it);
``KNOWN`` says where each one the benches were measured on comes from, and what it shows,
so anyone can gather the same folder:

    git clone https://github.com/intel-iot-devkit/sample-videos      # CC BY 4.0
    git clone https://github.com/dmlc/decord                          # examples/, Apache-2.0 repo
    git clone https://github.com/ckkelvinchan/RealBasicVSR            # data/demo_000, Apache-2.0 repo
    mkdir clips && cp sample-videos/{car-detection,bottle-detection}.mp4 \\
        sample-videos/asl_gestures/walk.mkv decord/examples/flipping_a_pancake.mkv clips/ \\
        && cp -r RealBasicVSR/data/demo_000 clips/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

_FRAME_SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class KnownClip:
    kind: str  # the scene type the bench reports it under
    shows: str
    source: str


KNOWN: dict[str, KnownClip] = {
    "demo_000": KnownClip(
        "moving camera",
        "night street filmed from a moving tram: parallax, traffic, lights, sensor noise",
        "github.com/ckkelvinchan/RealBasicVSR data/demo_000 (31 PNG frames, 640x360)",
    ),
    "flipping_a_pancake": KnownClip(
        "handheld, a face",
        "handheld phone video in a kitchen: shake, motion blur, a face, compression",
        "github.com/dmlc/decord examples/flipping_a_pancake.mkv (426x240, 30 fps)",
    ),
    "car-detection": KnownClip(
        "still camera, grain",
        "fixed camera over asphalt (fine grain-like texture), a car drives in",
        "github.com/intel-iot-devkit/sample-videos car-detection.mp4 (768x432, 12.5 fps, CC BY 4.0)",
    ),
    "walk": KnownClip(
        "still camera, a face",
        "a signer in an office: face, hands moving, still background",
        "github.com/intel-iot-devkit/sample-videos asl_gestures/walk.mkv (640x480, 30 fps, CC BY 4.0)",
    ),
    "bottle-detection": KnownClip(
        "near-static",
        "bottles on a table, camera still: small detail, little motion",
        "github.com/intel-iot-devkit/sample-videos bottle-detection.mp4 (640x360, 30 fps, CC BY 4.0)",
    ),
}


@dataclass(frozen=True)
class Clip:
    name: str
    kind: str
    frames: list[np.ndarray]  # RGB float32 0-1, all the bench's size


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _decoded(path: Path, count: int, skip: int) -> list[np.ndarray]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES)[skip : skip + count]
        return [_read_image(p) for p in files]
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= skip + count:
                break
            if i >= skip:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def _fitted(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` area-downscaled (never enlarged) until it just covers ``width`` x ``height``,
    then its middle cut out: real pixels, no invented ones."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    if scale < 1:
        image = cv2.resize(
            image, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        h, w = image.shape[:2]
    if w < width or h < height:
        raise ValueError(f"a clip of {w}x{h} is smaller than {width}x{height}")
    top, left = (h - height) // 2, (w - width) // 2
    return image[top : top + height, left : left + width].astype(np.float32) / 255


def load_clips(folder: Path, width: int, height: int, count: int, skip: int = 0) -> list[Clip]:
    """Every clip in ``folder`` (by name), ``count`` frames from frame ``skip`` on, as ``width`` x ``height``."""
    clips = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or (path.is_file() and path.suffix.lower() in _FRAME_SUFFIXES):
            continue
        frames = [_fitted(image, width, height) for image in _decoded(path, count, skip)]
        if len(frames) < 2:
            continue  # not a clip, or too short to have motion
        name = path.stem if path.is_file() else path.name
        known = KNOWN.get(name)
        clips.append(Clip(name, known.kind if known else "other", frames))
    if not clips:
        raise ValueError(f"{folder}: no clips (video files or folders of numbered frames)")
    return clips
