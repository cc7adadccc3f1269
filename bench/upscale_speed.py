"""Upscaling speed per model and size: model-only fps, end-to-end fps, and the pipeline ceiling.

For 1080p -> 2160p and 720x480 -> 2160p, with the real architectures of the
registry models (random weights: the same compute as the released ones).
The pipeline ceiling is the same render with a model that costs nothing
(nearest-neighbour upscaling), so only decode, colour, transfer, resize and
encode remain. Each render reports its stages' busy seconds per frame and, on a
GPU, the device's busy share (CUDA events around the model stage's batches).
On a machine without a GPU the sizes are divided by --cpu-divisor (default 8,
1 for full size) so the run stays short; the line says so.

Every render signs its Content Credentials (a local identity), as footage's do: each
row gives the signing's seconds and its share of the render's wall time. Then a file
of --sign-gb gigabytes (raw video in QuickTime) is signed afterwards, as
``footage credentials --missing`` does (sign, read back, hash for the catalog).

    python bench/upscale_speed.py [--frames 24] [--models ...] [--codecs hevc h264] [--sign-gb 1] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, write_footage  # noqa: E402
from catalog.devices import torch_device  # noqa: E402
from upscaler import render as render_module  # noqa: E402
from upscaler.credentials import sign_rendition  # noqa: E402
from upscaler.identity import SigningSettings, load_identity  # noqa: E402
from upscaler.inference import FrameUpscaler  # noqa: E402
from upscaler.loader import load_model  # noqa: E402
from upscaler.registry import ModelChoice  # noqa: E402
from upscaler.render import CHUNK_SECONDS, RenderRequest, render  # noqa: E402
from upscaler.temporal import TemporalSettings  # noqa: E402

CEILING = "ceiling (no model)"


def _architectures() -> dict[str, torch.nn.Module]:
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    return {
        "RealESRGAN_x4plus": ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4),
        # x2plus: the same network, x4, on the input pixel-unshuffled by 2 (12 channels at a quarter
        # of the positions); spandrel reads it back as a x2 model, as it does the released weights.
        "RealESRGAN_x2plus": ESRGAN(in_nc=12, out_nc=3, num_filters=64, num_blocks=23, scale=4, shuffle_factor=2),
        "realesr-general-x4v3": Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4),
        "realesr-animevideov3": Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4),
    }


class _Nearest(torch.nn.Module):
    """A 4x "model" that costs nothing: what is left of a render is the pipeline itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="nearest")


def _free_model(descriptor: Any) -> Any:
    from spandrel import ImageModelDescriptor

    return ImageModelDescriptor(_Nearest(), {}, descriptor.architecture, "SR", [], True, True, 4, 3, 3)


def _model_only(upscaler: FrameUpscaler, width: int, height: int, frames: int, device: torch.device) -> float:
    image = torch.rand(1, 3, height, width, device=device)
    with torch.inference_mode():
        upscaler.model_only(image)  # warm-up (cuDNN autotune, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(frames):
            upscaler.model_only(image)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return frames / (time.perf_counter() - start)


