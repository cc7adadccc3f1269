"""Running a model over a picture in tiles, when a frame is too large for the device.

Each tile is processed with ``overlap`` pixels of real picture around it as
context, so what is kept of it never sees the zero padding at the tile's edge;
neighbouring tiles then cross-fade over a band of ``overlap / 2`` pixels on
each side of their boundary, which hides any seam a model with a very wide
receptive field could still leave. For a model whose receptive field is within
``overlap / 2``, the result equals one pass over the whole frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor], torch.Tensor]


def _weights(
    start: int, stop: int, core_start: int, core_stop: int, length: int, blend: int, device: torch.device
) -> torch.Tensor:
    """Per-pixel weights along one axis for the span [start, stop) of a tile whose core is [core_start, core_stop)."""
    positions = torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5
    weights = torch.ones(stop - start, device=device)
    if blend > 0 and core_start > 0:
        weights = weights * ((positions - (core_start - blend)) / (2 * blend)).clamp(0, 1)
    if blend > 0 and core_stop < length:
        weights = weights * (((core_stop + blend) - positions) / (2 * blend)).clamp(0, 1)
    return weights


def upscale_tiled(model: Model, image: torch.Tensor, scale: int, tile: int, overlap: int = 32) -> torch.Tensor:
    """``model`` applied to ``image`` (N, C, H, W) in tiles of ``tile`` input pixels."""
    n, c, h, w = image.shape
    if tile < 16 or overlap < 0:
        raise ValueError(f"tile size {tile} too small (or overlap {overlap} negative)")
    blend = overlap // 2
    out = torch.zeros((n, c, h * scale, w * scale), device=image.device, dtype=torch.float32)
    total = torch.zeros((1, 1, h * scale, w * scale), device=image.device, dtype=torch.float32)
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            iy0, iy1, ix0, ix1 = max(0, y0 - overlap), min(h, y1 + overlap), max(0, x0 - overlap), min(w, x1 + overlap)
            result = model(image[:, :, iy0:iy1, ix0:ix1]).float()
            # Keep the core plus the blend band; the rest of the context is dropped.
            ky0, ky1, kx0, kx1 = max(0, y0 - blend), min(h, y1 + blend), max(0, x0 - blend), min(w, x1 + blend)
            piece = result[:, :, (ky0 - iy0) * scale : (ky1 - iy0) * scale, (kx0 - ix0) * scale : (kx1 - ix0) * scale]
            wy = _weights(ky0 * scale, ky1 * scale, y0 * scale, y1 * scale, h * scale, blend * scale, image.device)
            wx = _weights(kx0 * scale, kx1 * scale, x0 * scale, x1 * scale, w * scale, blend * scale, image.device)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, ky0 * scale : ky1 * scale, kx0 * scale : kx1 * scale] += piece * mask
            total[:, :, ky0 * scale : ky1 * scale, kx0 * scale : kx1 * scale] += mask
    return out / total
