"""Temporal quality of renditions against ground truth: bicubic, the model frame
by frame, and the model with the temporal stage.

The protocol: generated footage (textured procedural scenes: slow and fast
pans, a zoom, a moving object over a textured background, grain, a fade, hard
cuts between scenes) is area-downscaled to the ground truth G; G downscaled by
the model's scale is the low-resolution master L; L is rendered back to G's
size and compared with G, on the frames themselves (no encoder in between):

- PSNR on luma against G (dB);
- tOF: mean end-point distance between the Farneback flow of G[t-1]->G[t] and
  of V[t-1]->V[t] (pixels);
- warping error: mean squared difference (x1000, RGB in 0-1) between V[t] and
  V[t-1] warped along G's flow, over pixels G's forward-backward check keeps;
  the same figure for G itself is the natural level;
- cut frames: PSNR between the stabilised and the frame-by-frame output on
  the first frame of every scene (the stage must reset there);
- frames per second of the model alone and of model + stage, and then of the
  whole render pipeline (decode, model, stage, encode) with the stage off and on.

    python bench/temporal_quality.py --models ../shared/models/realesr-animevideov3.pth \
        ../shared/models/RealESRGAN_x4plus.pth [--size 640x272] [--frames-per-scene 24] [--json]
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
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware  # noqa: E402
from bench.real_clips import load_clips  # noqa: E402
from catalog.devices import torch_device  # noqa: E402
from upscaler.inference import FrameUpscaler  # noqa: E402
from upscaler.loader import load_model  # noqa: E402
from upscaler.planes import Planes  # noqa: E402
from upscaler.registry import ModelChoice  # noqa: E402
from upscaler.render import RenderRequest, render  # noqa: E402
from upscaler.stabiliser import TemporalStage  # noqa: E402
from upscaler.temporal import DEFAULT_STRENGTH, TemporalSettings  # noqa: E402

SCENES = ("slow pan", "fast pan", "zoom", "moving object", "grain", "fade")
_SUPERSAMPLE = 2  # scenes are drawn at twice G's size, then area-downscaled to G


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Camera-like detail at every scale: octaves of noise down to the pixel, shapes, and thin
    lines (wires, hair, edges: where frame-by-frame models shimmer most)."""
    image = np.zeros((height, width, 3), np.float32)
    octaves = int(np.log2(width)) - 1
    for octave in range(1, octaves + 1):
        cells = 2**octave
        small = rng.random((max(2, cells * height // width), cells, 3)).astype(np.float32)
        image += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) / np.sqrt(octave)
    image = (image - image.min()) / (image.max() - image.min())
    for _ in range(60):
        colour = tuple(float(c) for c in rng.random(3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.integers(3, max(4, height // 12))), colour, -1, lineType=cv2.LINE_AA)
    for _ in range(120):
        colour = tuple(float(c) for c in rng.random(3))
        a = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        b = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, a, b, colour, int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    return image


def _crop(canvas: np.ndarray, x: float, y: float, zoom: float, width: int, height: int) -> np.ndarray:
    """A camera view of ``canvas`` at sub-pixel offset (x, y) and ``zoom``, ``width`` x ``height``."""
    matrix = np.array([[1 / zoom, 0, x], [0, 1 / zoom, y]], np.float32)
    return cv2.warpAffine(
        canvas, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )


def ground_truth(width: int, height: int, per_scene: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """G frames (RGB float32 0-1) and the index of each scene's first frame."""
    rng = np.random.default_rng(seed)
    big_w, big_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    frames: list[np.ndarray] = []
    starts: list[int] = []
    for scene in SCENES:
        starts.append(len(frames))
        canvas = _texture(rng, big_h * 2, big_w * 2)
        sprite = _texture(rng, big_h // 3, big_h // 3)
        for i in range(per_scene):
            if scene == "slow pan":  # 1 px of G a frame
                view = _crop(canvas, i * _SUPERSAMPLE * 1.0, i * 0.3, 1.0, big_w, big_h)
            elif scene == "fast pan":  # 10.7 px of G a frame: sub-pixel phases change every frame
                view = _crop(canvas, i * _SUPERSAMPLE * 10.7, 0.0, 1.0, big_w, big_h)
            elif scene == "zoom":
                zoom = 1.0 + 0.01 * i
                view = _crop(canvas, big_w * 0.5 * (1 - 1 / zoom), big_h * 0.5 * (1 - 1 / zoom), zoom, big_w, big_h)
            elif scene == "moving object":  # a textured disc crossing a still textured background
                view = _crop(canvas, 0.0, 0.0, 1.0, big_w, big_h).copy()
                r = sprite.shape[0] // 2
                cx, cy = int(r + i * (big_w - 2 * r) / per_scene), big_h // 2
                mask = np.zeros((big_h, big_w), np.float32)
                cv2.circle(mask, (cx, cy), r, 1.0, -1, lineType=cv2.LINE_AA)
                placed = np.zeros_like(view)
                placed[cy - r : cy + r, cx - r : cx + r] = sprite[: 2 * r, : 2 * r]
                view = view * (1 - mask[..., None]) + placed * mask[..., None]
            elif scene == "grain":  # a still scene shot on a noisy sensor
                view = _crop(canvas, 0.0, 0.0, 1.0, big_w, big_h) + rng.normal(0, 0.03, (big_h, big_w, 3))
            else:  # fade to black and back
                level = abs(1 - 2 * i / max(1, per_scene - 1))
                view = _crop(canvas, i * 0.5, 0.0, 1.0, big_w, big_h) * level
            small = cv2.resize(np.clip(view, 0, 1).astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
            frames.append(small)
    return frames, starts


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def _luma(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farneback flow from grey ``a`` to ``b`` (pixels)."""
    grey_a, grey_b = (_to_uint8(_luma(x)) for x in (a, b))
    return cv2.calcOpticalFlowFarneback(grey_a, grey_b, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class Reference:
    """G's own motion, computed once: flows between consecutive frames and where they can be trusted.

    ``starts`` are the first frames of the scenes ``names`` names, in order."""

    def __init__(self, truth: list[np.ndarray], starts: list[int], names: tuple[str, ...] = SCENES) -> None:
        self.truth, self.starts, self.names = truth, set(starts), names
        self.forward: dict[int, np.ndarray] = {}
        self.backward: dict[int, np.ndarray] = {}
        self.valid: dict[int, np.ndarray] = {}
        for t in self.pairs():
            forward, backward = _flow(truth[t - 1], truth[t]), _flow(truth[t], truth[t - 1])
            returned = _warp(forward, backward)
            error = np.sum((backward + returned) ** 2, axis=-1)
            allowed = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(returned**2, axis=-1)) + 0.5
            self.forward[t], self.backward[t], self.valid[t] = forward, backward, error <= allowed

    def pairs(self) -> list[int]:
        """Frames t whose t-1 is in the same scene."""
        return [t for t in range(1, len(self.truth)) if t not in self.starts]

    def scores(self, video: list[np.ndarray]) -> dict[str, Any]:
        psnr = float(np.mean([_psnr(_luma(v), _luma(g)) for v, g in zip(video, self.truth, strict=True)]))
        tof, warping = [], []
        for t in self.pairs():
            tof.append(float(np.linalg.norm(self.forward[t] - _flow(video[t - 1], video[t]), axis=-1).mean()))
            difference = (video[t] - _warp(video[t - 1], self.backward[t])) ** 2
            warping.append(float(difference[self.valid[t]].mean()) * 1000)
        scene_of = [self.scene_of(t) for t in self.pairs()]

        def by_scene(values: list[float]) -> dict[str, float]:
            return {
                name: float(np.mean([v for v, s in zip(values, scene_of, strict=True) if s == name]))
                for name in self.names
            }

        return {
            "psnr_db": psnr,
            "tof_px": float(np.mean(tof)),
            "warping_error": float(np.mean(warping)),
            "warping_error_by_scene": by_scene(warping),
            "tof_by_scene": by_scene(tof),
        }

    def scene_of(self, t: int) -> str:
        return self.names[max(i for i, start in enumerate(sorted(self.starts)) if start <= t)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1 / mse)


def _bicubic(low: list[np.ndarray], width: int, height: int) -> list[np.ndarray]:
    return [cv2.resize(x, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) for x in low]


class _TruthMotion(TemporalStage):
    """The stage as it is, moving detail along the ground truth's own motion (Farneback on G)
    instead of the motion it finds in the low-resolution source: how far better motion alone
    could take it. The stage's own checks still weigh it, and cuts reset it as before."""

    def __init__(self, settings: TemporalSettings, reference: Reference) -> None:
        super().__init__(settings)
        self.reference = reference
        self._frame = 0

    def push(
        self, source: np.ndarray | Planes, image: torch.Tensor, out: torch.Tensor, pts: int | None = None
    ) -> list[torch.Tensor]:
        self._frame = pts or 0  # the bench's timestamps are frame numbers
        return super().push(source, image, out, pts)

    def _flows(self, luma: np.ndarray, prev_luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._frame not in self.reference.forward:  # a cut: the stage's own motion finds it
            return super()._flows(luma, prev_luma)
        height, width = luma.shape

        def at_luma_size(flow: np.ndarray) -> np.ndarray:
            shrunk = cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA) * (width / flow.shape[1])
            return np.ascontiguousarray(shrunk, dtype=np.float32)

        return at_luma_size(self.reference.backward[self._frame]), at_luma_size(self.reference.forward[self._frame])


def _stabilised(
    upscaler: FrameUpscaler,
    outputs: list[torch.Tensor],
    low: list[np.ndarray],
    strength: float,
    truth_motion: Reference | None = None,
) -> tuple[list[np.ndarray], float]:
    settings = TemporalSettings(True, strength)
    stage = TemporalStage(settings) if truth_motion is None else _TruthMotion(settings, truth_motion)
    outs, started = [], time.perf_counter()
    for i, image in enumerate(low):
        pixels = _to_uint8(image)
        outs.extend(stage.push(pixels, upscaler.image(pixels), outputs[i], i))
    outs.extend(stage.finish())
    frames = [FrameUpscaler.to_pixels(out, _to_uint8(low[0])).astype(np.float32) / 255 for out in outs]
    return frames, time.perf_counter() - started


def _write_master(path: Path, low: list[np.ndarray]) -> Path:
    """L as a lossless-enough file for the pipeline measurement (x264 CRF 0, yuv444p)."""
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = low[0].shape[1], low[0].shape[0], "yuv444p"
        for i, image in enumerate(low):
            frame = av.VideoFrame.from_ndarray(_to_uint8(image), format="rgb24").reformat(format="yuv444p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _pipeline_fps(model: Path, master: Path, folder: Path, target: str, enabled: bool) -> dict[str, float]:
    out = folder / f"{model.stem}-{'on' if enabled else 'off'}.mov"
    out.unlink(missing_ok=True)
    result = render(
        RenderRequest(
            master, out, folder, target=target, model=ModelChoice(str(model)), force=True,
            temporal=TemporalSettings(enabled),
        )
    )  # fmt: skip
    timings = result.provenance["timings"]
    return {"fps": timings["fps"], "temporal_s": timings.get("temporal_s", 0.0), "pipeline_s": timings["pipeline_s"]}


def run(
    models: list[Path], reference: Reference, strength: float, pipeline: set[str] | None, truth_motion: bool = False
) -> list[dict[str, Any]]:
    truth, starts = reference.truth, sorted(reference.starts)
    height, width = truth[0].shape[:2]
    rows: list[dict[str, Any]] = [{"method": "ground truth", **reference.scores(truth)}]
    device = torch_device(None)
    scales_done: set[int] = set()
    for path in models:
        descriptor, identity = load_model(ModelChoice(str(path)), path.parent, device)
        scale = identity.scale
        low = [cv2.resize(g, (width // scale, height // scale), interpolation=cv2.INTER_AREA) for g in truth]
        if scale not in scales_done:
            scales_done.add(scale)
            rows.append({"method": f"bicubic x{scale}", **reference.scores(_bicubic(low, width, height))})
        upscaler = FrameUpscaler(descriptor, device, width, height)
        with torch.inference_mode():
            raw = [upscaler.upscale(_to_uint8(x)) for x in low[:1]]  # warm-up
            started = time.perf_counter()
            raw = [upscaler.upscale(_to_uint8(x)) for x in low]
            model_s = time.perf_counter() - started
        plain = [FrameUpscaler.to_pixels(o, _to_uint8(low[0])).astype(np.float32) / 255 for o in raw]
        steady, stage_s = _stabilised(upscaler, raw, low, strength)
        cuts = [_psnr(steady[s], plain[s]) for s in starts]
        n = len(low)
        rows.append({"method": f"{identity.name} frame by frame", **reference.scores(plain), "fps": n / model_s})
        rows.append(
            {
                "method": f"{identity.name} + temporal {strength}",
                **reference.scores(steady),
                "fps": n / (model_s + stage_s),
                "stage_share": stage_s / (model_s + stage_s),
                "cut_psnr_db": min(cuts),
            }
        )
        if truth_motion:
            ideal, _ = _stabilised(upscaler, raw, low, strength, reference)
            rows.insert(-1, {"method": f"{identity.name} + temporal, G's motion", **reference.scores(ideal)})
        if pipeline is not None and path.stem not in pipeline:
            continue
        with tempfile.TemporaryDirectory(prefix="footage-temporal-") as tmp:
            master = _write_master(Path(tmp) / "low.mp4", low)
            off = _pipeline_fps(path, master, Path(tmp), f"{width}x{height}", False)
            on = _pipeline_fps(path, master, Path(tmp), f"{width}x{height}", True)
        rows[-1]["pipeline_fps_off"], rows[-1]["pipeline_fps_on"] = off["fps"], on["fps"]
        rows[-1]["pipeline_stage_share"] = on["temporal_s"] / on["pipeline_s"]
    return rows


def _print(rows: list[dict[str, Any]], names: tuple[str, ...]) -> None:
    natural = rows[0]["warping_error"]
    print(f"{'method':44} {'PSNR dB':>8} {'tOF px':>7} {'warp err':>9} {'x truth':>7} {'fps':>6}  notes")
    for row in rows:
        notes = []
        if "stage_share" in row:
            notes.append(f"stage {row['stage_share']:.0%} of model+stage")
            notes.append(f"cut frames PSNR vs frame by frame >= {row['cut_psnr_db']:.1f} dB")
        if "pipeline_fps_on" in row:
            notes.append(
                f"pipeline {row['pipeline_fps_off']:.2f} -> {row['pipeline_fps_on']:.2f} fps "
                f"(stage {row['pipeline_stage_share']:.0%} of render time)"
            )
        fps = f"{row['fps']:.2f}" if "fps" in row else "-"
        print(
            f"{row['method']:44} {row['psnr_db']:8.2f} {row['tof_px']:7.3f} {row['warping_error']:9.4f} "
            f"{row['warping_error'] / natural:7.2f} {fps:>6}  {'; '.join(notes)}"
        )
    truth_by_scene = rows[0]["warping_error_by_scene"]
    tables = (
        ("warping_error_by_scene", "warping error (x1000, RGB 0-1)", lambda n, v: v),
        (
            "warping_error_by_scene",
            "warping error as a multiple of the truth's own",
            lambda n, v: v / truth_by_scene[n],
        ),
        ("tof_by_scene", "tOF (px)", lambda n, v: v),
    )
    for key, title, shown in tables:
        print(f"{title} by scene:")
        print(f"{'method':44} " + " ".join(f"{name[:18]:>18}" for name in names))
        for row in rows:
            print(f"{row['method']:44} " + " ".join(f"{shown(n, row[key][n]):18.4f}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", type=Path, required=True, help="Model files (.pth), e.g. ../shared/models/*.pth"
    )
    parser.add_argument(
        "--clips", type=Path, help="A folder of real clips (bench/real_clips.py) instead of the generated scenes."
    )
    parser.add_argument(
        "--size",
        help="Ground-truth size G, WxH (divisible by the models' scale; default 640x272, 416x240 with --clips).",
    )
    parser.add_argument("--frames-per-scene", type=int, default=None, help="Default 24 generated, 32 a real clip.")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    parser.add_argument(
        "--pipeline", nargs="*", help="Model file stems to also time through the whole render pipeline (default: all)."
    )
    parser.add_argument(
        "--truth-motion",
        action="store_true",
        help="Also run the stage along the ground truth's own motion: what better motion estimation could buy.",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = args.size or ("416x240" if args.clips else "640x272")
    width, height = (int(v) for v in size.lower().split("x"))
    if args.clips:
        clips = load_clips(args.clips, width, height, args.frames_per_scene or 32)
        truth = [frame for clip in clips for frame in clip.frames]
        starts = list(np.cumsum([0] + [len(clip.frames) for clip in clips[:-1]]))
        names = tuple(f"{clip.name} ({clip.kind})" for clip in clips)
    else:
        truth, starts = ground_truth(width, height, args.frames_per_scene or 24)
        names = SCENES
    pipeline = set(args.pipeline) if args.pipeline is not None else None
    rows = run(args.models, Reference(truth, starts, names), args.strength, pipeline, args.truth_motion)
    print(f"# {hardware()} device={torch_device(None)} G={width}x{height} scenes={', '.join(names)} "
          f"frames={len(truth)}")  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print(rows, names)


if __name__ == "__main__":
    main()
