"""SMPTE timecode of a time in seconds: drop-frame at 29.97 and 59.94, non-drop elsewhere."""

from __future__ import annotations

from fractions import Fraction

import pytest

from catalog.timecode import timecode

NTSC = Fraction(30000, 1001)
NTSC_60 = Fraction(60000, 1001)


def _at_frame(frame: int, rate: Fraction, start: str | None = None) -> str | None:
    return timecode(float(frame / rate), rate, start)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (0, "00:00:00;00"),
        (1799, "00:00:59;29"),
        (1800, "00:01:00;02"),  # frames 0 and 1 of every minute are skipped...
        (3597, "00:01:59;29"),
        (3598, "00:02:00;02"),
        (17981, "00:09:59;29"),
        (17982, "00:10:00;00"),  # ...except every tenth minute
        (17983, "00:10:00;01"),
        (107891, "00:59:59;29"),
        (107892, "01:00:00;00"),  # an hour of 29.97 is 107892 frames
    ],
)
def test_drop_frame_29_97(frame: int, expected: str) -> None:
    assert _at_frame(frame, NTSC) == expected


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (3599, "00:00:59;59"),
        (3600, "00:01:00;04"),  # 59.94 skips four frame numbers a minute
        (35963, "00:09:59;59"),
        (35964, "00:10:00;00"),
        (215784, "01:00:00;00"),
    ],
)
def test_drop_frame_59_94(frame: int, expected: str) -> None:
    assert _at_frame(frame, NTSC_60) == expected


@pytest.mark.parametrize(
    ("frame", "rate", "expected"),
    [
        (0, Fraction(25), "00:00:00:00"),
        (1499, Fraction(25), "00:00:59:24"),
        (1500, Fraction(25), "00:01:00:00"),  # no frame numbers are skipped without drop-frame
        (90000, Fraction(25), "01:00:00:00"),
        (1440, Fraction(24000, 1001), "00:01:00:00"),  # 23.976 counts 24 a second, never drops
        (86400, Fraction(24000, 1001), "01:00:00:00"),
    ],
)
def test_non_drop_frame(frame: int, rate: Fraction, expected: str) -> None:
    assert _at_frame(frame, rate) == expected


@pytest.mark.parametrize(
    ("start", "rate", "frame", "expected"),
    [
        ("01:00:00;00", NTSC, 1800, "01:01:00;02"),
        ("00:00:59;28", NTSC, 2, "00:01:00;02"),  # the offset crosses a minute: 00 and 01 skipped
        ("00:09:59;29", NTSC, 1, "00:10:00;00"),  # crossing the tenth minute skips nothing
        ("10:00:00:00", Fraction(25), 25, "10:00:01:00"),
        # A 29.97 file whose own timecode is non-drop (':') keeps counting every number.
        ("01:00:00:00", NTSC, 1800, "01:01:00:00"),
        ("00:09:59:29", NTSC_60, 1, "00:09:59:30"),
    ],
)
def test_start_timecode_offsets_and_carries_across_boundaries(
    start: str, rate: Fraction, frame: int, expected: str
) -> None:
    assert _at_frame(frame, rate, start) == expected


@pytest.mark.parametrize("tc", ["00:00:00;00", "00:01:00;02", "00:09:59;29", "00:10:00;00", "23:59:59;29"])
def test_a_start_timecode_reads_back_unchanged(tc: str) -> None:
    assert _at_frame(0, NTSC, tc) == tc


@pytest.mark.parametrize("tc", ["00:01:00:00", "00:01:00:01", "00:09:59:29"])
def test_a_non_drop_start_at_29_97_reads_back_unchanged(tc: str) -> None:
    assert _at_frame(0, NTSC, tc) == tc


def test_no_rate_no_timecode() -> None:
    assert timecode(12.0, None) is None
