"""Proxies: small H.264 files every browser and editor plays, made from any version, listed
with it, made once; the file itself checked against its source frame by frame."""

from __future__ import annotations

import csv
import json
import urllib.parse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start
from typer.testing import CliRunner

from catalog import Catalog
from catalog.jobs import defer_index, job_app
from catalog.proxies import ask
from catalog.tables import Asset, Proxy, Storage
from cli.main import app
from upscaler.preview import displayed_frame
from upscaler.proxy import make_proxy

runner = CliRunner()


def _frames(path: Path, size: tuple[int, int] | None = None) -> list[tuple[float, np.ndarray]]:
    """Every frame as (time, luma), scaled to ``size`` (upright, square pixels) when given."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1], format="gray")
            else:
                frame = frame.reformat(format="gray")
            out.append((float(frame.time or 0.0), frame.to_ndarray().astype(np.float64)))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _made_from(name: str) -> dict[str, str]:
    return {"kind": "master", "name": name, "content_hash": "sha256:" + "0" * 64}


def test_a_prores_master_becomes_a_browser_proxy(tmp_path: Path) -> None:
    master = write_clip(
        tmp_path / "A001 ProRes.mov",
        Clip(
            width=1920,
            height=1080,
            codec="prores_ks",
            pix_fmt="yuv422p10le",
            audio=True,
            shots=(1.0, 1.0),
            stream_metadata={"timecode": "01:02:03:04"},
        ),
    )
    before = master.read_bytes()
    result = make_proxy(master, tmp_path / "proxy.mp4", _made_from(master.name))
    assert master.read_bytes() == before  # the master is only read
    with av.open(str(result.path)) as proxy:
        video = proxy.streams.video[0]
        assert (video.codec_context.name, video.codec_context.profile) == ("h264", "High")
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert video.metadata.get("timecode") == "01:02:03:04"
        assert proxy.metadata.get("footage_proxy") == "1"
        audio = proxy.streams.audio[0]
        assert (audio.codec_context.name, audio.codec_context.channels) == ("aac", 2)
        # A keyframe every second (25 frames at 25 fps), for scrubbing.
        keyframes = [float(p.pts * p.time_base) for p in proxy.demux(video) if p.is_keyframe and p.pts is not None]
        assert len(keyframes) == 2 and keyframes[1] - keyframes[0] == pytest.approx(1.0, abs=0.001)
    # Fast start: the index (moov) comes before the media (mdat), so a browser plays at once.
    head = result.path.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")
    # Each frame matches the master's at the same time, scaled to the proxy's size.
    source, made = _frames(master, (1280, 720)), _frames(result.path)
    assert [round(t, 3) for t, _ in made] == [round(t, 3) for t, _ in source]
    assert min(_psnr(a, b) for (_, a), (_, b) in zip(source, made, strict=True)) >= 35.0
    assert result.provenance["made_from"]["name"] == "A001 ProRes.mov"
    assert not list(tmp_path.glob(".*partial*"))


def _loudest_hz(samples: np.ndarray, rate: int = 48000) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples))


def test_a_cameras_mono_tracks_become_left_and_right(tmp_path: Path) -> None:
    """A master with a channel a track (three mono PCM tracks, as camera MOVs and MXF hold
    them): the proxy's stereo has track 1 on the left and track 2 on the right."""
    master = write_clip(tmp_path / "A002C003.mov", Clip(width=320, height=180, mono_tracks=3))
    result = make_proxy(master, tmp_path / "proxy.mp4", _made_from(master.name))
    assert result.provenance["format"]["audio"] == "aac stereo 128 kb/s (mono tracks 1 and 2 as left and right)"
    with av.open(str(result.path)) as proxy:
        (audio,) = proxy.streams.audio
        assert audio.channels == 2
        samples = np.concatenate([frame.to_ndarray() for frame in proxy.decode(audio)], axis=1)
    assert samples.shape[1] >= 2 * 48000  # the whole 2 s, both tracks
    left, right = (_loudest_hz(channel[: 2 * 48000]) for channel in samples)
    assert left == pytest.approx(440, abs=2) and right == pytest.approx(880, abs=2)


