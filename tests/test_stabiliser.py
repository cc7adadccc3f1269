"""The temporal stage: calmer where the picture continues, untouched where it does not."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import write_identity_compact, write_tiny_compact

from upscaler.inference import FrameUpscaler
from upscaler.loader import load_model
from upscaler.registry import ModelChoice
from upscaler.render import RenderRequest, render
from upscaler.stabiliser import LOOKAHEAD, WINDOW, TemporalStage
from upscaler.temporal import TemporalSettings

CPU = torch.device("cpu")
W, H = 96, 64  # source size; the models are x4


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> FrameUpscaler:
    """A real x4 model that outputs the nearest-neighbour upscale: what the stage does is all that changes."""
    path = write_identity_compact(tmp_path_factory.mktemp("sr") / "identity.pth")
    descriptor, _ = load_model(ModelChoice(str(path)), path.parent, CPU)
    return FrameUpscaler(descriptor, CPU, W * 4, H * 4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> FrameUpscaler:
    """A real x4 model with random weights: it invents detail, as real models do."""
    path = write_tiny_compact(tmp_path_factory.mktemp("sr") / "tiny.pth")
    descriptor, _ = load_model(ModelChoice(str(path)), path.parent, CPU)
    return FrameUpscaler(descriptor, CPU, W * 4, H * 4)


def _texture(seed: int) -> np.ndarray:
    """Smooth random texture (float 0-255): trackable by optical flow, like real surfaces."""
    rng = np.random.default_rng(seed)
    small = rng.random((H // 4, W // 4, 3)).astype(np.float32) * 255
    return cv2.resize(small, (W * 2, H * 2), interpolation=cv2.INTER_CUBIC)


def _run(upscaler: FrameUpscaler, frames: list[np.ndarray], stage: TemporalStage | None) -> list[np.ndarray]:
    """Frames through the same calls the render pipeline makes, as float arrays."""
    outs = []
    with torch.inference_mode():
        for i, pixels in enumerate(frames):
            out = upscaler.upscale(pixels)
            outs.extend([out] if stage is None else stage.push(pixels, upscaler.image(pixels), out, i))
        if stage is not None:
            outs.extend(stage.finish())
    return [upscaler.to_pixels(out, frames[0]).astype(np.float32) for out in outs]


def _variation(outputs: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(outputs, outputs[1:], strict=False)]))


def _enlarged(pixels: np.ndarray, scale: int = 4) -> np.ndarray:
    """The source enlarged with plain bicubic (0-255), as the stage separates what the model made."""
    image = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()


def test_a_still_noisy_scene_calms_down(tiny: FrameUpscaler) -> None:
    rng = np.random.default_rng(1)
    scene = _texture(0)[:H, :W]
    frames = [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    plain = _run(tiny, frames, None)
    steady = _run(tiny, frames, TemporalStage(TemporalSettings()))
    enlarged = [_enlarged(f) for f in frames]
    # Grain is new on every frame, so the model redraws the picture anew on every frame;
    # the stage keeps what it made still where nothing moved...
    made = [[x - e for x, e in zip(video, enlarged, strict=True)] for video in (plain, steady)]
    assert _variation(made[1]) < 0.3 * _variation(made[0])
    # ...while the master's grain itself passes through, frame by frame.
    grain = _variation(enlarged)
    assert 0.8 * grain < _variation(steady) < 1.2 * grain


def test_a_moving_object_leaves_no_trail(identity: FrameUpscaler) -> None:
    background = _texture(2)[:H, :W]
    frames, xs = [], []
    for i in range(10):
        frame = background.copy()
        x = 10 + 6 * i  # 6 px a frame to the right
        frame[24:40, x : x + 16] = 255.0  # a white card
        frames.append(frame.astype(np.uint8))
        xs.append(x)
    plain = _run(identity, frames, None)
    steady = _run(identity, frames, TemporalStage(TemporalSettings(strength=1.0)))
    for t in range(1, len(frames)):
        out = steady[t]
        # The card is where it truly is, whole...
        card = out[24 * 4 : 40 * 4, xs[t] * 4 : (xs[t] + 16) * 4]
        assert float(card.mean()) > 250
        # ...and where it was a frame ago there is background again, as frame by frame.
        vacated = (slice(24 * 4, 40 * 4), slice(xs[t - 1] * 4, xs[t] * 4))
        assert float(np.abs(out[vacated] - plain[t][vacated]).mean()) < 4.0


def test_a_cut_resets_the_stage(identity: FrameUpscaler) -> None:
    a, b = _texture(3)[:H, :W].astype(np.uint8), _texture(4)[:H, :W].astype(np.uint8)
    frames = [a] * 5 + [b] * 3
    stage = TemporalStage(TemporalSettings())
    steady, plain = _run(identity, frames, stage), _run(identity, frames, None)
    np.testing.assert_array_equal(steady[5], plain[5])  # the first frame after the cut is the model's own
    assert stage.stats.resets == 2  # the first frame and the cut


def _noisy(seed: int, count: int) -> list[np.ndarray]:
    """A still textured scene on a noisy sensor: the model redraws it a little differently each frame."""
    rng = np.random.default_rng(seed)
    scene = _texture(seed)[:H, :W]
    return [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def test_nothing_is_blended_across_a_cut_either_way(tiny: FrameUpscaler) -> None:
    before, after = _noisy(11, 6), _noisy(12, 4)
    together = _run(tiny, before + after, TemporalStage(TemporalSettings()))
    # The shot before the cut comes out as if the clip ended there: nothing of the next shot in it...
    alone = _run(tiny, before, TemporalStage(TemporalSettings()))
    for mine, theirs in zip(together[:6], alone, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # ...and the first frame after it is the model's own.
    np.testing.assert_array_equal(together[6], _run(tiny, before + after, None)[6])


def test_the_stage_looks_ahead(tiny: FrameUpscaler) -> None:
    frames = _noisy(13, 3)
    other_future = frames[:2] + _noisy(14, 1)
    first, second = (_run(tiny, f, TemporalStage(TemporalSettings())) for f in (frames, other_future))
    np.testing.assert_array_equal(first[0], second[0])  # the first frame is the model's own either way
    assert not np.array_equal(first[1], second[1])  # the second took in what followed it


def test_frames_come_back_in_order_in_windows_and_few_are_held(identity: FrameUpscaler) -> None:
    frames = _noisy(15, 3 * WINDOW + LOOKAHEAD + 3)
    stage = TemporalStage(TemporalSettings())
    handed, held = [], []
    with torch.inference_mode():
        for i, pixels in enumerate(frames):
            handed.append(len(stage.push(pixels, identity.image(pixels), identity.upscale(pixels), i)))
            held.append(i + 1 - sum(handed))
        rest = stage.finish()
    assert handed[: WINDOW + LOOKAHEAD - 1] == [0] * (WINDOW + LOOKAHEAD - 1)
    assert set(handed) == {0, WINDOW}
    assert max(held) == WINDOW + LOOKAHEAD - 1  # memory is flat in the clip's length
    assert sum(handed) + len(rest) == len(frames) and stage.stats.frames == len(frames)


def test_a_gap_in_timestamps_resets_the_stage(identity: FrameUpscaler) -> None:
    rng = np.random.default_rng(5)
    scene = _texture(6)[:H, :W]
    frames = [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    stage = TemporalStage(TemporalSettings(), frame_pts=1.0)
    with torch.inference_mode():
        outs = [
            o
            for p, pts in zip(frames, (0, 1, 2, 40), strict=True)
            for o in stage.push(p, identity.image(p), identity.upscale(p), pts)
        ]
        outs += stage.finish()
        model = identity.upscale(frames[3])
        plain = identity.upscale(frames[2])
    assert torch.equal(outs[3], model)
    assert not torch.equal(outs[2], plain)  # continuous frames were blended
    assert stage.stats.resets == 2


def test_the_stage_on_a_rotated_source_works_upright(tmp_path: Path) -> None:
    path = write_identity_compact(tmp_path / "identity.pth")
    descriptor, _ = load_model(ModelChoice(str(path)), tmp_path, CPU)
    upright = FrameUpscaler(descriptor, CPU, H * 4, W * 4, rotation=90)
    rng = np.random.default_rng(7)
    scene = _texture(8)[:H, :W]
    frames = [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(6)]
    stage = TemporalStage(TemporalSettings(), rotation=90)
    steady = _run(upright, frames, stage)
    assert steady[0].shape == (W * 4, H * 4, 3)
    assert stage.stats.resets == 1 and stage.stats.mean_confidence > 0.5  # the motion was found, upright


def test_render_records_the_stage_and_off_is_frame_by_frame(tmp_path: Path) -> None:
    model = write_tiny_compact(tmp_path / "tiny.pth")
    master = tmp_path / "noisy.mov"
    rng = np.random.default_rng(9)
    scene = _texture(10)[:H, :W]
    with av.open(str(master), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        for i in range(20):
            picture = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv444p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    def rendered(settings: TemporalSettings) -> tuple[list[np.ndarray], dict]:
        result = render(
            RenderRequest(master, tmp_path / f"out-{settings.enabled}.mov", tmp_path, target="2x",
                          model=ModelChoice(str(model)), codec="prores", temporal=settings)
        )  # fmt: skip
        with av.open(str(result.output)) as c:
            frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
            tag = c.metadata.get("footage_temporal")
        sidecar = json.loads(result.sidecar.read_text())
        assert sidecar["processing"]["temporal"]["enabled"] is settings.enabled
        assert tag is not None and tag.startswith("on" if settings.enabled else "off")
        return frames, sidecar

    plain, off = rendered(TemporalSettings(enabled=False))
    steady, on = rendered(TemporalSettings())
    assert len(plain) == len(steady) == 20
    assert off["processing"]["temporal"] == {"enabled": False}
    assert on["processing"]["temporal"]["frames"] == 20 and on["processing"]["temporal"]["resets"] == 1
    assert "temporal_s" in on["timings"] and "temporal_s" not in off["timings"]
    # The master's grain stays (the enlarged source is each frame's own); what the model made calms
    # down, less than before encoding (test_a_still_noisy_scene_calms_down) as ProRes adds its own.
    with av.open(str(master)) as c:
        enlarged = [_enlarged(f.to_ndarray(format="rgb24"), 2) for f in c.decode(video=0)]
    made = [[x - e for x, e in zip(video, enlarged, strict=True)] for video in (plain, steady)]
    assert _variation(made[1]) < 0.95 * _variation(made[0])
