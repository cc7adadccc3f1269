"""Colour conversion on the model's device (upscaler.planes) against exact arithmetic and the CPU path."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter
from media import Clip, write_clip
from tiny_models import write_tiny_compact

from upscaler import colour, planes
from upscaler.colour import ColourTags
from upscaler.registry import ModelChoice
from upscaler.render import RenderRequest, render

CPU = torch.device("cpu")
FORMATS = ["yuv420p", "yuv420p10le", "yuv422p10le", "yuv444p"]
TAGS = [ColourTags(m, m, m, r) for m in (6, 1) for r in (1, 2)]  # BT.601 / BT.709, limited / full
WEIGHTS = {6: (0.299, 0.114), 1: (0.2126, 0.0722)}


def _ids(tags: ColourTags) -> str:
    return f"{'bt601' if tags.matrix == 6 else 'bt709'}-{'full' if tags.range == 2 else 'limited'}"


def _levels(bits: int, full: bool) -> tuple[float, float, float, float]:
    """(black, luma span, chroma centre, chroma span) as ITU-T H.273 writes them."""
    if full:
        return 0.0, 2.0**bits - 1, 2.0 ** (bits - 1), 2.0**bits - 1
    s = 2.0 ** (bits - 8)
    return 16 * s, 219 * s, 128 * s, 224 * s


def _random_planes(pix_fmt: str, height: int = 36, width: int = 50, seed: int = 0) -> planes.Planes:
    bits, hs, vs = planes.FORMATS[pix_fmt]
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bits == 8 else np.uint16
    ch, cw = -(-height // (1 << vs)), -(-width // (1 << hs))
    return planes.Planes(
        rng.integers(0, 1 << bits, (height, width)).astype(dtype),
        rng.integers(0, 1 << bits, (ch, cw)).astype(dtype),
        rng.integers(0, 1 << bits, (ch, cw)).astype(dtype),
        pix_fmt,
    )


def _smooth_rgb(height: int = 90, width: int = 160) -> np.ndarray:
    """Float RGB in [0.1, 0.9] whose chroma changes slowly, as in camera footage."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack(
        [
            0.5 + 0.4 * np.sin(xx / 60 + yy / 78),
            0.5 + 0.4 * np.cos(xx / 48 - yy / 60),
            0.5 + 0.4 * np.sin((xx + yy) / 60),
        ],
        axis=-1,
    )