def test_interlaced_anamorphic_mpeg2_becomes_progressive_square_pixels(tmp_path: Path) -> None:
    master = write_clip(
        tmp_path / "tape.mov",
        Clip(width=720, height=576, codec="mpeg2video", interlaced=True, sar=Fraction(16, 15), audio=True),
    )
    result = make_proxy(master, tmp_path / "tape.proxy.mp4", _made_from(master.name))
    with av.open(str(result.path)) as proxy:
        video = proxy.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (768, 576)
        first = next(proxy.decode(video))
        assert not first.interlaced_frame
        assert Fraction(video.sample_aspect_ratio or 1) == 1
    assert result.provenance["processing"]["deinterlaced"] is True


def test_variable_frame_rate_and_rotation_are_kept(tmp_path: Path) -> None:
    vfr = write_clip(tmp_path / "phone.mkv", Clip(vfr=True))
    made = make_proxy(vfr, tmp_path / "phone.proxy.mp4", _made_from(vfr.name))
    source_times = [round(t, 3) for t, _ in _frames(vfr)]
    assert len(set(np.diff(source_times).round(3))) > 1  # the source is VFR indeed
    assert [round(t, 3) for t, _ in _frames(made.path)] == source_times
    turned = write_clip(tmp_path / "turned.mp4", Clip(width=320, height=180, rotation=90))
    upright = make_proxy(turned, tmp_path / "turned.proxy.mp4", _made_from(turned.name))
    assert (upright.width, upright.height) == (180, 320)
    with av.open(str(upright.path)) as proxy:
        assert not proxy.streams.video[0].metadata.get("rotate")
        first = next(proxy.decode(video=0))
        assert first.rotation == 0
        # Turned the way a player shows the source (not mirrored, not upside down).
        shown, _ = displayed_frame(turned, 0.0)
        assert (
            _psnr(first.to_ndarray(format="gray").astype(np.float64), np.asarray(shown.convert("L"), np.float64)) > 30
        )


