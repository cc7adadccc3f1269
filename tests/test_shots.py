"""Moments follow the shots: the shot detector (fades through black + TransNetV2) on edited footage."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from edits import FPS, Edit, Shot, Truth, write_edit

from indexer.probe import probe
from indexer.sampling import Moment, SamplingOptions, sample_moments
from indexer.shots import BackgroundShots, MergedShots, ShotFrame, make_detector

SLACK = 2  # frames


def _moments(path: Path, max_gap_s: float = 10.0) -> list[Moment]:
    return list(sample_moments(path, probe(path), SamplingOptions(max_gap_s=max_gap_s)))


def _starts(moments: list[Moment]) -> list[int]:
    return [round(m.start_s * FPS) for m in moments]


def _assert_follows(moments: list[Moment], truth: Truth) -> None:
    starts = _starts(moments)
    for boundary in truth.boundaries:
        inside = [s for s in starts if boundary.first - SLACK <= s <= boundary.last + SLACK]
        assert inside, f"no moment starts at the {boundary.kind} of frames {boundary.first}-{boundary.last}: {starts}"
    for span in truth.keep_whole:
        assert not [s for s in starts if span.first <= s <= span.last], f"the {span.kind} shot was cut: {starts}"


def test_cuts_between_shots_of_equal_brightness(tmp_path: Path) -> None:
    # What the old threshold missed: every scene has the same mean brightness; and
    # a fast pan, a handheld shot and a flash that must stay whole.
    edit = Edit(
        shots=(
            Shot(0, 2.0, "drift"),
            Shot(1, 2.4, "pan"),
            Shot(2, 2.4, "handheld", flash=True),
            Shot(3, 2.0, "drift"),
        ),
        transitions=("cut", "cut", "cut"),
        seed=3,
    )
    truth = write_edit(tmp_path / "cuts.mp4", edit)
    moments = _moments(tmp_path / "cuts.mp4")
    _assert_follows(moments, truth)
    assert len(moments) == 4


def test_fades_and_dissolves(tmp_path: Path) -> None:
    edit = Edit(
        shots=(Shot(0, 2.4, "drift"), Shot(1, 2.4, "drift"), Shot(2, 2.4, "handheld")),
        transitions=("fade", "dissolve"),
        fade_in=True,
        seed=0,
    )
    truth = write_edit(tmp_path / "soft.mp4", edit)
    moments = _moments(tmp_path / "soft.mp4")
    _assert_follows(moments, truth)
    # The opening black and fade is a moment apart: the first shot's moment shows the shot.
    first_shot = next(m for m in moments if m.start_s > 0)
    assert first_shot.image.mean() > 80


def test_representative_is_the_frame_nearest_the_middle(tmp_path: Path) -> None:
    edit = Edit(shots=(Shot(0, 6.0, "drift"), Shot(1, 2.0, "drift")), transitions=("cut",), seed=1)
    write_edit(tmp_path / "long.mp4", edit)
    first, second = _moments(tmp_path / "long.mp4", max_gap_s=10.0)
    assert (first.start_s, first.end_s) == pytest.approx((0.0, 6.0), abs=SLACK / FPS)
    assert first.frame_s == pytest.approx(3.0, abs=0.2)
    assert second.frame_s == pytest.approx(7.0, abs=0.2)


def test_max_gap_still_bounds_a_long_shot(tmp_path: Path) -> None:
    write_edit(tmp_path / "one.mp4", Edit(shots=(Shot(0, 5.0, "handheld"),), transitions=(), seed=2))
    moments = _moments(tmp_path / "one.mp4", max_gap_s=2.0)
    assert _starts(moments) == [0, 50, 100]
    assert [m.frame_s for m in moments] == pytest.approx([1.0, 3.0, 4.5], abs=0.2)
    for a, b in zip(moments, moments[1:], strict=False):
        assert a.end_s == b.start_s


def test_the_detector_leaves_torch_settings_alone(tmp_path: Path) -> None:
    # TransNetV2's constructor turns on deterministic algorithms process-wide; the
    # renderer in the same process must not run under them.
    before = torch.are_deterministic_algorithms_enabled()
    state = torch.random.get_rng_state()
    make_detector("cpu")
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.equal(torch.random.get_rng_state(), state)


class _Scripted:
    """A detector that reports given boundaries at given frames, for the merge's bookkeeping."""

    def __init__(self, reports: dict[int, list[float]], lag: int) -> None:
        self._reports, self._lag, self._n, self._t = reports, lag, 0, 0.0

    @property
    def settled(self) -> float:
        return (self._n - self._lag) / FPS

    def push(self, t: float, frame: ShotFrame) -> list[float]:
        self._n += 1
        return self._reports.get(self._n, [])

    def finish(self) -> list[float]:
        return []


