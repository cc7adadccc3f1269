"""The temporal stage: detail that stays put from frame to frame.

A super-resolution model run frame by frame invents detail anew on every
frame, so fine texture shimmers and crawls. This stage is flow-guided
recursive blending, the classic motion-compensated recursive filter, run both
ways in time (a render is offline, so it may look ahead):

- motion between consecutive *source* frames (OpenCV's DIS optical flow on
  the low-resolution luma, both ways), scaled to the output;
- what the model made of the neighbouring frame, warped along that motion
  (``grid_sample``, on the model's device), replaces a share of what it made
  of this one: once running forward (the previous frame, as the stage kept
  it) and once running backward (the next frame), and the two are averaged.
  What the model made is its output less a plain (bicubic) enlargement of its
  input: the detail it invents, and whatever else it changes (sharpening, its
  own denoising of the source's grain, compression blocks it reads as
  texture), the parts a model redraws differently on every frame. The
  enlarged source is always this frame's own, so the stage never lags,
  smears, dims or denoises what the source shows: its grain and lighting
  pass through frame by frame. The share is weighted per pixel by how much
  the motion can be trusted there: the forward and backward flows must agree
  (occlusions and disocclusions fail this) and the source must look the same
  after warping (fast motion, lighting changes and fades fail this); where
  either fails, the model's own output stands, so nothing moving leaves a
  trail;
- a scene cut (little of the picture continues), a gap in the timestamps or
  the first frame resets the stage: that frame is the model's output
  exactly, and nothing is blended across it either way.

Measured on real clips (bench/temporal_quality.py --clips, RealESRGAN_x4plus,
warping error as a multiple of the truth's own): blending only the detail
above the source's resolution, forward, left 1.62x; the model's whole
contribution 1.05x; both ways 0.96x, with PSNR 29.82 -> 30.19 -> 30.49 dB.

Frames leave the stage ``WINDOW`` at a time, once ``LOOKAHEAD`` more frames
have come in: the backward pass starts afresh that far ahead, which measured
the same as running it from the clip's end. Memory holds at most ``2 *
(WINDOW + LOOKAHEAD) + WINDOW`` output-sized pictures (40: 4 GB at 4K in
float32), whatever the clip's length. Learned stabilisers were passed over:
vs-temporalfix needs VapourSynth and its mvtools plugins, and video SR
networks with propagation replace the user's chosen model; this stage works
with any model spandrel loads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from upscaler.planes import Planes
from upscaler.temporal import TemporalSettings

# Motion is estimated at most this size (short side, pixels): flow is smooth,
# and DIS on a 1080p source would cost more than the stage is worth.
_FLOW_SHORT_SIDE = 360
# Motion below this (source pixels a frame) is taken as none: grain and noise
# make DIS report drifts of a few hundredths of a pixel on still pictures.
_STILL_PX = 0.1
# Forward-backward check (Sundaram, Brox & Keutzer 2010): a pixel is occluded
# when |f + b|^2 exceeds this share of |f|^2 + |b|^2 plus a constant (pixels^2).
_FB_RELATIVE = 0.01
_FB_ABSOLUTE = 0.5
# Photometric check on lightly blurred luma (0-1), so grain does not fail it
# but a change of lighting or a wrong match does: ~40 code values of 8-bit. Real
# footage (compression, motion blur, noise) failed the earlier 0.04 on most of the
# picture: on the bench's real clips 0.15 took the warping error from 1.36x the
# truth's to 1.05x and raised PSNR; a wrong match can only bring in what the
# model made, never another frame's picture.
_PHOTO_SIGMA = 0.15
_BLUR_SIGMA_PX = 1.0
# Below this mean confidence little of the picture continues: a cut.
_CUT_CONFIDENCE = 0.3
# A timestamp step above this many frame durations is a gap in decoding.
_GAP_FRAMES = 1.5


# Frames handed on at a time, and frames looked ahead before handing them on.
WINDOW = 8
LOOKAHEAD = 8
# Motion from one frame to a neighbour: flow at luma size (pixels) and confidence (0-1) per pixel.
Motion = tuple[np.ndarray, np.ndarray]


@dataclass
class TemporalStats:
    """Frames seen, frames that restarted the stage (first, cuts, gaps), and the
    mean confidence of the frames that were blended."""

    frames: int = 0
    resets: int = 0
    confidence_sum: float = 0.0
    seconds: float = 0.0  # time spent in the stage

    @property
    def mean_confidence(self) -> float:
        blended = self.frames - self.resets
        return self.confidence_sum / blended if blended else 0.0


@dataclass
class _Frame:
    """A frame held by the stage: the model's output, the enlarged source, its luma, and its
    motion to the frame before (``None``: the stage restarts here) and to the frame after
    (``None``: not in yet, or it restarts the stage)."""

    out: torch.Tensor
    base: torch.Tensor
    luma: np.ndarray
    behind: Motion | None
    ahead: Motion | None = None

    @property
    def made(self) -> torch.Tensor:
        """What the model made of this frame."""
        return self.out - self.base


class TemporalStage:
    """Stabilises a stream of output frames: ``push`` every frame in order, then ``finish``.
    Each hands back the frames done so far, in order; a frame comes back at most
    ``WINDOW + LOOKAHEAD - 1`` frames after it went in."""

    def __init__(self, settings: TemporalSettings, rotation: int = 0, frame_pts: float | None = None) -> None:
        """``rotation`` is the source's (degrees, counter-clockwise; the output is upright);
        ``frame_pts`` one frame's duration in timestamp ticks, for spotting gaps (``None``: none spotted)."""
        self.settings = settings
        self.rotation = rotation
        self.frame_pts = frame_pts
        self.stats = TemporalStats()
        self._dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
        self._pending: list[_Frame] = []
        self._last_pts: int | None = None
        # What the forward pass kept of the last frame handed on: what the model made of it.
        self._forward: torch.Tensor | None = None
        self._grid: torch.Tensor | None = None

    def description(self) -> dict[str, Any]:
        """The stage as provenance records it."""
        return {
            **self.settings.parameters(),
            "method": "flow-guided recursive blending of what the model made over a bicubic enlargement, "
            f"forward and backward ({LOOKAHEAD} to {WINDOW + LOOKAHEAD - 1} frames ahead)",
            "motion": f"OpenCV {cv2.__version__} DIS optical flow (medium) on source luma, "
            f"at most {_FLOW_SHORT_SIDE} px short side, forward-backward and photometric checks",
            "frames": self.stats.frames,
            "resets": self.stats.resets,
            "mean_confidence": round(self.stats.mean_confidence, 4),
        }

    def push(
        self, source: np.ndarray | Planes, image: torch.Tensor, out: torch.Tensor, pts: int | None = None
    ) -> list[torch.Tensor]:
        """Take the next frame; hand back the frames now done, in order (often none).

        ``source`` is the decoded frame as coded: RGB (H, W, 3) uint8/uint16, or its YUV planes;
        ``image`` the model's input made of it, (1, 3, H, W) in [0, 1] as coded; ``out`` the
        model's upright output (1, 3, H', W') in [0, 1] on its device.
        """
        started = time.perf_counter()
        luma = self._luma(source)
        frame = _Frame(out, self._enlarged(image, out), luma, behind=None)
        previous = self._pending[-1] if self._pending else None
        if previous is not None and not self._gap(self._last_pts, pts):
            behind, ahead = self._motion(luma, previous.luma)
            mean = float(behind[1].mean())
            if mean >= _CUT_CONFIDENCE:  # below: a cut, or a change too large to trust any of it
                frame.behind, previous.ahead = behind, ahead
                self.stats.confidence_sum += mean
        self.stats.frames += 1
        self.stats.resets += frame.behind is None
        self._last_pts = pts
        self._pending.append(frame)
        done = self._hand_on(WINDOW) if len(self._pending) >= WINDOW + LOOKAHEAD else []
        self._spent(started, out)
        return done

    def finish(self) -> list[torch.Tensor]:
        """The frames still held, in order: call once, after the last ``push``."""
        started = time.perf_counter()
        done = self._hand_on(len(self._pending))
        if done:
            self._spent(started, done[-1])
        return done

    def _hand_on(self, count: int) -> list[torch.Tensor]:
        """The first ``count`` held frames, done: the backward pass runs from the last frame held
        (starting afresh there), the forward pass on from the last frame handed on."""
        frames, self._pending = self._pending, self._pending[count:]
        backward: list[torch.Tensor] = []
        kept: torch.Tensor | None = None
        for i in range(len(frames) - 1, -1, -1):
            frame = frames[i]
            # The last frame held has no motion ahead yet: the backward pass starts afresh there.
            kept = frame.made if kept is None or frame.ahead is None else self._blend(frame, kept, frame.ahead)
            if i < count:
                backward.append(kept)
        done = []
        for frame, kept_backward in zip(frames[:count], reversed(backward), strict=True):
            if frame.behind is None or self._forward is None:
                self._forward = frame.made
                done.append(frame.out)  # the stage restarts here: the model's own output
                continue
            self._forward = self._blend(frame, self._forward, frame.behind)
            done.append((frame.base + (self._forward + kept_backward) / 2).clamp(0, 1))
        return done

    def _spent(self, started: float, result: torch.Tensor) -> None:
        if result.device.type == "cuda":
            torch.cuda.synchronize(result.device)  # so the time is the stage's, not the next frame's
        self.stats.seconds += time.perf_counter() - started

    def _enlarged(self, image: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The model's input, upright, enlarged to the output's size with plain bicubic."""
        if self.rotation:
            image = torch.rot90(image, k=self.rotation // 90, dims=(2, 3))
        return F.interpolate(image.float(), size=out.shape[-2:], mode="bicubic", align_corners=False)

    def _gap(self, previous_pts: int | None, pts: int | None) -> bool:
        if self.frame_pts is None or previous_pts is None or pts is None:
            return False
        return pts - previous_pts > _GAP_FRAMES * self.frame_pts

    def _luma(self, source: np.ndarray | Planes) -> np.ndarray:
        """Upright luma (0-1, float32) at most ``_FLOW_SHORT_SIDE`` on its short side."""
        if isinstance(source, Planes):
            luma = source.luma()  # the coded Y' itself: what the weights below approximate
        else:
            peak = 65535.0 if source.dtype == np.uint16 else 255.0
            luma = (source.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / peak
        if self.rotation:
            luma = np.ascontiguousarray(np.rot90(luma, k=self.rotation // 90))
        scale = _FLOW_SHORT_SIDE / min(luma.shape)
        if scale < 1:
            size = (max(2, round(luma.shape[1] * scale)), max(2, round(luma.shape[0] * scale)))
            luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        return luma

    def _blend(self, frame: _Frame, neighbour: torch.Tensor, motion: Motion) -> torch.Tensor:
        """What the model made of ``frame`` with a confidence-weighted share of it replaced by
        what it made of a neighbouring frame (``neighbour``, as the stage kept it), warped here
        along ``motion``; kept as the clamped picture it gives."""
        flow_np, confidence = motion
        out = frame.out
        height, width = out.shape[-2:]
        device = out.device
        flow = torch.from_numpy(flow_np).to(device).permute(2, 0, 1).unsqueeze(0)
        # Pixel displacements at flow size become grid_sample's [-1, 1] units, which do not depend on size.
        scale = torch.tensor([2.0 / flow_np.shape[1], 2.0 / flow_np.shape[0]], device=device).view(1, 2, 1, 1)
        flow = F.interpolate(flow * scale, size=(height, width), mode="bilinear", align_corners=False)
        grid = self._identity_grid(out) + flow.permute(0, 2, 3, 1)
        warped = F.grid_sample(neighbour, grid, mode="bicubic", padding_mode="border", align_corners=False)
        weight = torch.from_numpy(confidence).to(device)[None, None]
        weight = F.interpolate(weight, size=(height, width), mode="bilinear", align_corners=False)
        made = frame.made
        return (out + self.settings.strength * weight * (warped - made)).clamp(0, 1) - frame.base

    def _identity_grid(self, out: torch.Tensor) -> torch.Tensor:
        """Pixel centres of ``out`` in grid_sample's coordinates (1, H, W, 2), made once."""
        height, width = out.shape[-2:]
        if self._grid is None or self._grid.shape[1:3] != (height, width) or self._grid.device != out.device:
            ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=out.device)
            xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=out.device)
            y, x = torch.meshgrid(ys, xs, indexing="ij")
            self._grid = torch.stack((x, y), dim=-1).unsqueeze(0)
        return self._grid

    def _motion(self, luma: np.ndarray, prev_luma: np.ndarray) -> tuple[Motion, Motion]:
        """Motion from this frame to the previous one, and from the previous one to this."""
        backward, forward = self._flows(luma, prev_luma)
        blurred_now = cv2.GaussianBlur(luma, (0, 0), _BLUR_SIGMA_PX)
        blurred_before = cv2.GaussianBlur(prev_luma, (0, 0), _BLUR_SIGMA_PX)
        return (
            (backward, _confidence(backward, forward, blurred_now, blurred_before)),
            (forward, _confidence(forward, backward, blurred_before, blurred_now)),
        )

    def _flows(self, luma: np.ndarray, prev_luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Optical flow (pixels at luma size) from this frame to the previous one, and back."""
        now8 = np.clip(luma * 255, 0, 255).astype(np.uint8)
        before8 = np.clip(prev_luma * 255, 0, 255).astype(np.uint8)
        backward = self._dis.calc(now8, before8, None)  # type: ignore[call-overload]  # None: a new array
        forward = self._dis.calc(before8, now8, None)  # type: ignore[call-overload]
        for flow in (backward, forward):
            # Grain makes a still picture seem to move a little, differently on every frame;
            # warping detail along that noise would jitter and blur it, so it counts as still.
            flow[np.sum(flow**2, axis=-1) < _STILL_PX**2] = 0.0
        return backward, forward


def _confidence(there: np.ndarray, back: np.ndarray, here: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """How far the flow ``there`` (from picture ``here`` to picture ``seen``) can be trusted at
    each pixel of ``here``, in [0, 1]; ``back`` is the flow the other way."""
    h, w = here.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + there[..., 0], ys + there[..., 1]
    # Where each pixel goes, and how it moves back from there: the round trip must come home.
    returned = cv2.remap(back, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = np.sum((there + returned) ** 2, axis=-1)
    allowed = _FB_RELATIVE * (np.sum(there**2, axis=-1) + np.sum(returned**2, axis=-1)) + _FB_ABSOLUTE
    consistent = np.exp(-error / allowed)
    found = cv2.remap(seen, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alike = np.exp(-(((here - found) / _PHOTO_SIGMA) ** 2))
    outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    confidence = np.where(outside, 0.0, consistent * alike).astype(np.float32)
    # Trust a pixel only as much as its least trusted neighbour: no halo at occlusion edges.
    return cv2.erode(confidence, np.ones((3, 3), np.uint8))
