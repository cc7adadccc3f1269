"""Upscaling speed per model: model-only and end-to-end frames per second.

For 1080p -> 2160p and 720x480 -> 2160p, with the real architectures of the
registry models (random weights: the same compute as the released ones).
On a machine without a GPU the sizes are divided by --cpu-divisor (default 8)
so the run stays short; the line says so.

    python bench/upscale_speed.py [--frames 24] [--models RealESRGAN_x4plus ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, write_footage  # noqa: E402
from catalog.devices import torch_device  # noqa: E402
from upscaler.inference import FrameUpscaler  # noqa: E402
from upscaler.loader import load_model  # noqa: E402
from upscaler.registry import ModelChoice  # noqa: E402
from upscaler.render import RenderRequest, render  # noqa: E402


def _architectures() -> dict[str, torch.nn.Module]:
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    return {
        "RealESRGAN_x4plus": ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4),
        "realesr-general-x4v3": Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4),
        "realesr-animevideov3": Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--models", nargs="+", default=list(_architectures()))
    parser.add_argument("--cpu-divisor", type=int, default=8)
    parser.add_argument("--codec", default="hevc")
    args = parser.parse_args()

    device = torch_device(None)
    divisor = 1 if device.type == "cuda" else args.cpu_divisor
    print(f"hardware: {hardware()}")
    if divisor > 1:
        print(f"note: no GPU, every size divided by {divisor} (1080p source = {1920 // divisor}x{1080 // divisor})")
    cases = {"1080p->2160p": (1920, 1080), "720x480->2160p": (720, 480)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            weights = folder / f"{name}.pth"
            torch.save({"params": _architectures()[name].state_dict()}, weights)
            descriptor, identity = load_model(ModelChoice(str(weights)), folder, device)
            for case, (w, h) in cases.items():
                w, h = (w // divisor) // 2 * 2, (h // divisor) // 2 * 2
                tw, th = 3840 // divisor // 2 * 2, 2160 // divisor // 2 * 2
                upscaler = FrameUpscaler(descriptor, device, tw, th)
                image = torch.rand(1, 3, h, w, device=device)
                with torch.inference_mode():
                    upscaler.model_only(image)  # warm-up (cuDNN autotune, allocator)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    for _ in range(args.frames):
                        upscaler.model_only(image)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    model_fps = args.frames / (time.perf_counter() - start)
                source = write_footage(folder / f"{case}.mp4", w, h, args.frames / 25)
                out = folder / f"{name}-{case}.mov"
                result = render(
                    RenderRequest(
                        master=source,
                        output=out,
                        target=f"{tw}x{th}",
                        force=True,
                        model=ModelChoice(str(weights)),
                        codec=args.codec,
                        cache_dir=folder,
                    )
                )
                t = result.provenance["timings"]
                busy = t["model_s"] / t["pipeline_s"]
                print(
                    f"{name} {case} ({w}x{h}->{tw}x{th}, {upscaler.precision}, batch 1, {device}): "
                    f"model-only {model_fps:.2f} fps, end-to-end {t['fps']:.2f} fps "
                    f"({t['fps'] / model_fps:.0%} of model-only; model busy {busy:.0%} of the pipeline; "
                    f"encoder {result.provenance['output']['encoder']})"
                )


if __name__ == "__main__":
    main()
