"""Tiny real models with random weights, saved the way real ones are shipped,
so the code under test loads them through its normal path."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 512,  # the real ViT-B-32 size, so the catalog's HNSW index is used
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


def write_tiny_clip(directory: Path, seed: int = 0) -> str:
    """Write an open_clip ``local-dir`` model and return its model name (``local-dir:...``)."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{directory}", load_weights=False)
    torch.save(model.state_dict(), directory / "open_clip_pytorch_model.bin")
    return f"local-dir:{directory}"


def write_tiny_compact(path: Path, scale: int = 4, seed: int = 0) -> Path:
    """A random-weight SRVGGNetCompact (realesr-general-x4v3's architecture), saved as Real-ESRGAN does."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale, act_type="prelu")
    _nudge_towards_identity(model)
    torch.save({"params": model.state_dict()}, path)
    return path


def write_tiny_rrdb(path: Path, scale: int = 4, seed: int = 0) -> Path:
    """A random-weight RRDBNet (RealESRGAN_x4plus's architecture) with one block, saved with ``params_ema``."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)
    torch.save({"params_ema": model.state_dict()}, path)
    return path


def _nudge_towards_identity(model: torch.nn.Module) -> None:
    # Random weights produce near-black output; scaling the last conv keeps
    # values spread so colour and NaN checks see real pictures.
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(4.0)


def write_identity_compact(path: Path, scale: int = 4) -> Path:
    """An SRVGGNetCompact whose learned residual is zero: it outputs the nearest-neighbour
    upscale of its input exactly, so colour and bit depth can be checked end to end."""
    from spandrel.architectures.Compact import Compact

    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale, act_type="prelu")
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.zero_()
        assert last.bias is not None
        last.bias.zero_()
    torch.save({"params": model.state_dict()}, path)
    return path
