"""catalog.media: the one place that turns PyAV's stream facts into pictures and numbers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from media import Clip, write_clip

from catalog.media import Picture, first_frame, quarter_turns, video_facts


@pytest.mark.parametrize(
    ("picture", "frame_dar", "display_dar", "display_size"),
    [
        (Picture(1920, 1080), Fraction(16, 9), Fraction(16, 9), (1920, 1080)),
        (Picture(720, 480, Fraction(32, 27)), Fraction(16, 9), Fraction(16, 9), (853, 480)),  # anamorphic NTSC
        (Picture(720, 576, Fraction(16, 15)), Fraction(4, 3), Fraction(4, 3), (768, 576)),  # PAL 4:3
        (Picture(1920, 1080, rotation=90), Fraction(16, 9), Fraction(9, 16), (1080, 1920)),  # phone, held upright
        (Picture(1920, 1080, rotation=180), Fraction(16, 9), Fraction(16, 9), (1920, 1080)),
        (Picture(1440, 1080, Fraction(4, 3), 270), Fraction(16, 9), Fraction(9, 16), (1080, 1920)),  # HDV, turned
    ],
)
def test_picture_sizes(picture: Picture, frame_dar: Fraction, display_dar: Fraction, display_size: tuple) -> None:
    assert picture.frame_aspect_ratio == frame_dar
    assert picture.display_aspect_ratio == display_dar
    assert picture.display_size == display_size


@pytest.mark.parametrize(("degrees", "turns"), [(None, 0), (0, 0), (-90, 270), (90.0, 90), (450, 90), (45, 0)])
def test_quarter_turns(degrees: float | None, turns: int) -> None:
    assert quarter_turns(degrees) == turns


def test_video_facts_of_a_rotated_anamorphic_interlaced_clip(tmp_path: Path) -> None:
    clip = Clip(width=96, height=64, sar=Fraction(32, 27), rotation=90, interlaced=True, start_time=2.0)
    path = write_clip(tmp_path / "odd.mp4", clip)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = first_frame(container, stream)
        assert first is not None
        facts = video_facts(stream, first)
        # first_frame leaves the container at the start: the next decoded frame is the first again.
        again = next(container.decode(stream))
        assert again.pts == first.pts
    assert facts.picture == Picture(96, 64, Fraction(32, 27), 90)
    assert facts.interlaced and facts.field_order == "tt"
    assert facts.start_time_s == pytest.approx(2.0)
    assert (facts.frame_rate, facts.bit_depth) == (Fraction(clip.fps), 8)