def test_close_boundaries_of_two_detectors_count_once() -> None:
    frame = ShotFrame(av.VideoFrame.from_ndarray(np.zeros((18, 32, 3), np.uint8), format="rgb24"))
    fades = _Scripted({10: [0.30], 41: [1.60]}, lag=0)
    learned = _Scripted({30: [0.20, 1.00]}, lag=25)  # decides late
    merged = MergedShots([fades, learned], merge_s=0.5)
    found = [c for n in range(80) for c in merged.push(n / FPS, frame)] + merged.finish()
    # 0.20 and 0.30 are one boundary, placed where the first-listed detector put it.
    assert found == [0.30, 1.00, 1.60]


def test_a_detector_beside_the_decoder_finds_what_it_finds_inline(tmp_path: Path) -> None:
    """The same boundaries as the detector run in the decoding thread, none behind ``settled``."""
    edit = Edit(
        shots=(Shot(0, 2.0, "drift"), Shot(1, 2.4, "pan"), Shot(2, 2.4, "drift"), Shot(3, 2.0, "handheld")),
        transitions=("cut", "fade", "dissolve"),
        seed=4,
    )
    write_edit(tmp_path / "edit.mp4", edit)
    with av.open(str(tmp_path / "edit.mp4")) as container:
        frames = [(float(f.time), ShotFrame(f)) for f in container.decode(video=0)]
    inline = make_detector("cpu")
    expected = [c for t, f in frames for c in inline.push(t, f)] + inline.finish()
    background = BackgroundShots(make_detector("cpu"), depth=7)  # a short queue: the decoder waits on it
    found: list[float] = []
    try:
        for t, frame in frames:
            settled_before = background.settled
            cuts = background.push(t, frame)
            assert all(c > settled_before for c in cuts), (cuts, settled_before)
            found.extend(cuts)
        found.extend(background.finish())
    finally:
        background.close()
    assert len(expected) >= 2 and found == expected
    assert all(f.frame is None for _, f in frames)  # the queue held small copies, not decoded frames


class _Failing(_Scripted):
    def push(self, t: float, frame: ShotFrame) -> list[float]:
        if t >= 0.5:
            raise ValueError("the model broke")
        return super().push(t, frame)


def test_a_failing_background_detector_raises_in_the_decoder_and_stops() -> None:
    small = np.zeros((18, 32, 3), np.uint8)
    background = BackgroundShots(_Failing({}, lag=0), depth=4)
    with pytest.raises(ValueError, match="the model broke"):
        for n in range(10_000):
            background.push(n / FPS, ShotFrame(av.VideoFrame.from_ndarray(small, format="rgb24")))
    background.close()  # returns: the threads have ended
    assert not background._thread.is_alive() and not background._copier.is_alive()


def test_an_abandoned_background_detector_stops_with_a_full_queue() -> None:
    class _Slow(_Scripted):
        def push(self, t: float, frame: ShotFrame) -> list[float]:
            import time

            time.sleep(0.01)
            return super().push(t, frame)

    small = np.zeros((18, 32, 3), np.uint8)
    background = BackgroundShots(_Slow({}, lag=0), depth=3)
    for n in range(6):
        background.push(n / FPS, ShotFrame(av.VideoFrame.from_ndarray(small, format="rgb24")))
    background.close()
    assert not background._thread.is_alive() and not background._copier.is_alive()


def test_the_small_copies_are_made_beside_the_decoder() -> None:
    """The decoding thread only hands frames on: their 48x27 copies are made in another thread."""
    copied_in: set[int] = set()

    class _Recorded(ShotFrame):
        def detach(self) -> ShotFrame:
            copied_in.add(threading.get_ident())
            return super().detach()

    picture = np.zeros((18, 32, 3), np.uint8)
    frames = [_Recorded(av.VideoFrame.from_ndarray(picture, format="rgb24")) for _ in range(12)]
    background = BackgroundShots(_Scripted({}, lag=0), depth=3)
    try:
        for n, frame in enumerate(frames):
            background.push(n / FPS, frame)
        background.finish()
    finally:
        background.close()
    assert all(f.frame is None for f in frames) and copied_in and threading.get_ident() not in copied_in
