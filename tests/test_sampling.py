"""Moments: cuts at scene changes, a bounded gap, display geometry, time origin."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import Clip, write_clip

from indexer.embed import square_views
from indexer.probe import probe
from indexer.sampling import SamplingOptions, sample_moments

FRAME = 1 / 25


def _moments(path: Path, **options: object) -> list:
    return list(sample_moments(path, probe(path), SamplingOptions(**options)))  # type: ignore[arg-type]


def test_cuts_and_max_gap(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "shots.mp4", Clip(shots=(1.0, 3.0, 1.0)))
    moments = _moments(path, max_gap_s=2.0)
    starts = [m.start_s for m in moments]
    # Cuts at 1 s and 4 s; the 3 s shot is split after 2 s.
    assert starts == pytest.approx([0.0, 1.0, 3.0, 4.0], abs=FRAME + 1e-6)
    for a, b in zip(moments, moments[1:], strict=False):
        assert a.end_s == pytest.approx(b.start_s)
    assert moments[-1].end_s == pytest.approx(5.0, abs=FRAME + 1e-6)
    for m in moments:
        assert m.start_s <= m.frame_s <= m.end_s
        assert m.end_s - m.start_s <= 2.0 + FRAME
    # The long moment's representative sits at its middle, not at the cut.
    assert moments[1].frame_s == pytest.approx(2.0, abs=FRAME + 1e-6)


def test_representative_frames_show_their_shot(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "shots.mp4", Clip(shots=(1.0, 1.0)))
    first, second = _moments(path)
    # Shot 0 is red, shot 1 green (see media.SHOT_COLOURS).
    assert first.image[..., 0].mean() > first.image[..., 1].mean()
    assert second.image[..., 1].mean() > second.image[..., 0].mean()


def test_keyframes_mode_decodes_fewer_frames(tmp_path: Path) -> None:
    clip = Clip(shots=(4.0,), options={"g": "50"})
    path = write_clip(tmp_path / "gop.mp4", clip)
    full = _moments(path, max_gap_s=0.5)
    keyframes = _moments(path, max_gap_s=0.5, keyframes_only=True)
    assert len(full) == 8
    assert len(keyframes) == 2  # keyframes at 0 s and 2 s
    assert [m.frame_s for m in keyframes] == pytest.approx([0.0, 2.0])


def test_non_square_pixels_become_square(tmp_path: Path) -> None:
    clip = Clip(width=720, height=480, sar=Fraction(32, 27), shots=(0.4,))
    (moment,) = _moments(write_clip(tmp_path / "sd.mov", clip))
    height, width = moment.image.shape[:2]
    assert width / height == pytest.approx(16 / 9, rel=0.01)


def test_rotation_is_applied(tmp_path: Path) -> None:
    (moment,) = _moments(write_clip(tmp_path / "r.mp4", Clip(rotation=90, shots=(0.4,))))
    assert moment.image.shape[:2] == (160, 90)


def test_times_count_from_the_first_frame(tmp_path: Path) -> None:
    moments = _moments(write_clip(tmp_path / "s.mkv", Clip(start_time=10.0, shots=(1.0, 1.0))))
    assert [m.start_s for m in moments] == pytest.approx([0.0, 1.0], abs=FRAME)


def test_variable_frame_rate_times_are_real(tmp_path: Path) -> None:
    moments = _moments(write_clip(tmp_path / "v.mkv", Clip(vfr=True, shots=(1.0, 1.0))))
    assert [m.start_s for m in moments] == pytest.approx([0.0, 1.0], abs=2 * FRAME)


@pytest.mark.parametrize(("width", "height", "views"), [(160, 90, 2), (90, 90, 1), (239, 100, 3), (90, 160, 2)])
def test_square_views_cover_the_whole_picture(width: int, height: int, views: int) -> None:
    image = np.zeros((height, width, 3), np.uint8)
    crops = square_views(image)
    assert len(crops) == views
    side = min(width, height)
    assert all(c.shape[:2] == (side, side) for c in crops)
    # Mark what the crops cover by writing through the views (they share memory).
    for c in crops:
        c[...] = 1
    assert image.all()
