"""Colour conversion on the model's device: decoded YUV planes in, encoder-ready planes out.

The CPU path (``upscaler.colour``, swscale) converts every frame to packed RGB
at full size on the CPU, twice: a 4K RGB frame is 25 MB each way. Here the
decoded planes travel as they are (4:2:0 is half the bytes of RGB), are
converted on the device with the source's matrix and range, and the output
goes back as planes in the output's matrix and range, rounded.

Chroma is upsampled by repeating samples, as swscale does for 8-bit sources,
so a rendition matches the CPU path's within a code value. Downsampling keeps
the MPEG-2/H.264 siting that decoders assume: horizontally co-sited with the
even luma columns (a [1, 2, 1] filter), vertically between the two rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import torch

from upscaler.colour import ColourTags

# pix_fmt -> (bits per sample, log2 horizontal and vertical chroma subsampling)
FORMATS: dict[str, tuple[int, int, int]] = {
    **{f"yuv{j}420p": (8, 1, 1) for j in ("", "j")},
    **{f"yuv{j}422p": (8, 1, 0) for j in ("", "j")},
    **{f"yuv{j}444p": (8, 0, 0) for j in ("", "j")},
    **{f"yuv420p{b}le": (b, 1, 1) for b in (10, 12)},
    **{f"yuv422p{b}le": (b, 1, 0) for b in (10, 12)},
    **{f"yuv444p{b}le": (b, 0, 0) for b in (10, 12)},
}
# (Kr, Kb) by FFmpeg AVColorSpace; anything else is taken as BT.709, as the CPU path does.
_WEIGHTS = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087)}
_WEIGHTS.update({9: (0.2627, 0.0593), 10: (0.2627, 0.0593)})


@dataclass(frozen=True)
class Planes:
    """One picture's Y, Cb, Cr planes as decoded (or to be encoded): integers at ``pix_fmt``'s depth."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    pix_fmt: str

    @property
    def bits(self) -> int:
        return FORMATS[self.pix_fmt][0]

    def luma(self) -> np.ndarray:
        """Y' as float32 in [0, 1] of the coded range (for motion estimation, not display)."""
        return self.y.astype(np.float32) / ((1 << self.bits) - 1)


def _dtype(pix_fmt: str) -> type[np.integer]:
    return np.uint8 if FORMATS[pix_fmt][0] == 8 else np.uint16


def _plane_array(plane: Any, dtype: type[np.integer]) -> np.ndarray:
    """A writable view of ``plane`` (rows padded to its line size)."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(memoryview(plane), dtype).reshape(plane.height, plane.line_size // item)


def planes_of(frame: av.VideoFrame) -> Planes | None:
    """The frame's planes, copied, or None when its format is not planar YUV this module knows."""
    name = frame.format.name
    if name not in FORMATS:
        return None
    dtype = _dtype(name)
    y, u, v = (_plane_array(p, dtype)[:, : p.width].copy() for p in frame.planes[:3])
    return Planes(y, u, v, name)


def frame_of(planes: Planes, tags: ColourTags) -> av.VideoFrame:
    """An encoder-ready frame holding ``planes``, tagged with the output's colour."""
    height, width = planes.y.shape
    frame = av.VideoFrame(width, height, planes.pix_fmt)
    for plane, data in zip(frame.planes, (planes.y, planes.u, planes.v), strict=True):
        _plane_array(plane, _dtype(planes.pix_fmt))[:, : data.shape[1]] = data
    frame.colorspace, frame.color_range = tags.matrix, tags.range
    frame.color_primaries, frame.color_trc = tags.primaries, tags.transfer
    return frame


def _levels(bits: int, tags: ColourTags) -> tuple[float, float, float, float]:
    """(black, luma span, chroma centre, chroma span) in code values (ITU-T H.273). Full range
    only when tagged so (``source_tags`` already reads a yuvj format as full range)."""
    if tags.range == 2:
        peak = float((1 << bits) - 1)
        return 0.0, peak, float(1 << (bits - 1)), peak
    scale = float(1 << (bits - 8))
    return 16 * scale, 219 * scale, 128 * scale, 224 * scale


def _coefficients(tags: ColourTags) -> tuple[float, float, float]:
    kr, kb = _WEIGHTS.get(tags.matrix, _WEIGHTS[1])
    return kr, 1.0 - kr - kb, kb


