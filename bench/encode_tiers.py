"""Each output codec's speed, size and quality at the rendition's size, standard and fast tiers.

Frames: generated edits (tests/edits.py: textured scenes with grain, a drifting,
panning or handheld camera, cuts and dissolves) at the output size, converted to
the encoder's 8-bit pixel format once; each codec of footage's table encodes
them with its software encoder and options (hardware encoders where they open).
Printed per codec: encoder fps on this machine, bit rate at 25 fps, and PSNR of
the decoded luma against the frames that went in (the quality each tier states).

    python bench/encode_tiers.py [--frames 48] [--size 3840x2160] [--codecs h264 h264-fast ...] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench.common import hardware  # noqa: E402
from upscaler.encode import CODECS, choose_encoder  # noqa: E402

FPS = 25


def _frames(width: int, height: int, count: int) -> list[av.VideoFrame]:
    from edits import Edit, Shot, render_edit

    shots = (Shot(0, count / FPS, "drift"), Shot(1, count / FPS, "handheld"))
    pictures, _ = render_edit(Edit(shots=shots, transitions=("dissolve",), width=width, height=height, seed=3))
    frames = []
    for picture in pictures[:count]:
        rgb = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frames.append(frame)
    return frames


def _encode(codec: str, frames: list[av.VideoFrame]) -> dict[str, Any]:
    choice = choose_encoder(codec, 8)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=choice.codec.suffix.lstrip(".")) as out:
        stream: Any = out.add_stream(choice.encoder, rate=FPS, options=choice.options)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, choice.pix_fmt
        converted = [f.reformat(format=choice.pix_fmt) for f in frames]
        start = time.perf_counter()
        for i, frame in enumerate(converted):
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        seconds = time.perf_counter() - start
    size = buffer.getbuffer().nbytes
    buffer.seek(0)
    errors = []
    with av.open(buffer, "r") as decoded:
        for original, frame in zip(frames, decoded.decode(video=0), strict=True):
            a = original.to_ndarray(format="gray").astype(np.float64)
            b = frame.to_ndarray(format="gray").astype(np.float64)
            errors.append(float(np.mean((a - b) ** 2)))
    mse = max(1e-9, float(np.mean(errors)))
    return {
        "codec": codec,
        "encoder": choice.encoder,
        "options": choice.options,
        "fps": round(len(frames) / seconds, 2),
        "mbit_s": round(size * 8 * FPS / len(frames) / 1e6, 1),
        "psnr_y_db": round(10 * np.log10(255**2 / mse), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--codecs", nargs="+", default=list(CODECS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = _frames(width, height, args.frames)
    header = {"hardware": hardware(), "cores": os.cpu_count(), "size": args.size, "frames": len(frames)}
    if not args.json:
        print("  ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    rows = []
    for codec in args.codecs:
        row = _encode(codec, frames)
        rows.append(row)
        if not args.json:
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.json:
        print(json.dumps({**header, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