def _render(
    source: Path,
    out: Path,
    weights: Path,
    target: tuple[int, int],
    codec: str,
    free: bool,
    on_device: bool,
    temporal: bool,
    chunks: int | None,
    chunk_seconds: float,
    signing: SigningSettings,
) -> dict[str, Any]:
    request = RenderRequest(
        signing=signing,
        encode_chunks=chunks,
        chunk_seconds=chunk_seconds,
        colour_on_device=on_device,
        temporal=TemporalSettings(enabled=temporal),
        master=source,
        output=out,
        target=f"{target[0]}x{target[1]}",
        force=True,
        model=ModelChoice(str(weights)),
        codec=codec,
        cache_dir=weights.parent,
    )
    started = time.perf_counter()
    if free:

        def load(*args: Any) -> Any:
            descriptor, identity = load_model(*args)
            return _free_model(descriptor), identity

        with mock.patch.object(render_module, "load_model", load):
            result = render(request)
    else:
        result = render(request)
    wall_s = time.perf_counter() - started
    out.unlink()
    timings = result.provenance["timings"]
    stages = {"model": timings["model_s"]}
    stages.update({k.removesuffix("_busy_s"): v for k, v in timings.items() if k.endswith("_busy_s")})
    if "temporal_s" in timings:  # the model stage's time holds the temporal stage's
        stages["temporal"] = timings["temporal_s"]
        stages["model"] -= timings["temporal_s"]
    return {
        "fps": timings["fps"],
        "ms_per_frame": {k: round(1000 * v / result.frames, 2) for k, v in stages.items()},
        "model_busy": round(timings["model_s"] / timings["pipeline_s"], 3),
        # The device's busy share of the render (CUDA events around each batch); None on a CPU.
        "gpu_busy": round(timings["device_s"] / timings["pipeline_s"], 3) if "device_s" in timings else None,
        "encoder": result.provenance["output"]["encoder"],
        "precision": result.provenance["processing"]["precision"],
        "colour": "device" if on_device else "swscale",
        "batch": result.provenance["processing"]["batch"],
        "encoding": result.provenance["processing"]["encoding"],
        "temporal": temporal,
        "sign_s": timings["sign_s"],
        "sign_share": round(timings["sign_s"] / wall_s, 4),
    }