def to_rgb(planes: Planes, tags: ColourTags, device: torch.device) -> torch.Tensor:
    """RGB (1, 3, H, W) float32 in [0, 1] on ``device`` from the decoded planes."""
    bits, hs, vs = FORMATS[planes.pix_fmt]
    black, luma_span, centre, chroma_span = _levels(bits, tags)
    kr, kg, kb = _coefficients(tags)

    def upload(a: np.ndarray) -> torch.Tensor:
        # uint16 has no arithmetic in torch: widen on the host (int32 is exact) only for deep sources.
        tensor = torch.from_numpy(a if a.dtype == np.uint8 else a.astype(np.int32))
        if device.type == "cuda":
            tensor = tensor.pin_memory()  # page-locked, so the copy runs as DMA beside the host's work
        return tensor.to(device, non_blocking=True).float()

    y = (upload(planes.y) - black) / luma_span
    cb, cr = ((upload(c) - centre) / chroma_span for c in (planes.u, planes.v))
    if hs or vs:
        cb, cr = (c.repeat_interleave(1 << vs, 0).repeat_interleave(1 << hs, 1) for c in (cb, cr))
        cb, cr = (c[: y.shape[0], : y.shape[1]] for c in (cb, cr))
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack((r, g, b)).unsqueeze(0).clamp(0, 1)


def _subsample(c: torch.Tensor, hs: int, vs: int) -> torch.Tensor:
    """(N, C, H, W) to chroma siting: row pairs averaged, then [1, 2, 1] on even columns.

    Linear, so it runs on RGB before the matrix and chroma is computed at its own size.
    Slices rather than padding: each full-size pass costs milliseconds at 4K on a CPU.
    """
    if vs:
        if c.shape[-2] % 2:
            c = torch.cat((c, c[..., -1:, :]), dim=-2)
        c = (c[..., 0::2, :] + c[..., 1::2, :]) * 0.5
    if hs:
        centre, right = c[..., 0::2], c[..., 1::2]
        if right.shape[-1] < centre.shape[-1]:  # odd width: the last column repeats
            right = torch.cat((right, c[..., -1:]), dim=-1)
        left = torch.cat((centre[..., :1], right[..., :-1]), dim=-1)
        c = (left + right).add_(centre, alpha=2.0).mul_(0.25)
    return c


def _weighted(image: torch.Tensor, weights: tuple[float, float, float], offset: float) -> torch.Tensor:
    """weights . (R, G, B) + offset per pixel, as (N, H, W)."""
    plane = image[:, 0] * weights[0]
    plane.add_(image[:, 1], alpha=weights[1]).add_(image[:, 2], alpha=weights[2])
    return plane.add_(offset)


def from_rgb(rgb: torch.Tensor, tags: ColourTags, pix_fmt: str) -> list[Planes]:
    """Encoder-ready planes of each picture in ``rgb`` (N, 3, H, W) in [0, 1], rounded, on the host.

    Values outside [0, 1] end as the nearest legal code (the caller clamps, as the upscaler does).
    """
    return from_rgb_bands([(0, rgb)], tags, pix_fmt, rgb.shape[-2])


def from_rgb_bands(
    bands: Iterable[tuple[int, torch.Tensor]], tags: ColourTags, pix_fmt: str, height: int
) -> list[Planes]:
    """``from_rgb`` of pictures ``height`` rows tall that arrive as bands of rows: (first row,
    (N, 3, rows, W)), in order, each starting on an even row. Each band is converted and
    written into the planes as it comes, so no full-size float picture is needed."""
    bits, hs, vs = FORMATS[pix_fmt]
    black, luma_span, centre, chroma_span = _levels(bits, tags)
    kr, kg, kb = _coefficients(tags)
    peak = (1 << bits) - 1
    # Scale folded into the weights: each pass over a 4K frame costs milliseconds on a CPU.
    luma = (kr * luma_span, kg * luma_span, kb * luma_span)
    to_cb, to_cr = chroma_span / (2 * (1 - kb)), chroma_span / (2 * (1 - kr))
    blue = (-kr * to_cb, -kg * to_cb, (1 - kb) * to_cb)
    red = ((1 - kr) * to_cr, -kg * to_cr, -kb * to_cr)
    dtype = _dtype(pix_fmt)
    planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def write(into: np.ndarray, plane: torch.Tensor) -> None:
        plane = plane.round_().clamp_(0, peak)
        # Straight into the plane on the host; uint16 has no arithmetic in torch, so deep codes go as int32.
        torch.from_numpy(into).copy_(plane.to(torch.uint8) if bits == 8 else plane.to(torch.int32).cpu())

    for first, band in bands:
        count, _, rows, width = band.shape
        if planes is None:
            chroma = (count, -(-height // (1 << vs)), -(-width // (1 << hs)))
            planes = (np.empty((count, height, width), dtype), np.empty(chroma, dtype), np.empty(chroma, dtype))
        rgb = band.float()
        small = _subsample(rgb, hs, vs)
        y, cb, cr = planes
        write(y[:, first : first + rows], _weighted(rgb, luma, black))
        low = first >> vs
        write(cb[:, low : low + small.shape[-2]], _weighted(small, blue, centre))
        write(cr[:, low : low + small.shape[-2]], _weighted(small, red, centre))
    if planes is None:
        raise ValueError("no rows to convert")
    y, cb, cr = planes
    return [Planes(y[i], cb[i], cr[i], pix_fmt) for i in range(y.shape[0])]
