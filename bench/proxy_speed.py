"""Proxy speed, size and fidelity, and what a rendition's proxy costs beside its render.

Masters: the bench's 1080p25 footage (bench.common.write_footage: noise-textured shots moving
4 px a frame, cuts every 4 s; the hardest case for an encoder) as H.264 and as ProRes 422 HQ
10-bit, and a generated edit (tests/edits.py: textured scenes with grain, a drifting and a
handheld camera, a dissolve) as ProRes, the closest to camera footage this machine can make.
Each proxy (upscaler.proxy.make_proxy, as footage makes them) is timed and measured: speed
against real time, bit rate, and luma PSNR of every proxy frame against the master's frame at
the same time scaled to the proxy's size (mean and worst frame).

Then a rendition: a 480x270 master rendered to 1920x1080 with realesr-animevideov3 (the real
weights from ../shared/models when there, else the same architecture with random weights: the
same compute), HEVC, temporal stage on; its proxy is made from the rendition as the follow-up
job does, and its time is given as a share of the render's.

    python bench/proxy_speed.py [--seconds 10] [--render-frames 24] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench.common import hardware, write_footage  # noqa: E402
from upscaler.proxy import make_proxy  # noqa: E402

SHARED_MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "realesr-animevideov3.pth"
FPS = 25


def _lumas(path: Path, size: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
    """Luma of every frame by its time in milliseconds, scaled to ``size`` when given."""
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1], format="gray", interpolation="BICUBIC")
            else:
                frame = frame.reformat(format="gray")
            out[round((frame.time or 0.0) * 1000)] = frame.to_ndarray().astype(np.float64)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def _write_edit(path: Path, seconds: float) -> Path:
    from edits import Edit, Shot, render_edit

    shots = (Shot(0, seconds / 2, "drift"), Shot(1, seconds / 2, "handheld"))
    pictures, _ = render_edit(Edit(shots=shots, transitions=("dissolve",), width=1920, height=1080, seed=3))
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("prores_ks", rate=FPS, options={"profile": "3"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv422p10le"
        for i, picture in enumerate(pictures):
            rgb = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _measure(name: str, master: Path, seconds: float, folder: Path) -> dict[str, Any]:
    made = make_proxy(master, folder / f"{master.stem}.proxy.mp4", {"kind": "master", "name": master.name})
    source = _lumas(master, (made.width, made.height))
    proxy = _lumas(made.path)
    scores = [_psnr(source[t], proxy[t]) for t in proxy if t in source]
    return {
        "master": name,
        "proxy": f"{made.width}x{made.height}",
        "seconds": round(made.seconds, 2),
        "x_real_time": round(seconds / made.seconds, 2),
        "mbit_s": round(made.size_bytes * 8 / seconds / 1e6, 2),
        "psnr_mean_db": round(float(np.mean(scores)), 2),
        "psnr_min_db": round(float(np.min(scores)), 2),
        "frames_compared": len(scores),
    }


def _rendition_share(folder: Path, frames: int) -> dict[str, Any]:
    from tiny_models import write_tiny_compact

    from upscaler.registry import ModelChoice
    from upscaler.render import RenderRequest, render

    master = write_footage(folder / "small.mp4", 480, 270, frames / FPS)
    if SHARED_MODEL.exists():
        weights, which = SHARED_MODEL, "realesr-animevideov3 (real weights)"
    else:
        weights, which = write_tiny_compact(folder / "compact.pth", scale=4), "compact x4 (random weights)"
    output = folder / "small.1080p.hevc.mov"
    started = time.perf_counter()
    render(RenderRequest(master, output, folder, target="1080p", model=ModelChoice(str(weights)), codec="hevc"))
    render_s = time.perf_counter() - started
    made = make_proxy(output, folder / "rendition.proxy.mp4", {"kind": "rendition", "name": output.name})
    return {
        "render": f"480x270 -> 1920x1080, {which}, hevc, {frames} frames",
        "render_s": round(render_s, 2),
        "proxy_s": round(made.seconds, 2),
        "proxy_share_of_render": round(made.seconds / render_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each 1080p master")
    parser.add_argument("--render-frames", type=int, default=24, help="frames of the rendition rendered")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="footage-proxy-bench-") as tmp:
        folder = Path(tmp)
        h264 = write_footage(
            folder / "bench.h264.mp4", 1920, 1080, args.seconds, options={"preset": "fast", "crf": "16"}
        )
        rows.append(_measure("1080p25 H.264 (bench footage)", h264, args.seconds, folder))
        prores = write_footage(
            folder / "bench.prores.mov",
            1920,
            1080,
            args.seconds,
            codec="prores_ks",
            pix_fmt="yuv422p10le",
            options={"profile": "3"},
        )
        rows.append(_measure("1080p25 ProRes 422 HQ (bench footage)", prores, args.seconds, folder))
        # The edit is rendered whole in memory first (float RGB): at most 4 s of it.
        edit_s = min(args.seconds, 4.0)
        edit = _write_edit(folder / "edit.prores.mov", edit_s)
        rows.append(_measure("1080p25 ProRes 422 HQ (generated edit, grain)", edit, edit_s, folder))
        share = _rendition_share(folder, args.render_frames)
    result = {"hardware": hardware(), "proxies": rows, "rendition": share}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(result["hardware"])
    print(f"{'master':46} {'proxy':>9} {'s':>6} {'x rt':>6} {'Mb/s':>6} {'PSNR':>6} {'min':>6}")
    for r in rows:
        print(
            f"{r['master']:46} {r['proxy']:>9} {r['seconds']:>6} {r['x_real_time']:>6} {r['mbit_s']:>6} "
            f"{r['psnr_mean_db']:>6} {r['psnr_min_db']:>6}"
        )
    print(
        f"rendition: {share['render']}: render {share['render_s']} s, its proxy {share['proxy_s']} s "
        f"({share['proxy_share_of_render']:.1%} of the render)"
    )


if __name__ == "__main__":
    main()