def _sign_afterwards(folder: Path, gigabytes: float, signing: SigningSettings) -> dict[str, Any]:
    """Sign a ``gigabytes`` file that exists already, as ``credentials --missing`` does: the
    signed copy, its read-back check, and the content hash the catalog records."""
    import av
    import numpy as np

    from catalog.media import content_hash

    video = folder / "unsigned.mov"
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8)
    frames = max(1, round(gigabytes * 1e9 / frame.nbytes))
    with av.open(str(video), "w", format="mov") as out:
        stream: Any = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            for _ in range(frames):  # the same packet again: the bytes are what is measured
                out.mux(av.Packet(bytes(packet)))
    size = video.stat().st_size
    provenance = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "master": {"path": "master.mov", "content_hash": "sha256:" + "0" * 64, "width": 960, "height": 540},
        "model": {"name": "bench", "sha256": "0" * 64, "scale": 2},
        "output": {"width": 1920, "height": 1080},
        "software": {"footage": "bench"},
    }
    identity = load_identity(signing)
    started = time.perf_counter()
    sign_rendition(video, video.name, None, provenance, identity)
    signed_s = time.perf_counter() - started
    content_hash(video)
    total_s = time.perf_counter() - started
    video.unlink()
    return {
        "size_gb": round(size / 1e9, 3),
        "sign_s": round(signed_s, 3),
        "with_catalog_hash_s": round(total_s, 3),
        "target_s": round(1 + size / 1e9, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--models", nargs="*", default=list(_architectures()))
    parser.add_argument("--cpu-divisor", type=int, default=8)
    parser.add_argument("--codecs", nargs="+", default=["hevc"])
    parser.add_argument("--cases", nargs="+", default=["1080p->2160p", "720x480->2160p"])
    parser.add_argument(
        "--colour", choices=["device", "swscale", "both"], default="both", help="where colour is converted"
    )
    parser.add_argument("--temporal", choices=["off", "on", "both"], default="off", help="the temporal stage")
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[0],
        help="chunk encoders at once (1: one encoder; 0: footage's choice for this machine)",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=CHUNK_SECONDS,
        help="chunk length (shorter: several chunks in a short run)",
    )
    parser.add_argument("--sign-gb", type=float, default=1.0, help="size of the file signed afterwards (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    device = torch_device(None)
    divisor = 1 if device.type == "cuda" else args.cpu_divisor
    sizes = {"1080p->2160p": (1920, 1080), "720x480->2160p": (720, 480)}
    rows: list[dict[str, Any]] = []
    header = {"hardware": hardware(), "device": str(device), "cores": os.cpu_count(), "divisor": divisor}
    if not args.json:
        print(f"hardware: {header['hardware']}")
        if divisor > 1:
            print(f"note: no GPU, every size divided by {divisor} (1080p source = {1920 // divisor}x{1080 // divisor})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        signing = SigningSettings(home=folder / "credentials")
        architectures = _architectures()
        weights = {}
        for name in {*args.models, "realesr-animevideov3"}:
            weights[name] = folder / f"{name}.pth"
            torch.save({"params": architectures[name].state_dict()}, weights[name])
        for case in args.cases:
            w, h = sizes[case]
            w, h = (w // divisor) // 2 * 2, (h // divisor) // 2 * 2
            target = (3840 // divisor // 2 * 2, 2160 // divisor // 2 * 2)
            source = write_footage(folder / f"{case}.mp4", w, h, args.frames / 25)
            for codec in args.codecs:
                runs = [(CEILING, "realesr-animevideov3", True)] + [(m, m, False) for m in args.models]
                colours = [True, False] if args.colour == "both" else [args.colour == "device"]
                temporals = [False, True] if args.temporal == "both" else [args.temporal == "on"]
                for (label, model, free), on_device, temporal, chunks in itertools.product(
                    runs, colours, temporals, args.chunks
                ):
                    row: dict[str, Any] = {"model": label, "case": case, "size": f"{w}x{h}->{target[0]}x{target[1]}"}
                    row["codec"] = codec
                    if not free:
                        descriptor, _ = load_model(ModelChoice(str(weights[model])), folder, device)
                        upscaler = FrameUpscaler(descriptor, device, *target)
                        row["model_only_fps"] = round(_model_only(upscaler, w, h, args.frames, device), 3)
                    out = folder / f"{model}-{case}.mov"
                    row.update(
                        _render(
                            source,
                            out,
                            weights[model],
                            target,
                            codec,
                            free,
                            on_device,
                            temporal,
                            chunks or None,
                            args.chunk_seconds,
                            signing,
                        )
                    )
                    if "model_only_fps" in row:
                        row["end_to_end_ratio"] = round(row["fps"] / row["model_only_fps"], 3)
                    rows.append(row)
                    # With --json each row still shows as it is measured (on stderr): a long
                    # run shows progress, and one cut off keeps what it measured.
                    _print(row, sys.stderr if args.json else sys.stdout)
        afterwards = _sign_afterwards(folder, args.sign_gb, signing) if args.sign_gb > 0 else None
    if args.json:
        print(json.dumps({**header, "rows": rows, "signed_afterwards": afterwards}))
    elif afterwards is not None:
        print(
            f"signed afterwards: {afterwards['size_gb']} GB in {afterwards['sign_s']} s "
            f"({afterwards['with_catalog_hash_s']} s with the catalog's content hash; "
            f"target {afterwards['target_s']} s)"
        )


def _print(row: dict[str, Any], out: TextIO) -> None:
    model_only = f"model-only {row['model_only_fps']:.2f} fps, " if "model_only_fps" in row else ""
    ratio = f" ({row['end_to_end_ratio']:.0%} of model-only)" if "end_to_end_ratio" in row else ""
    stages = " ".join(f"{k} {v}" for k, v in row["ms_per_frame"].items())
    gpu = f"GPU busy {row['gpu_busy']:.0%}; " if row["gpu_busy"] is not None else ""
    print(
        f"{row['model']} {row['case']} {row['size']} {row['codec']}: {model_only}"
        f"end-to-end {row['fps']:.2f} fps{ratio}; model busy {row['model_busy']:.0%}; {gpu}"
        f"ms/frame busy: {stages}; colour {row['colour']}, temporal {'on' if row['temporal'] else 'off'}, "
        f"{row['precision']}, batch {row['batch']}, {row['encoder']}, encoding {row['encoding']}; "
        f"signing {row['sign_s']} s ({row['sign_share']:.2%} of the render)",
        file=out,
        flush=True,
    )


if __name__ == "__main__":
    main()