@pytest.mark.parametrize("tags", TAGS, ids=_ids)
@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_to_rgb_is_the_exact_conversion(pix_fmt: str, tags: ColourTags) -> None:
    source = _random_planes(pix_fmt)
    bits, hs, vs = planes.FORMATS[pix_fmt]
    black, luma_span, centre, chroma_span = _levels(bits, tags.range == 2)
    kr, kb = WEIGHTS[tags.matrix]
    h, w = source.y.shape
    y = (source.y.astype(np.float64) - black) / luma_span
    cb, cr = (
        ((c.astype(np.float64) - centre) / chroma_span).repeat(1 << vs, 0).repeat(1 << hs, 1)[:h, :w]
        for c in (source.u, source.v)
    )
    r, b = y + 2 * (1 - kr) * cr, y + 2 * (1 - kb) * cb
    expected = np.clip(np.stack([r, (y - kr * r - kb * b) / (1 - kr - kb), b]), 0, 1)
    got = planes.to_rgb(source, tags, CPU)[0].double().numpy()
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("tags", TAGS, ids=_ids)
@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_from_rgb_is_the_exact_conversion(pix_fmt: str, tags: ColourTags) -> None:
    rgb = np.random.default_rng(1).random((3, 37, 51))
    bits, hs, vs = planes.FORMATS[pix_fmt]
    black, luma_span, centre, chroma_span = _levels(bits, tags.range == 2)
    kr, kb = WEIGHTS[tags.matrix]
    y = kr * rgb[0] + (1 - kr - kb) * rgb[1] + kb * rgb[2]
    cb, cr = (rgb[2] - y) / (2 * (1 - kb)), (rgb[0] - y) / (2 * (1 - kr))

    def sited(c: np.ndarray) -> np.ndarray:
        if vs:
            c = np.pad(c, ((0, c.shape[0] % 2), (0, 0)), mode="edge")
            c = (c[0::2] + c[1::2]) / 2
        if hs:
            p = np.pad(c, ((0, 0), (1, 1)), mode="edge")
            c = ((p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4)[:, ::2]
        return c

    peak = 2**bits - 1
    expected = [
        np.clip(np.round(y * luma_span + black), 0, peak),
        np.clip(np.round(sited(cb) * chroma_span + centre), 0, peak),
        np.clip(np.round(sited(cr) * chroma_span + centre), 0, peak),
    ]
    (got,) = planes.from_rgb(torch.from_numpy(rgb).float()[None], tags, pix_fmt)
    for plane, want in zip((got.y, got.u, got.v), expected, strict=True):
        assert plane.shape == want.shape
        # float32 against float64: a value on a .5 boundary may round either way.
        assert np.abs(plane.astype(np.int64) - want).max() <= 1


@pytest.mark.parametrize("tags", TAGS, ids=_ids)
@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_matches_the_swscale_path(pix_fmt: str, tags: ColourTags) -> None:
    """Both directions against the CPU path (swscale) on footage-like pictures.

    swscale itself is up to 3 codes off the exact conversion for 8-bit 4:2:0
    (its fixed-point tables), and upsamples 10-bit 4:2:0 chroma vertically with
    a cubic filter where 8-bit repeats; this module repeats at every depth. So
    the bound is 3 codes of 8 bits wherever chroma is resampled, and one code
    where it is not (4:4:4).
    """
    bits = planes.FORMATS[pix_fmt][0]
    peak = 255 if bits == 8 else 65535
    rgb_fmt = colour.rgb_format(bits)
    smooth = _smooth_rgb()
    pixels = np.round(smooth * peak).astype(np.uint8 if bits == 8 else np.uint16)
    frame = colour.from_rgb(pixels, rgb_fmt, pix_fmt, tags, VideoReformatter())
    decoded = planes.planes_of(frame)
    assert decoded is not None
    bound = 1.0 if pix_fmt == "yuv444p" else 3.0
    # In: the same decoded planes to RGB, compared in 8-bit codes.
    cpu = colour.to_rgb(frame, tags, rgb_fmt, VideoReformatter()).astype(np.float64) / peak
    device = planes.to_rgb(decoded, tags, CPU)[0].permute(1, 2, 0).double().numpy()
    assert np.abs(cpu - device).max() * 255 <= bound
    # Out: the same RGB to planes, compared in codes of the output's depth, scaled to 8 bits.
    (ours,) = planes.from_rgb(torch.from_numpy(smooth).permute(2, 0, 1)[None].float(), tags, pix_fmt)
    theirs = planes.planes_of(colour.from_rgb(pixels, rgb_fmt, pix_fmt, tags, VideoReformatter()))
    assert theirs is not None
    for a, b in zip((ours.y, ours.u, ours.v), (theirs.y, theirs.u, theirs.v), strict=True):
        assert np.abs(a.astype(np.int64) - b).max() / 2 ** (bits - 8) <= bound


@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_frames_carry_the_planes_and_the_tags(pix_fmt: str) -> None:
    source = _random_planes(pix_fmt, 36, 50)
    tags = ColourTags(1, 1, 1, 1)
    frame = planes.frame_of(source, tags)
    assert (frame.format.name, frame.width, frame.height) == (pix_fmt, 50, 36)
    assert (frame.colorspace, frame.color_range) == (1, 1)
    back = planes.planes_of(frame)
    assert back is not None
    for a, b in zip((back.y, back.u, back.v), (source.y, source.u, source.v), strict=True):
        assert np.array_equal(a, b)


def test_formats_it_does_not_know_go_the_cpu_way() -> None:
    frame = av.VideoFrame(32, 18, "rgb24")
    assert planes.planes_of(frame) is None


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le"])
def test_a_render_matches_the_cpu_path(tmp_path: Path, pix_fmt: str) -> None:
    weights = write_tiny_compact(tmp_path / "tiny-x2.pth", scale=2)

    codec = "prores" if pix_fmt == "yuv422p10le" else "h264"
    master = write_clip(tmp_path / "m.mov", Clip(width=96, height=54, shots=(0.4,), pix_fmt=pix_fmt))
    outputs = []
    for on_device in (True, False):
        request = RenderRequest(
            master=master,
            output=tmp_path / f"{on_device}.mov",
            cache_dir=tmp_path,
            target="2x",
            model=ModelChoice(str(weights)),
            codec=codec,
            colour_on_device=on_device,
        )
        result = render(request)
        assert (result.provenance["processing"]["colour"] == "on the model's device") is on_device
        with av.open(str(result.output)) as container:
            outputs.append([f.to_ndarray(format="rgb24").astype(np.int64) for f in container.decode(video=0)])
    device, cpu = outputs
    assert len(device) == len(cpu) == 10
    differences = np.stack([a - b for a, b in zip(device, cpu, strict=True)])
    # No shift of colour or level (a wrong matrix or range moves whole channels by 10+
    # codes); swscale without exact rounding sits under half a code to a code lower.
    assert np.abs(differences.mean(axis=(0, 1, 2))).max() < 1.5
    # Chroma resampled with other filters differs at the clip's sharp colour edges only.
    assert np.abs(differences).mean() < 3.0
