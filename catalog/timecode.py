"""SMPTE timecode for a time in seconds at an asset's frame rate."""

from __future__ import annotations

import re
from fractions import Fraction

_TC = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.])(\d{2,3})$")


def _drop_frame(rate: Fraction, start: str | None) -> bool:
    # Only 29.97 and 59.94 skip frame numbers, and not always: the file's own timecode says
    # (';' or '.' before the frames is drop-frame; ':' is non-drop, which broadcast playout
    # counts too). Without one, drop-frame, as cameras count. cli/web/app.js's timecodeAt
    # counts the same way for the player.
    if not (rate.denominator == 1001 and rate.numerator in (30000, 60000)):
        return False
    match = _TC.match(start.strip()) if start else None
    return match is None or match.group(4) != ":"


def _parse(tc: str, nominal: int, drop: bool) -> int | None:
    match = _TC.match(tc.strip())
    if not match:
        return None
    hours, minutes, seconds, frames = (int(match.group(g)) for g in (1, 2, 3, 5))
    total = ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
    if drop:
        dropped = 2 * (nominal // 30)
        total_minutes = hours * 60 + minutes
        total -= dropped * (total_minutes - total_minutes // 10)
    return total


def _format(frame: int, nominal: int, drop: bool) -> str:
    if drop:
        dropped = 2 * (nominal // 30)
        per_10_min = nominal * 600 - dropped * 9
        per_min = nominal * 60 - dropped
        tens, rest = divmod(frame, per_10_min)
        frame += dropped * 9 * tens
        if rest > dropped:
            frame += dropped * ((rest - dropped) // per_min)
    frames = frame % nominal
    seconds = frame // nominal
    sep = ";" if drop else ":"
    return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{frames:02d}"


def timecode(seconds: float, rate: Fraction | None, start: str | None = None) -> str | None:
    """``HH:MM:SS:FF`` (``;`` before frames in drop-frame) of ``seconds`` from the first frame.

    ``start`` is the asset's own starting timecode, when it has one, so the
    result matches what an editor's timeline shows. ``None`` without a rate.
    """
    if not rate or rate <= 0:
        return None
    nominal = max(1, round(float(rate)))
    drop = _drop_frame(Fraction(rate), start)
    frame = int(seconds * float(rate) + 1e-6)
    offset = _parse(start, nominal, drop) if start else None
    return _format(frame + (offset or 0), nominal, drop)
