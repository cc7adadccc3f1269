"""The frame pipeline on real files: timing, audio, colour, bit depth, provenance, atomicity."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import Clip, write_clip
from tiny_models import write_identity_compact, write_tiny_compact
from typer.testing import CliRunner

from catalog.media import content_hash
from cli.main import app
from indexer.probe import probe
from upscaler.errors import PlanError, RenderError
from upscaler.provenance import NOTICE
from upscaler.registry import KNOWN_MODELS, ModelChoice
from upscaler.render import RenderProgress, RenderRequest, render
from upscaler.temporal import TemporalSettings


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sr-models")
    return {
        "tiny": write_tiny_compact(folder / "tiny.pth"),
        "identity": write_identity_compact(folder / "identity.pth"),
    }


def _render(master: Path, out: Path, model: Path, **kw: object) -> object:
    return render(RenderRequest(master=master, output=out, model=ModelChoice(str(model)), cache_dir=out.parent, **kw))  # type: ignore[arg-type]


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def test_vfr_timestamps_and_frame_count_kept(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "vfr.mkv", Clip(vfr=True, width=64, height=36))
    result = _render(master, tmp_path / "out.mov", weights["tiny"], target="2x")
    source_times = _frame_times(master)
    assert result.frames == len(source_times)  # type: ignore[attr-defined]
    assert _frame_times(tmp_path / "out.mov") == pytest.approx(source_times, abs=1e-3)
    assert probe(tmp_path / "out.mov").variable_frame_rate


@pytest.mark.parametrize("temporal", [False, True], ids=["frame-by-frame", "temporal"])
def test_batch_size_does_not_change_the_output(tmp_path: Path, weights: dict[str, Path], temporal: bool) -> None:
    # VFR with audio: packets between frames must keep their order around a batch.
    master = write_clip(tmp_path / "b.mkv", Clip(width=64, height=36, vfr=True, audio=True, shots=(0.6, 0.6)))
    pictures, times = [], []
    for batch in (1, 4):
        out = tmp_path / f"b{batch}.mov"
        result = _render(
            master, out, weights["tiny"], target="2x", batch=batch, temporal=TemporalSettings(enabled=temporal)
        )
        assert result.provenance["processing"]["batch"] == batch  # type: ignore[attr-defined]
        with av.open(str(out)) as c:
            pictures.append([f.to_ndarray().copy() for f in c.decode(video=0)])
        times.append(_frame_times(out))
        assert [a.codec for a in probe(out).audio_streams] == ["aac"]
    assert times[0] == times[1] and len(pictures[0]) == len(pictures[1]) == len(_frame_times(master))
    for one, four in zip(*pictures, strict=True):
        assert np.array_equal(one, four)


def _packets(path: Path, kind: str) -> list[tuple[int | None, int | None, bool, bytes]]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(p.pts, p.dts, p.is_keyframe, bytes(p)) for p in c.demux(stream) if p.size]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_chunked_encoding_joins_into_the_same_stream(tmp_path: Path, weights: dict[str, Path], codec: str) -> None:
    # VFR with audio: chunk joins must keep every timestamp, and the audio must interleave whole.
    master = write_clip(tmp_path / "c.mkv", Clip(width=64, height=36, vfr=True, audio=True, shots=(0.8, 0.8)))
    runs = {}
    for chunks in (1, 3):
        out = tmp_path / f"c{chunks}.mov"
        result = _render(
            master, out, weights["tiny"], target="2x", codec=codec, encode_chunks=chunks, chunk_seconds=0.2
        )
        runs[chunks] = (out, result.provenance)  # type: ignore[attr-defined]
    (single, single_prov), (joined, joined_prov) = runs[1], runs[3]
    assert single_prov["processing"]["encoding"] == "one encoder"
    assert joined_prov["processing"]["encoding"]["chunks_at_once"] == 3
    chunk = joined_prov["processing"]["encoding"]["chunk_frames"]
    assert chunk == 5  # 0.2 s at the master's 25 fps

    video = _packets(joined, "video")
    times = _frame_times(joined)
    assert times == _frame_times(single) and len(times) == len(_frame_times(master))
    dts = [d for _, d, _, _ in video if d is not None]
    assert len(dts) == len(video) and dts == sorted(dts) and len(set(dts)) == len(dts)
    # Each chunk begins with a keyframe.
    assert sum(key for _, _, key, _ in video) >= -(-len(times) // chunk)
    # Audio copied packet for packet; container and stream metadata as with one encoder.
    assert _packets(joined, "audio") == _packets(single, "audio")
    with av.open(str(single)) as a, av.open(str(joined)) as b:
        assert a.metadata.keys() == b.metadata.keys()
        when = "creation_time"  # the second the file was written
        assert {k: v for k, v in a.streams.video[0].metadata.items() if k != when} == {
            k: v for k, v in b.streams.video[0].metadata.items() if k != when
        }
        # The joined file plays through: every frame decodes, close to the single encoder's.
        for one, many in zip(a.decode(video=0), b.decode(video=0), strict=True):
            diff = one.to_ndarray(format="rgb24").astype(float) - many.to_ndarray(format="rgb24")
            assert 10 * np.log10(255**2 / max(1e-9, float(np.mean(diff**2)))) > 30


@pytest.mark.parametrize(
    ("codec", "setting"),
    [("h264", "subme=7"), ("h264-fast", "subme=2"), ("hevc", "rd=3"), ("hevc-fast", "rd=2")],
)
def test_fast_tiers_use_their_presets(tmp_path: Path, weights: dict[str, Path], codec: str, setting: str) -> None:
    master = write_clip(tmp_path / "f.mp4", Clip(width=64, height=36, shots=(0.3,)))
    out = tmp_path / f"f.{codec}.mov"
    result = _render(master, out, weights["tiny"], target="2x", codec=codec)
    assert result.provenance["output"]["codec"] == codec  # type: ignore[attr-defined]
    # x264 and x265 write the settings they ran with into the stream (first frame or header).
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        written = bytes(next(p for p in c.demux(stream) if p.size)) + (stream.codec_context.extradata or b"")
    assert len(_frame_times(out)) == len(_frame_times(master))
    match = re.search(rb"options: ([ -~]+)", written)
    assert match is not None and setting in match.group(1).decode().split()


def test_audio_copied_with_equal_duration(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "a.mp4", Clip(width=64, height=36, audio=True, shots=(1.0, 1.0)))
    out = tmp_path / "a.4k.mov"
    _render(master, out, weights["tiny"], target="256x144")
    src, dst = probe(master), probe(out)
    assert [a.codec for a in dst.audio_streams] == ["aac"]
    with av.open(str(master)) as a, av.open(str(out)) as b:
        sa_, sb = a.streams.audio[0], b.streams.audio[0]
        assert sa_.duration and sa_.time_base and sb.duration and sb.time_base
        da, db = float(sa_.duration * sa_.time_base), float(sb.duration * sb.time_base)
    assert db == pytest.approx(da, abs=0.03)
    assert dst.duration_s == pytest.approx(src.duration_s, abs=0.05)
    assert (dst.width, dst.height) == (256, 144)


def _master_with_mp2_and_srt(path: Path, srt: Path) -> Path:
    """A Matroska master as broadcast archives have them: MP2 audio and SRT subtitles."""
    srt.write_text("1\n00:00:00,100 --> 00:00:00,300\nHello <i>there</i>\n\n2\n00:00:00,300 --> 00:00:00,380\nSecond\n")
    with av.open(str(srt)) as subtitles, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 36, "yuv420p"
        audio = out.add_stream("mp2", rate=48000, layout="stereo")
        text = out.add_stream_from_template(subtitles.streams[0])
        for i in range(10):
            picture = av.VideoFrame.from_ndarray(np.full((36, 64, 3), i * 20, np.uint8), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 19200), np.int16), format="s16", layout="stereo")
        samples.sample_rate, samples.pts = 48000, 0
        out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
        for packet in subtitles.demux(subtitles.streams[0]):
            if packet.dts is not None:
                packet.stream = text
                out.mux(packet)
    return path


def test_audio_and_subtitles_in_a_form_each_container_plays(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = _master_with_mp2_and_srt(tmp_path / "archive.mkv", tmp_path / "s.srt")
    # MP4: AAC at a stated rate (FLAC in MP4 is refused by many players); SRT as mov_text.
    result = _render(master, tmp_path / "a.mp4", weights["tiny"], target="2x", codec="h264")
    with av.open(str(tmp_path / "a.mp4")) as made:
        (audio,) = made.streams.audio
        assert audio.codec_context.name == "aac" and audio.codec_context.channels == 2
        (text,) = made.streams.subtitles
        assert text.codec_context.name == "mov_text"
        said = b"".join(bytes(p) for p in made.demux(text))
    assert b"Hello there" in said and b"Second" in said
    assert result.provenance["streams"]["transcoded"] == {1: "aac 256 kb/s"}  # type: ignore[attr-defined]
    assert result.provenance["streams"]["subtitles_to_mov_text"] == [2]  # type: ignore[attr-defined]
    # QuickTime: lossless PCM, where it is at home; the subtitles too.
    _render(master, tmp_path / "a.mov", weights["tiny"], target="2x")
    with av.open(str(tmp_path / "a.mov")) as made:
        assert [s.codec_context.name for s in made.streams.audio] == ["pcm_s24le"]
        assert [s.codec_context.name for s in made.streams.subtitles] == ["mov_text"]
    # Matroska: the broadcast MP2 as it is; the subtitles as ASS, its own text track.
    result = _render(master, tmp_path / "a.mkv", weights["tiny"], target="2x", codec="h264")
    with av.open(str(tmp_path / "a.mkv")) as made:
        assert [s.codec_context.name for s in made.streams.audio] == ["mp2"]
        (text,) = made.streams.subtitles
        assert text.codec_context.name in ("ass", "ssa")  # Matroska's S_TEXT/ASS reads back as either
        said = b"".join(bytes(p) for p in made.demux(text))
    assert b"Hello" in said and b"Second" in said
    assert result.provenance["streams"]["subtitles_to_ass"] == [2]  # type: ignore[attr-defined]


def test_interlaced_is_deinterlaced(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "i.mkv", Clip(interlaced=True, width=64, height=48))
    result = _render(master, tmp_path / "i.mov", weights["tiny"], target="2x")
    assert result.provenance["processing"]["deinterlaced"] == "bwdif (send_frame)"  # type: ignore[attr-defined]
    assert result.frames == len(_frame_times(master))  # type: ignore[attr-defined]
    assert not probe(tmp_path / "i.mov").interlaced


def test_ten_bit_stays_ten_bit(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = tmp_path / "ramp.mkv"
    with av.open(str(master), "w") as out:
        stream = out.add_stream("libx265", rate=25, options={"x265-params": "log-level=error:lossless=1"})
        stream.width, stream.height, stream.pix_fmt = 256, 64, "yuv420p10le"
        ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.float64), (64, 1))
        rgb = np.stack([ramp, ramp, ramp], axis=-1).round().astype(np.uint16)
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="yuv420p10le")))
        out.mux(stream.encode(None))
    out_path = tmp_path / "ramp.2x.mov"
    _render(master, out_path, weights["identity"], target="2x")
    info = probe(out_path)
    assert (info.bit_depth, info.pixel_format) == (10, "yuv420p10le")
    with av.open(str(out_path)) as c:
        luma = next(c.decode(video=0)).planes[0]
        values = np.frombuffer(bytes(luma), dtype=np.uint16)
    assert len(np.unique(values)) > 256  # more levels than 8 bits could carry


def test_colour_survives_the_round_trip(tmp_path: Path, weights: dict[str, Path]) -> None:
    """An SD master (BT.601, untagged) through an identity model keeps its colours and is tagged."""
    master = write_clip(tmp_path / "sd.mov", Clip(width=128, height=96, shots=(0.2,)))
    out = tmp_path / "sd.2x.mov"
    _render(master, out, weights["identity"], target="2x", codec="prores")
    with av.open(str(master)) as a, av.open(str(out)) as b:
        src = next(a.decode(video=0)).reformat(format="rgb24", src_colorspace="ITU601").to_ndarray().astype(int)
        frame = next(b.decode(video=0))
        assert (frame.colorspace, frame.color_range) == (6, 1)  # smpte170m, limited: said explicitly
        dst = (
            frame.reformat(format="rgb24", src_colorspace="ITU601", width=128, height=96, interpolation="AREA")
            .to_ndarray()
            .astype(int)
        )
    # Compare flat regions away from edges (the moving bar and stripes blur under resampling).
    assert np.median(np.abs(src - dst)) <= 2


def test_provenance_tags_and_sidecar(tmp_path: Path, weights: dict[str, Path]) -> None:
    # Five frames, each encoded at 3840x2160: most of this test's time. Frame by frame, as the
    # temporal stage's flow at 4K would add twice that and is not what is tested here.
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36, shots=(0.2,)))
    out = tmp_path / "m.4k.mov"
    result = _render(master, out, weights["tiny"], target="4k", temporal=TemporalSettings(enabled=False))
    with av.open(str(out)) as c:
        tags = dict(c.metadata)
    assert tags["footage_rendition"] == "1"
    assert NOTICE in tags["comment"] and "AI-upscaled" in tags["title"]
    assert tags["footage_model_sha256"] == result.model.sha256  # type: ignore[attr-defined]
    assert tags["footage_master_sha256"] == content_hash(master)
    sidecar = json.loads((tmp_path / "m.4k.mov.json").read_text())
    assert sidecar["model"]["name"] == "tiny" and sidecar["master"]["content_hash"] == content_hash(master)
    assert sidecar["output"]["width"] == 3840 and sidecar["notice"] == NOTICE
    assert probe(out).is_footage_rendition
    # Each stage's time is recorded; the device's own (CUDA events) only where there is a GPU.
    assert sidecar["timings"]["model_s"] > 0 and sidecar["timings"]["encode_busy_s"] >= 0
    assert ("device_s" in sidecar["timings"]) == torch.cuda.is_available()


def test_master_is_read_only_and_unchanged(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36, audio=True))
    before = (content_hash(master), master.stat().st_mtime_ns)
    master.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        _render(master, tmp_path / "out.mov", weights["tiny"], target="2x")
    finally:
        master.chmod(0o644)
    assert (content_hash(master), master.stat().st_mtime_ns) == before


def test_failure_leaves_nothing_under_the_final_name(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36, shots=(1.0, 1.0)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cancel = threading.Event()

    def stop_early(p: RenderProgress) -> None:
        if p.frames_done >= 5:
            cancel.set()

    with pytest.raises(RenderError, match="render cancelled"):
        render(
            RenderRequest(
                master=master,
                output=out_dir / "m.2x.mov",
                target="2x",
                model=ModelChoice(str(weights["tiny"])),
                cache_dir=tmp_path,
            ),
            stop_early,
            cancel,
        )
    assert list(out_dir.iterdir()) == []


def test_a_master_that_vanishes_mid_render_is_reported_as_vanished(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36, shots=(1.0,)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def delete_master(p: RenderProgress) -> None:
        if p.frames_done >= 5 and master.exists():
            master.unlink()  # the decoder holds it open; its storage says it is gone

    model = ModelChoice(str(weights["tiny"]))
    request = RenderRequest(master=master, output=out_dir / "m.2x.mov", target="2x", model=model, cache_dir=tmp_path)
    with pytest.raises(RenderError, match=r"m\.mov vanished during the render"):
        render(request, delete_master)
    assert list(out_dir.iterdir()) == []


def test_refusals(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36))
    with pytest.raises(PlanError, match="would overwrite the master"):
        _render(master, master, weights["tiny"], target="2x")
    with pytest.raises(PlanError, match="is not larger than the master"):
        _render(master, tmp_path / "small.mov", weights["tiny"], target="32x18")
    (tmp_path / "taken.mov").write_bytes(b"x")
    with pytest.raises(PlanError, match="already exists; choose another --out or add --overwrite"):
        _render(master, tmp_path / "taken.mov", weights["tiny"], target="2x")


def test_anamorphic_and_rotated_geometry(tmp_path: Path, weights: dict[str, Path]) -> None:
    sd = write_clip(tmp_path / "sd.mov", Clip(width=96, height=64, sar=Fraction(32, 27), shots=(0.2,)))
    _render(sd, tmp_path / "sd.out.mov", weights["tiny"], target="384x216")
    info = probe(tmp_path / "sd.out.mov")
    assert (info.width, info.height, info.sample_aspect_ratio) == (384, 216, Fraction(1))
    rotated = write_clip(tmp_path / "r.mp4", Clip(width=64, height=36, rotation=90, shots=(0.2,)))
    _render(rotated, tmp_path / "r.out.mov", weights["tiny"], target="2x")
    info = probe(tmp_path / "r.out.mov")
    assert (info.width, info.height, info.rotation) == (72, 128, 0)


def test_cli_render_preview_and_models(tmp_path: Path, weights: dict[str, Path]) -> None:
    runner = CliRunner()
    master = write_clip(tmp_path / "m.mov", Clip(width=64, height=36))
    env = {"FOOTAGE_MODELS_DIR": str(tmp_path / "cache")}
    out = tmp_path / "m.2x.mov"
    done = runner.invoke(
        app, ["render", str(master), "--to", "2x", "-m", str(weights["tiny"]), "-o", str(out), "--json"], env=env
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["frames"] == 50 and out.exists()
    again = runner.invoke(
        app, ["render", str(master), "--to", "2x", "-m", str(weights["tiny"]), "-o", str(out)], env=env
    )
    assert again.exit_code == 2
    assert again.stderr == f"Error: {out} already exists; choose another --out or add --overwrite\n"
    folder = tmp_path / "renders"
    folder.mkdir()
    into = runner.invoke(
        app, ["render", str(master), "--to", "2x", "-m", str(weights["tiny"]), "-o", str(folder)], env=env
    )
    assert into.exit_code == 0, into.output
    assert [p.name for p in folder.iterdir() if p.suffix == ".mov"] == [
        "m.2x.tiny.hevc.mov"
    ]  # -o FOLDER: the default name there

    png = tmp_path / "p.png"
    shown = runner.invoke(
        app,
        ["preview", str(master), "--at", "0.5", "--models", f"{weights['tiny']},{weights['identity']}", "-o", str(png)],
        env=env,
    )
    assert shown.exit_code == 0, shown.output
    with av.open(str(png)) as c:
        shape = (c.streams.video[0].width, c.streams.video[0].height)
    # Three labelled rows (bicubic and two models), each a 960 px wide 16:9
    # panel (540 px) under a 28 px label, two panels (whole, zoom) side by side.
    assert shape == (2 * 960, 3 * (540 + 28))

    listed = runner.invoke(app, ["models", "--json"], env=env)
    names = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
    assert names["RealESRGAN_x4plus"]["preset"] == "live-action-quality"
    assert names["realesr-general-x4v3"]["cached"] == "no"
    assert not os.path.exists(tmp_path / "cache")
    # A file under the model's name whose sha256 is not the model's is not "cached".
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / KNOWN_MODELS["realesr-general-x4v3"].filename).write_bytes(b"not the weights")
    listed = runner.invoke(app, ["models", "--json"], env=env)
    assert {m["name"]: m for m in json.loads(listed.stdout)["models"]}["realesr-general-x4v3"]["cached"] == "damaged"
    # One that loads as a x4 model, converted or fine-tuned, is another file, not a damaged one.
    write_tiny_compact(tmp_path / "cache" / KNOWN_MODELS["realesr-general-x4v3"].filename)
    listed = runner.invoke(app, ["models", "--json"], env=env)
    assert {m["name"]: m for m in json.loads(listed.stdout)["models"]}["realesr-general-x4v3"]["cached"] == "other"


def test_timecode_and_metadata_carried_over(tmp_path: Path, weights: dict[str, Path]) -> None:
    master = tmp_path / "tc.mov"
    with av.open(str(master), "w") as out:
        out.metadata["timecode"] = "10:00:00:00"
        out.metadata["artist"] = "Camera A"
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        for i in range(5):
            picture = av.VideoFrame.from_ndarray(np.full((36, 64, 3), i * 40, np.uint8), format="rgb24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    _render(master, tmp_path / "tc.2x.mov", weights["tiny"], target="2x")
    info = probe(tmp_path / "tc.2x.mov")
    assert info.timecode == "10:00:00:00"
    assert info.tags.get("artist") == "Camera A"


def test_preview_shows_frames_as_displayed(tmp_path: Path, weights: dict[str, Path]) -> None:
    from upscaler.preview import preview

    rotated = write_clip(tmp_path / "r.mp4", Clip(width=64, height=36, rotation=90, shots=(0.3,)))
    sheet = preview(rotated, 0.1, [str(weights["tiny"])], tmp_path / "r.png", tmp_path)
    with av.open(str(sheet.path)) as c:
        width, height = c.streams.video[0].width, c.streams.video[0].height
    # Two rows of upright (portrait) panels: taller than wide.
    assert height > width
    assert sheet.panels[0] == "source, bicubic x4" and sheet.panels[1].startswith("tiny (")


def test_preview_lands_on_the_exact_frame_in_mpeg_ts(tmp_path: Path, weights: dict[str, Path]) -> None:
    """MPEG-TS seeks by bytes and can land after the time asked (the next keyframe);
    the preview seeks further back and decodes forward to the frame itself."""
    from upscaler.preview import preview

    clip = Clip(codec="mpeg2video", width=64, height=36, shots=(2.0, 2.0), options={"g": "25"})
    master = write_clip(tmp_path / "broadcast.ts", clip)
    with av.open(str(master)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    start = times[0]
    for at in (0.52, 1.48, 2.96):
        sheet = preview(master, at, [str(weights["tiny"])], tmp_path / f"p{at}.png", tmp_path)
        expected = min((t - start for t in times if t - start >= at - 1e-6), default=None)
        assert expected is not None and sheet.frame_s == pytest.approx(expected, abs=1e-3), (at, sheet.frame_s)
