"""Running a model over a picture in overlapping tiles, seams blended away.

Used when a frame is too large for the device's memory. Tiles overlap by more
than the model's receptive field reaches, and each output pixel is a weighted
mean of the tiles covering it, weights falling linearly to the tile edges, so
the result matches a single pass up to floating-point noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor], torch.Tensor]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    weights = torch.ones(length, device=device)
    if overlap > 0:
        ramp = torch.linspace(1.0 / (overlap + 1), 1.0, overlap, device=device)
        if not at_start:
            weights[:overlap] = ramp
        if not at_end:
            weights[-overlap:] = ramp.flip(0)
    return weights


def upscale_tiled(model: Model, image: torch.Tensor, scale: int, tile: int, overlap: int = 32) -> torch.Tensor:
    """``model`` applied to ``image`` (N, C, H, W) in tiles of ``tile`` input pixels."""
    n, c, h, w = image.shape
    if tile <= 2 * overlap:
        raise ValueError(f"tile size {tile} must exceed twice the overlap {overlap}")
    step = tile - overlap
    out = torch.zeros((n, c, h * scale, w * scale), device=image.device, dtype=torch.float32)
    weight = torch.zeros((1, 1, h * scale, w * scale), device=image.device, dtype=torch.float32)
    ys, xs = _starts(h, tile, step), _starts(w, tile, step)
    for y in ys:
        for x in xs:
            th, tw = min(tile, h - y), min(tile, w - x)
            result = model(image[:, :, y : y + th, x : x + tw]).float()
            wy = _ramp(th * scale, overlap * scale, y == 0, y + th >= h, image.device)
            wx = _ramp(tw * scale, overlap * scale, x == 0, x + tw >= w, image.device)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y * scale : (y + th) * scale, x * scale : (x + tw) * scale] += result * mask
            weight[:, :, y * scale : (y + th) * scale, x * scale : (x + tw) * scale] += mask
    return out / weight
