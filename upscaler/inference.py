"""A loaded model applied to one RGB frame: precision, tiling, exact resize.

Tensors are NCHW, RGB, float in [0, 1]; pixels outside are (H, W, 3) uint8 or
uint16 arrays. Rounding (never truncation) takes floats back to integers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from spandrel import ImageModelDescriptor

from upscaler.bands import resized_bands
from upscaler.tiling import upscale_tiled

logger = logging.getLogger(__name__)
# Tiles never shrink below this after running out of memory: smaller ones
# spend more on their overlap than on the picture.
_MIN_TILE = 128
# fp16 overflow shows as NaN/inf; underflow collapses activations to zero, a
# black picture. An output whose brightest value is under this (of 1.0) from
# an input brighter than _LIT_INPUT is taken as collapsed; a genuinely dark
# frame (a fade) stays dark in any precision and is not judged.
_BLACK_OUTPUT = 1e-3
_LIT_INPUT = 0.05


def _precision_for(descriptor: ImageModelDescriptor[Any], device: torch.device) -> torch.dtype:
    if device.type != "cuda":
        return torch.float32  # half precision on a CPU is slower, not faster
    if descriptor.supports_half:
        return torch.float16
    if descriptor.supports_bfloat16:
        return torch.bfloat16
    return torch.float32


def _memory_format_for(model: torch.nn.Module) -> torch.memory_format:
    """Channels-last for convolutional models: oneDNN and cuDNN run 3x3 convolutions faster
    on NHWC (measured on a 2-core EPYC: realesr-general-x4v3 1.9-2.2x, RRDBNet 1.1-1.2x); results
    differ from NCHW only in float rounding order. Other models take frames as they come."""
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.preserve_format


@dataclass
class FrameUpscaler:
    """Upscales frames to exactly ``width`` x ``height``, rotating them upright first."""

    descriptor: ImageModelDescriptor[Any]
    device: torch.device
    width: int
    height: int
    rotation: int = 0
    tile: int | None = None
    tile_overlap: int = 32
    dtype: torch.dtype = field(init=False)
    fallbacks: list[str] = field(default_factory=list)
    max_batch: int = 1 << 30  # lowered when a batch runs out of GPU memory
    _checked: bool = False
    memory_format: torch.memory_format = field(init=False)

    def __post_init__(self) -> None:
        self.dtype = _precision_for(self.descriptor, self.device)
        self.memory_format = _memory_format_for(self.descriptor.model)
        self.descriptor.model.to(self.device, self.dtype, memory_format=self.memory_format)

    @property
    def precision(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def _model(self, image: torch.Tensor) -> torch.Tensor:
        # The output stays in the model's layout: on a CPU, converting an 8K channels-last
        # output to NCHW costs more (127 ms) than resizing and converting it as it is saves (58 ms).
        return self.descriptor(image.to(self.dtype, memory_format=self.memory_format))

    def model_only(self, image: torch.Tensor) -> torch.Tensor:
        """The model at its own scale on an NCHW float tensor (tiles when set or needed).

        Out of GPU memory, a batch is split in halves first, then frames go in tiles.
        """
        if image.shape[0] > self.max_batch:
            return torch.cat([self.model_only(part) for part in image.split(self.max_batch)])
        while True:
            try:
                if self.tile:
                    return upscale_tiled(self._model, image, self.descriptor.scale, self.tile, self.tile_overlap)
                return self._model(image).float()
            except torch.OutOfMemoryError:
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                if image.shape[0] > 1:
                    self.max_batch = (image.shape[0] + 1) // 2
                    self._note_fallback(f"batches of {self.max_batch} after running out of GPU memory")
                    return self.model_only(image)
                if self.tile == _MIN_TILE:
                    raise
                self.tile = max(_MIN_TILE, (self.tile or max(image.shape[-2:])) // 2)
                self._note_fallback(f"tiles of {self.tile} px after running out of GPU memory")

    def _note_fallback(self, what: str) -> None:
        if what not in self.fallbacks:
            self.fallbacks.append(what)
            logger.warning("continuing in %s", what)

    def _checked_model(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model_only(image)
        if not self._checked:
            # Reduced precision can overflow to NaN or collapse to black on some
            # models; check the first frame and fall back to fp32 for good.
            black = out.amax() < _BLACK_OUTPUT and image.amax() > _LIT_INPUT
            broken = not torch.isfinite(out).all() or black
            if broken and self.dtype != torch.float32:
                self.fallbacks.append(f"{self.precision} gave NaN or black output: fp32 used")
                logger.warning("%s output broken: falling back to fp32", self.precision)
                self.dtype = torch.float32
                self.descriptor.model.to(self.device, self.dtype, memory_format=self.memory_format)
                out = self.model_only(image)
            self._checked = True
        return out

    def upscale(self, pixels: np.ndarray) -> torch.Tensor:
        """The upright output picture of RGB ``pixels`` (H, W, 3): (1, 3, height, width) float on the device.

        Values are in [0, 1] before rounding; call under ``torch.inference_mode``.
        """
        return self.upscale_image(self.image(pixels))

    def image(self, pixels: np.ndarray) -> torch.Tensor:
        """RGB ``pixels`` (H, W, 3) uint8/uint16 as a (1, 3, H, W) float tensor in [0, 1] on the device."""
        tensor = torch.from_numpy(pixels.astype(np.float32) if pixels.dtype == np.uint16 else pixels)
        return tensor.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float() / _peak(pixels)

    def upscale_image(self, image: torch.Tensor) -> torch.Tensor:
        """The upright outputs of ``image`` (N, 3, H, W) RGB in [0, 1] on the device, as coded (not yet rotated)."""
        _, whole = next(self.upscale_bands(image, None))
        return whole

    def upscale_bands(self, image: torch.Tensor, rows: int | None) -> Iterator[tuple[int, torch.Tensor]]:
        """``upscale_image``'s outputs as bands of ``rows`` rows (None: one band), with their first row."""
        if self.rotation:
            image = torch.rot90(image, k=self.rotation // 90, dims=(2, 3))
        yield from resized_bands(self._checked_model(image), self.height, self.width, rows)

    @staticmethod
    def to_pixels(out: torch.Tensor, like: np.ndarray) -> np.ndarray:
        """``out`` (1, 3, H, W) in [0, 1] as (H, W, 3) pixels of ``like``'s type, rounded, never truncated."""
        peak = _peak(like)
        rounded = (out.clamp(0, 1) * peak).round()
        result = rounded[0].permute(1, 2, 0).to(torch.int32 if peak > 255 else torch.uint8).cpu().numpy()
        return result.astype(np.uint16) if peak > 255 else result

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.to_pixels(self.upscale(pixels), pixels)


def _peak(pixels: np.ndarray) -> float:
    """Full scale of uint8 or uint16 pixels."""
    return 65535.0 if pixels.dtype == np.uint16 else 255.0
