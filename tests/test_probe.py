"""Probe facts from real files, and clear reasons for files that are not footage."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import Clip, truncate, write_clip

from indexer.errors import MediaError
from indexer.probe import probe


def test_plain_h264_with_audio(tmp_path: Path) -> None:
    info = probe(write_clip(tmp_path / "a.mp4", Clip(audio=True, shots=(1.0, 1.0))))
    assert (info.video_codec, info.width, info.height) == ("h264", 160, 90)
    assert info.frame_rate == Fraction(25)
    assert not info.variable_frame_rate
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.start_time_s == 0.0
    assert (info.pixel_format, info.bit_depth) == ("yuv420p", 8)
    assert info.field_order == "progressive" and not info.interlaced
    assert info.display_size == (160, 90)
    assert len(info.audio_streams) == 1
    audio = info.audio_streams[0]
    assert (audio.codec, audio.channels, audio.sample_rate) == ("aac", 2, 48000)


def test_anamorphic_sd(tmp_path: Path) -> None:
    clip = Clip(width=720, height=480, sar=Fraction(32, 27), fps=Fraction(30000, 1001), shots=(0.5,))
    info = probe(write_clip(tmp_path / "sd.mov", clip))
    assert info.sample_aspect_ratio == Fraction(32, 27)
    assert info.display_aspect_ratio == Fraction(16, 9)
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.display_size == (853, 480)


def test_interlaced(tmp_path: Path) -> None:
    info = probe(write_clip(tmp_path / "i.mkv", Clip(interlaced=True, height=96)))
    assert info.interlaced
    assert info.field_order in ("tt", "tb")


def test_variable_frame_rate(tmp_path: Path) -> None:
    assert probe(write_clip(tmp_path / "v.mkv", Clip(vfr=True))).variable_frame_rate
    assert not probe(write_clip(tmp_path / "c.mkv", Clip())).variable_frame_rate


def test_rotation(tmp_path: Path) -> None:
    info = probe(write_clip(tmp_path / "r.mp4", Clip(rotation=90)))
    assert info.rotation == 90
    assert info.display_size == (90, 160)


def test_ten_bit(tmp_path: Path) -> None:
    clip = Clip(codec="libx265", pix_fmt="yuv420p10le", options={"x265-params": "log-level=error"})
    info = probe(write_clip(tmp_path / "t.mkv", clip))
    assert (info.video_codec, info.bit_depth, info.pixel_format) == ("hevc", 10, "yuv420p10le")


def test_non_zero_start_time(tmp_path: Path) -> None:
    info = probe(write_clip(tmp_path / "s.mkv", Clip(start_time=10.0, audio=True)))
    assert info.start_time_s == pytest.approx(10.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)


def test_timecode_tag(tmp_path: Path) -> None:
    path = tmp_path / "tc.mov"
    with av.open(str(path), "w") as out:
        out.metadata["timecode"] = "10:00:00:00"
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 40, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert probe(path).timecode == "10:00:00:00"


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.mov"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty file \(0 bytes\)"):
        probe(path)


def test_truncated(tmp_path: Path) -> None:
    path = truncate(write_clip(tmp_path / "t.mp4", Clip(shots=(2.0,))))
    with pytest.raises(MediaError, match="damaged or truncated MP4/QuickTime file"):
        probe(path)


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mov"
    path.write_text("call sheet, day 3\n" * 50)
    with pytest.raises(MediaError, match="not a video file FFmpeg can read"):
        probe(path)


def test_audio_only(tmp_path: Path) -> None:
    path = tmp_path / "sound.mka"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(MediaError, match=r"no video stream \(holds audio\)"):
        probe(path)


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot read"):
        probe(tmp_path / "gone.mov")


def _encrypted_mp4(path: Path, **options: str) -> Path:
    """Ten frames of CENC-encrypted (AES-CTR) H.264 in MP4, as DRM-protected files are."""
    encryption = {
        "encryption_scheme": "cenc-aes-ctr",
        "encryption_key": "76a6c65c5ea762046bd749a2e632ccbb",
        "encryption_kid": "a7e61c373e219033c21091fa607bf3b8",
        **options,
    }
    with av.open(str(path), "w", options=encryption) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 20, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_encrypted(tmp_path: Path) -> None:
    path = _encrypted_mp4(tmp_path / "drm.mp4")
    with pytest.raises(MediaError, match=r"encrypted \(DRM-protected\) video cannot be indexed"):
        probe(path)


def test_an_encrypted_init_segment_is_not_called_a_permission_problem(tmp_path: Path) -> None:
    """Fragmented MP4 cut after its moov: encryption info, no samples to recognise it by."""
    whole = _encrypted_mp4(tmp_path / "fragmented.mp4", movflags="frag_keyframe+empty_moov")
    data, position, end = whole.read_bytes(), 0, 0
    while position < len(data):  # keep the boxes before the first fragment: ftyp and moov
        size, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
        if kind in (b"ftyp", b"moov"):
            end = position + size
        position += size
    init = tmp_path / "init.mp4"
    init.write_bytes(data[:end])
    with pytest.raises(MediaError, match=r"Operation not permitted\), as it does for encrypted \(DRM-protected\)"):
        probe(init)
