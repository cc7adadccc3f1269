"""A model's output resized to the target in bands of rows, each equal to the same rows of one whole resize.

On a CPU the resize and colour conversion of a 4K frame are bound by memory,
not arithmetic: a whole-frame pass writes a 100 MB float picture that the
next pass reads back. Band by band, each band's resize, clamp and conversion
happen while it is still in cache (on a 2-core EPYC, 8K -> 4K with 4:2:0 out:
233 ms whole, 127 ms in bands of 128 rows, bit-identical). On a GPU the whole
frame is one band.

A band is exact because it is resized from a slice of the input that holds
every tap its rows use plus a margin, starting on a row where the slice's
pixel grid coincides with the whole picture's, and at the whole picture's
scale; rows near a slice's cut edge are computed and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

# Output rows a band holds on a CPU: big enough that per-band overhead is small, small
# enough that a band's float copies stay in cache (128 x 3840 x 3 x 4 bytes is 6 MB).
CPU_BAND_ROWS = 128


def band_rows(device: torch.device) -> int | None:
    """Rows per band on ``device``; None for the whole frame at once."""
    return CPU_BAND_ROWS if device.type == "cpu" else None


def _grid(size_in: int, size_out: int, rows: int) -> tuple[int, int, int]:
    """(rows per band, margin rows, output rows per aligned step) for resizing ``size_in``
    rows to ``size_out``: bands and margins start on output rows whose input position
    is a whole row, and bands hold whole chroma row pairs."""
    step = size_out // math.gcd(size_in, size_out)
    step = step * 2 // math.gcd(step, 2)
    scale = size_in / size_out
    # Bicubic reaches two pixels either side, widened by the scale when shrinking (antialiasing).
    support = 2.0 * max(scale, 1.0) + 1.0
    margin = math.ceil(support / scale / step) * step
    return max(step, rows // step * step), margin, step


def resized_bands(out: torch.Tensor, height: int, width: int, rows: int | None) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, rows) of ``out`` (N, C, H, W) resized to ``height`` x ``width`` with
    antialiased bicubic and clamped to [0, 1], ``rows`` rows at a time (None: all at once).

    ``out`` is the model's own output: already the target size, it is clamped in place."""
    size_in = out.shape[-2]
    same = out.shape[-2:] == (height, width)
    band, margin, step = _grid(size_in, height, rows or height)
    if rows is None or band + 2 * margin >= height:
        band, margin = height, 0
    for first in range(0, height, band):
        last = min(height, first + band)
        if same:
            yield first, out[..., first:last, :].clamp_(0, 1)
            continue
        # The slice's ends, on aligned rows: the picture's own edges, or a margin away.
        start = max(0, first - margin)
        stop = min(height, last + margin + (-(last + margin) % step))
        top, bottom = start * size_in // height, min(size_in, stop * size_in // height)
        resized = F.interpolate(
            out[..., top:bottom, :],
            size=(stop - start, width),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
        yield first, resized[..., first - start : last - start, :].clamp_(0, 1)
