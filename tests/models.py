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
