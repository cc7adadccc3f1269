"""Planning a rendition's picture: fit the display aspect ratio in a target box.

Non-square source pixels become square output pixels; sizes are even because
4:2:0 and 4:2:2 chroma need them; rotation is applied so the output is
upright with no rotation tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from catalog.media import Picture
from upscaler.errors import PlanError

# Named boxes (width x height); the picture is fitted inside, aspect kept.
TARGETS: dict[str, tuple[int, int]] = {
    "8k": (7680, 4320),
    "4k": (3840, 2160),
    "uhd": (3840, 2160),
    "dci4k": (4096, 2160),
    "1440p": (2560, 1440),
    "1080p": (1920, 1080),
    "720p": (1280, 720),
}
_BOX = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_FACTOR = re.compile(r"^(\d+(?:\.\d+)?)x$")


@dataclass(frozen=True)
class Plan:
    """The output picture: square pixels, upright."""

    label: str
    width: int
    height: int
    display_aspect_ratio: Fraction
    rotation: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def _even(value: float | Fraction) -> int:
    return max(2, int(round(value / 2)) * 2)


def _fit(dar: Fraction, box_w: int, box_h: int) -> tuple[int, int]:
    if Fraction(box_w, box_h) > dar:  # box is wider: height limits
        return _even(box_h * dar), _even(box_h)
    return _even(box_w), _even(box_w / dar)


def plan(source: Picture, target: str, *, force: bool = False) -> Plan:
    """The output size for ``target``: a name (``4k``), ``WxH``, or a factor (``2x``).

    Raises ``PlanError`` when the result would not be larger than the master's
    displayed picture, unless ``force``.
    """
    name = target.strip().lower()
    dar = source.display_aspect_ratio
    # The master as displayed, in square pixels (the height is what was coded);
    # the width stays exact so factors and the "is it larger" test do not round.
    shown_h = source.width if source.turned else source.height
    shown_w = shown_h * dar
    if name in TARGETS:
        box_w, box_h = TARGETS[name]
        # Vertical footage gets the vertical box: "4k" of a phone clip is 2160x3840.
        width, height = _fit(dar, box_h, box_w) if dar < 1 else _fit(dar, box_w, box_h)
    elif match := _BOX.match(name):
        width, height = _fit(dar, int(match.group(1)), int(match.group(2)))
    elif match := _FACTOR.match(name):
        factor = float(match.group(1))
        if factor <= 0:
            raise PlanError(f"{target}: a factor must be more than 0 (2x doubles width and height)")
        width, height = _even(shown_w * factor), _even(shown_h * factor)
    else:
        known = ", ".join(TARGETS)
        raise PlanError(f"unknown target {target!r}; use one of {known}, WxH (e.g. 3840x1600) or a factor (2x)")
    if not force and width * height <= shown_w * shown_h:
        raise PlanError(
            f"{target} ({width}x{height}) is not larger than the master ({round(shown_w)}x{shown_h}); "
            "add --force to render it anyway"
        )
    return Plan(label=name, width=width, height=height, display_aspect_ratio=dar, rotation=source.rotation)
