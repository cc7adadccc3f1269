"""Resizing and colour conversion in bands of rows give what one whole-frame pass gives."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from media import Clip, write_clip
from tiny_models import write_tiny_compact

from upscaler import bands, planes
from upscaler.colour import ColourTags
from upscaler.registry import ModelChoice
from upscaler.render import RenderRequest, render

TAGS = ColourTags(1, 1, 1, 1)


def _whole(out: torch.Tensor, height: int, width: int) -> torch.Tensor:
    resized = F.interpolate(out, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return resized.clamp(0, 1)


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [
        ((96, 160), (48, 80)),  # a x4 model's output for a 2x target: halved
        ((80, 120), (90, 160)),  # 720x480's x4 output to 16:9: rows 8/9, columns 3/4
        ((90, 60), (60, 40)),  # shrunk by 3/2
        ((100, 70), (53, 37)),  # odd rows out, a ratio whose grid step is the whole picture
        ((64, 48), (64, 48)),  # the model's scale is the target's: clamped only
    ],
)
@pytest.mark.parametrize("rows", [2, 8, 30])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_bands_equal_one_whole_resize(
    size_in: tuple[int, int], size_out: tuple[int, int], rows: int, layout: torch.memory_format
) -> None:
    torch.manual_seed(0)
    # Beyond [0, 1], as models overshoot; in either layout a model hands on.
    out = (torch.rand(2, 3, *size_in) * 1.2 - 0.1).contiguous(memory_format=layout)
    expected = _whole(out, *size_out)
    got = torch.zeros_like(expected)
    seen = []
    for first, band in bands.resized_bands(out.clone(), *size_out, rows):
        seen.append(first)
        got[..., first : first + band.shape[-2], :] = band
    assert seen == sorted(seen) and seen[0] == 0 and all(first % 2 == 0 for first in seen)
    # Within float rounding: a ratio like 8/9 is not exact in binary, so grid positions differ in the last bits.
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    if size_in == (96, 160) and rows == 8:
        assert len(seen) > 1  # the case a x4 model for 2x is: really in bands, and exact
        assert torch.equal(got, expected)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p"])
@pytest.mark.parametrize("height", [48, 47])
def test_planes_from_bands_equal_planes_from_the_whole_picture(pix_fmt: str, height: int) -> None:
    torch.manual_seed(1)
    rgb = torch.rand(2, 3, height, 38)
    whole = planes.from_rgb(rgb, TAGS, pix_fmt)
    in_bands = planes.from_rgb_bands(
        ((first, rgb[..., first : first + 6, :]) for first in range(0, height, 6)), TAGS, pix_fmt, height
    )
    for a, b in zip(whole, in_bands, strict=True):
        for x, y in ((a.y, b.y), (a.u, b.u), (a.v, b.v)):
            assert x.dtype == y.dtype and np.array_equal(x, y)


def test_a_render_in_bands_equals_one_in_whole_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_tiny_compact(tmp_path / "tiny.pth")
    master = write_clip(tmp_path / "m.mkv", Clip(width=96, height=54, shots=(0.2, 0.2)))
    decoded = []
    for rows in (1 << 20, 8):
        monkeypatch.setattr(bands, "CPU_BAND_ROWS", rows)
        out = tmp_path / f"out{rows}.mov"
        # 2x with a x4 model: the x4 output is resized to 192x108, in bands of 8 rows or whole.
        render(RenderRequest(master=master, output=out, model=ModelChoice(str(model)), cache_dir=tmp_path, target="2x"))
        with av.open(str(out)) as c:
            decoded.append([f.to_ndarray().copy() for f in c.decode(video=0)])
    assert len(decoded[0]) == len(decoded[1]) > 0
    for whole, banded in zip(*decoded, strict=True):
        assert np.array_equal(whole, banded)