def test_a_file_that_is_not_video_fails_with_its_reason_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mov"
    bad.write_bytes(b"this is not a movie" * 100)
    from upscaler.errors import RenderError

    with pytest.raises(RenderError, match="notes.mov"):
        make_proxy(bad, tmp_path / "notes.proxy.mp4", _made_from(bad.name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mov"]


def test_proxies_are_made_once_and_listed_with_their_version(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    prores = write_clip(
        media / "Ünïcødé clip (final).mov", Clip(width=320, height=180, codec="prores_ks", pix_fmt="yuv422p10le")
    )
    h264 = write_clip(media / "phone.mp4", Clip(width=320, height=180))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    assert runner.invoke(app, ["index", str(media)], env=env).exit_code == 0

    made = runner.invoke(app, ["proxy", "--missing", "--json"], env=env)
    assert made.exit_code == 0, made.output
    outcomes = json.loads(made.stdout)["proxies"]
    # auto: the ProRes master no browser plays gets one; the H.264 master plays as it is.
    assert [(o["version"], o["outcome"]) for o in outcomes] == [(str(prores), "made")]
    proxy_path = Path(outcomes[0]["path"])
    assert proxy_path.parent.name == "proxies" and "Ünïcødé_clip_final" in proxy_path.name
    assert proxy_path.is_file()

    again = json.loads(runner.invoke(app, ["proxy", "--missing", "--json"], env=env).stdout)
    assert again["proxies"] == []
    written_at = proxy_path.stat().st_mtime_ns
    asked = runner.invoke(app, ["proxy", str(prores), "--json"], env=env)
    assert json.loads(asked.stdout)["proxies"][0]["outcome"] == "exists"
    assert proxy_path.stat().st_mtime_ns == written_at

    shown = json.loads(runner.invoke(app, ["show", str(prores), "--json"], env=env).stdout)
    master = shown["master"]
    assert master["browser_plays"] is False
    assert master["proxy"]["kind"] == "proxy" and master["proxy"]["status"] == "done"
    assert master["proxy"]["path"] == str(proxy_path) and master["proxy"]["ai_processed"] is False
    table = runner.invoke(app, ["show", str(prores)], env=env)
    assert "⤷ proxy" in table.stdout
    other = json.loads(runner.invoke(app, ["show", str(h264), "--json"], env=env).stdout)["master"]
    assert other["browser_plays"] is True and other["proxy"] is None

    # Edit lists: OTIO clips carry the original and the proxy; --proxies points EDL and CSV at it.
    timeline_path = tmp_path / "found.otio"
    searched = runner.invoke(app, ["search", "shot", "--export", str(timeline_path)], env=env)
    assert searched.exit_code == 0, searched.output
    clips = {c.name: c for c in otio.adapters.read_from_file(str(timeline_path)).find_clips()}
    refs = clips[prores.name].media_references()
    assert refs["DEFAULT_MEDIA"].target_url == prores.as_uri() and refs["proxy"].target_url == proxy_path.as_uri()
    assert clips[prores.name].active_media_reference_key == "DEFAULT_MEDIA"
    assert set(clips[h264.name].media_references()) == {"DEFAULT_MEDIA"}
    offline = tmp_path / "offline.csv"
    searched = runner.invoke(app, ["search", "shot", "--export", str(offline), "--proxies"], env=env)
    assert searched.exit_code == 0 and "have no proxy yet" in searched.stderr
    with offline.open() as f:
        rows = {Path(r["original"]).name: r for r in csv.DictReader(f)}
    assert rows[prores.name]["path"] == str(proxy_path) and rows[h264.name]["path"] == str(h264)
    edl = tmp_path / "offline.edl"
    assert runner.invoke(app, ["search", "shot", "--export", str(edl), "--proxies"], env=env).exit_code == 0
    assert urllib.parse.quote(proxy_path.name) in edl.read_text()  # OTIO writes the file's URL
    refused = runner.invoke(app, ["search", "shot", "--proxies"], env=env)
    assert refused.exit_code == 2 and "--export" in refused.output

    # The proxies folder is never indexed as footage, even when watched.
    indexed = runner.invoke(app, ["index", str(proxy_path), "--json"], env=env)
    assert "a footage proxy" in indexed.stdout
    with catalog.session() as session:
        assert session.query(Asset).count() == 2

    # The master replaced by a new take and indexed anew: its proxy is made again, from it.
    write_clip(prores, Clip(width=320, height=180, codec="prores_ks", pix_fmt="yuv422p10le", shots=(0.5, 0.5, 0.5)))
    assert runner.invoke(app, ["index", str(prores)], env=env).exit_code == 0
    remade = json.loads(runner.invoke(app, ["proxy", str(prores), "--json"], env=env).stdout)["proxies"][0]
    assert remade["outcome"] == "made"
    new_take = len(_frames(prores))
    assert new_take != 50 and len(_frames(proxy_path)) == new_take  # the new take's frames, not the old one's 50


def test_proxy_needs_a_version_or_missing(catalog: Catalog, tmp_path: Path) -> None:
    env = catalog_env(catalog, tmp_path / "home")
    result = runner.invoke(app, ["proxy"], env=env)
    assert result.exit_code == 2 and "--missing" in result.output
    unknown = runner.invoke(app, ["proxy", "nowhere.mov"], env=env)
    assert unknown.exit_code != 0 and "nowhere.mov" in unknown.output and "Traceback" not in unknown.output


def _proxy_of(catalog: Catalog, asset_id: int) -> Proxy | None:
    with catalog.session() as session:
        found = session.scalars(sa.select(Proxy).where(Proxy.source_id == asset_id)).one_or_none()
        if found is not None:
            session.expunge(found)
        return found


def test_workers_make_proxies_after_indexing_and_a_killed_one_leaves_nothing(
    catalog: Catalog, tiny_clip: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    # Long enough to be killed mid-way (progress is recorded each second).
    long = write_clip(
        media / "long.mp4", Clip(width=640, height=360, shots=(30.0, 30.0), options={"preset": "ultrafast"})
    )
    # Keyframes only: what is tested is its proxy, not its moments.
    assert runner.invoke(app, ["index", "--keyframes", str(long)], env=env).exit_code == 0
    camera = write_clip(media / "C001.mov", Clip(width=320, height=180, codec="prores_ks", pix_fmt="yuv422p10le"))
    with catalog.session() as session:
        long_id = session.scalars(sa.select(Asset.id).where(Asset.rel_path.endswith("long.mp4"))).one()
        storage = session.get(Storage, session.scalars(sa.select(Asset.storage_id)).first())
        assert storage is not None
        session.expunge(storage)
    jobs = job_app(catalog, asynchronous=False)
    logs = tmp_path / "logs"
    first = start(env, logs, "worker", "--stall-timeout", "3")
    try:
        # Indexed by a worker, a master no browser plays gets its proxy queued and made.
        with jobs.open():
            defer_index(jobs, storage, str(camera.relative_to("/")))
            wait_for(lambda: _camera_id(catalog) is not None, timeout=120)
            camera_id = _camera_id(catalog)
            assert camera_id is not None
            wait_for(lambda: getattr(_proxy_of(catalog, camera_id), "status", None) == "done", timeout=120)
            # An H.264 master is not given one without being asked; asked, it is killed mid-way.
            assert _proxy_of(catalog, long_id) is None
            proxy_id = ask(catalog, jobs, long_id)
        assert proxy_id is not None
        wait_for(lambda: getattr(_proxy_of(catalog, long_id), "progress", 0) > 0, timeout=120)
        listed = json.loads(runner.invoke(app, ["jobs", "--json"], env=env).stdout)["jobs"]
        running = [j for j in listed if j["task"] == "footage.proxy" and j["what"] == f"proxy {proxy_id}"]
        assert running[0]["status"] == "running" and running[0]["progress"] > 0
    finally:
        first.kill()
    proxies = tmp_path / "home" / "renditions" / "proxies"
    assert [p.name for p in proxies.iterdir() if not p.name.startswith(".")] == [
        Path(str(_proxy_of(catalog, camera_id).rel_path)).name  # type: ignore[union-attr]
    ]
    second = start(env, logs, "worker", "--stall-timeout", "3")
    try:
        wait_for(lambda: getattr(_proxy_of(catalog, long_id), "status", None) == "done", timeout=180)
    finally:
        code, _, err = second.stop()
    assert code == 0 and "Traceback" not in err, err
    made = _proxy_of(catalog, long_id)
    assert made is not None and made.attempts == 2 and made.duration_s == pytest.approx(60.0, abs=0.1)
    assert not list(proxies.glob(".*partial*"))  # the killed worker's leftover is gone
    with catalog.session() as session:
        runs = session.execute(
            sa.text(
                "SELECT status FROM procrastinate_jobs WHERE task_name = 'footage.proxy' AND args->>'proxy_id' = :i"
            ),
            {"i": str(proxy_id)},
        ).scalars()
        # The killed worker's job ended as aborted when its work went to a new job; made once.
        assert sorted(runs) == ["aborted", "succeeded"]


def _camera_id(catalog: Catalog) -> int | None:
    with catalog.session() as session:
        return session.scalars(
            sa.select(Asset.id).where(Asset.rel_path.endswith("C001.mov"), Asset.status == "indexed")
        ).one_or_none()
