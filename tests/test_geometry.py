"""Output geometry: display aspect ratio kept, square pixels, even sizes, upright."""

from __future__ import annotations

from fractions import Fraction

import pytest

from catalog.media import Picture
from upscaler.errors import PlanError
from upscaler.geometry import plan


@pytest.mark.parametrize(
    ("source", "target", "size"),
    [
        (Picture(1920, 1080), "4k", (3840, 2160)),
        (Picture(720, 480, Fraction(32, 27)), "4k", (3840, 2160)),  # anamorphic NTSC 16:9
        (Picture(720, 576, Fraction(16, 15)), "4k", (2880, 2160)),  # PAL 4:3
        (Picture(640, 480), "4k", (2880, 2160)),  # 4:3 pillarboxed into the UHD box
        (Picture(1920, 804), "4k", (3840, 1608)),  # 2.39:1 scope
        (Picture(1921, 817), "2x", (3842, 1634)),  # odd sizes come out even
        (Picture(1280, 720), "3840x1600", (2844, 1600)),
        (Picture(1080, 1920), "4k", (2160, 3840)),  # vertical footage gets the vertical box
        (Picture(1920, 1080, rotation=90), "4k", (2160, 3840)),  # rotated: upright output
        (Picture(1280, 720), "1080p", (1920, 1080)),
    ],
)
def test_plans(source: Picture, target: str, size: tuple[int, int]) -> None:
    result = plan(source, target)
    assert (result.width, result.height) == size
    assert result.width % 2 == 0 and result.height % 2 == 0
    assert Fraction(result.width, result.height) == pytest.approx(float(source.display_aspect_ratio), rel=0.01)


def test_refuses_to_shrink_unless_forced() -> None:
    with pytest.raises(
        PlanError, match=r"1080p \(1920x1080\) is not larger than the master \(3840x2160\); add --force"
    ):
        plan(Picture(3840, 2160), "1080p")
    assert plan(Picture(3840, 2160), "1080p", force=True).size == "1920x1080"


def test_unknown_target() -> None:
    with pytest.raises(PlanError, match="unknown target 'huge'; use one of 8k, 4k"):
        plan(Picture(1920, 1080), "huge")
