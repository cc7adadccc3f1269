"""The watch-folder service on a real filesystem, real catalog and real model."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start

from catalog import Asset, Catalog
from indexer.embed import ClipEmbedder
from indexer.index import IndexOptions, IndexResult, index_file
from indexer.watch import FolderWatcher, WatchSettings


class Recorder:
    """The watcher's ``enqueue``: indexes right away and remembers when, like a worker would."""

    def __init__(self, catalog: Catalog, embedder: ClipEmbedder) -> None:
        self.catalog, self.embedder = catalog, embedder
        self.calls: list[tuple[Path, float]] = []
        self.results: list[IndexResult] = []

    def __call__(self, path: Path, root_id: int) -> None:
        self.calls.append((path, time.time()))
        self.results.append(index_file(self.catalog, self.embedder, path, IndexOptions(root_id=root_id)))

    def paths(self) -> list[str]:
        return [p.name for p, _ in self.calls]


def _assets(catalog: Catalog) -> dict[str, Asset]:
    with catalog.session() as s:
        return {Path(a.rel_path).name: a for a in s.scalars(sa.select(Asset))}


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "incoming"
    root.mkdir()
    return root


@pytest.fixture
def running(
    catalog: Catalog, embedder: ClipEmbedder, media_root: Path, tmp_path: Path
) -> Iterator[tuple[FolderWatcher, Recorder]]:
    recorder = Recorder(catalog, embedder)
    settings = WatchSettings(settle_s=1.0, tick_s=0.1, exclude=(media_root / "renditions",))
    watcher = FolderWatcher(catalog, [media_root], settings, recorder)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    time.sleep(0.5)
    yield watcher, recorder
    stop.set()
    thread.join(timeout=10)


def test_slow_copy_is_indexed_once_after_it_ends(
    running: tuple[FolderWatcher, Recorder], media_root: Path, tmp_path: Path
) -> None:
    _, recorder = running
    source = write_clip(tmp_path / "source.mp4", Clip(shots=(1.0, 1.0, 1.0)))
    data = source.read_bytes()
    target = media_root / "arriving.mp4"
    chunks = 8
    with open(target, "wb") as f:
        for i in range(chunks):  # about 3 s of copying, never still for the settle time
            f.write(data[i * len(data) // chunks : (i + 1) * len(data) // chunks])
            f.flush()
            time.sleep(0.4)
    copy_ended = time.time()
    wait_for(lambda: len(recorder.results) >= 1)  # indexed (the first index loads the shot detector)
    time.sleep(1.5)  # and nothing more comes
    assert recorder.paths() == ["arriving.mp4"]
    assert recorder.calls[0][1] >= copy_ended
    assert recorder.results[0].outcome == "indexed"


def test_rename_delete_and_bad_files(
    running: tuple[FolderWatcher, Recorder], catalog: Catalog, media_root: Path
) -> None:
    _, recorder = running
    write_clip(media_root / "good.mp4", Clip())
    (media_root / "broken.mov").write_bytes(b"\x00" * 2048)
    (media_root / ".hidden.mp4").write_bytes(b"x")
    (media_root / "download.mp4.part").write_bytes(b"x")
    (media_root / "renditions").mkdir()
    write_clip(media_root / "renditions" / "good.4k.mp4", Clip())
    wait_for(lambda: {"good.mp4", "broken.mov"} <= set(_assets(catalog)), timeout=30)
    assets = _assets(catalog)
    assert assets["good.mp4"].status == "indexed"
    assert assets["broken.mov"].status == "error" and "broken.mov" in (assets["broken.mov"].error or "")
    assert set(assets) == {"good.mp4", "broken.mov"}
    calls_before = len(recorder.calls)

    (media_root / "good.mp4").rename(media_root / "renamed.mp4")
    wait_for(lambda: "renamed.mp4" in _assets(catalog))
    assert _assets(catalog)["renamed.mp4"].id == assets["good.mp4"].id
    assert len(recorder.calls) == calls_before  # a rename is not re-indexed

    (media_root / "renamed.mp4").unlink()
    wait_for(lambda: _assets(catalog)["renamed.mp4"].status == "missing")


def test_restart_catches_up(catalog: Catalog, embedder: ClipEmbedder, media_root: Path) -> None:
    recorder = Recorder(catalog, embedder)
    settings = WatchSettings(settle_s=0.5)
    write_clip(media_root / "kept.mp4", Clip())
    write_clip(media_root / "deleted.mp4", Clip(shots=(1.0, 0.5)))
    write_clip(media_root / "renamed.mp4", Clip(shots=(0.5, 1.0)))
    write_clip(media_root / "edited.mp4", Clip(shots=(1.0,)))
    first = FolderWatcher(catalog, [media_root], settings, recorder)
    first.scan()

    # Until every file has settled and been queued (a loaded machine settles them at different ticks).
    def all_queued() -> bool:
        first.tick()
        return not first.pending

    wait_for(all_queued)
    assert sorted(recorder.paths()) == ["deleted.mp4", "edited.mp4", "kept.mp4", "renamed.mp4"]
    before = _assets(catalog)

    # While the service is down:
    (media_root / "deleted.mp4").unlink()
    (media_root / "renamed.mp4").rename(media_root / "new-name.mp4")
    write_clip(media_root / "edited.mp4", Clip(shots=(1.0, 1.0)))
    write_clip(media_root / "added.mp4", Clip(shots=(0.5, 0.5, 0.5)))
    past = time.time() - 60
    for name in ("edited.mp4", "added.mp4", "new-name.mp4"):
        os.utime(media_root / name, (past, past))

    recorder.calls.clear()
    second = FolderWatcher(catalog, [media_root], settings, recorder)
    (report,) = second.scan()
    assert (report.queued, report.missing, report.unchanged) == (3, 2, 1)
    second.tick()
    assert sorted(recorder.paths()) == ["added.mp4", "edited.mp4", "new-name.mp4"]
    after = _assets(catalog)
    assert after["deleted.mp4"].status == "missing"
    assert after["new-name.mp4"].id == before["renamed.mp4"].id
    assert "renamed.mp4" not in after
    assert after["edited.mp4"].id == before["edited.mp4"].id
    assert after["edited.mp4"].fingerprint != before["edited.mp4"].fingerprint


def test_watch_command_runs_jobs_and_stops_cleanly(
    catalog: Catalog, tiny_clip: str, media_root: Path, tmp_path: Path
) -> None:
    write_clip(media_root / "first.mp4", Clip())
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    service = start(env, tmp_path / "logs", "watch", str(media_root), "--settle", "0.5")
    try:
        wait_for(
            lambda: _assets(catalog).get("first.mp4") is not None and _assets(catalog)["first.mp4"].status == "indexed",
            timeout=90,
        )
        write_clip(media_root / "second.mp4", Clip(shots=(0.5, 0.5)))
        wait_for(
            lambda: (
                _assets(catalog).get("second.mp4") is not None and _assets(catalog)["second.mp4"].status == "indexed"
            ),
            timeout=60,
        )
    finally:
        code, out, err = service.stop()
    assert code == 0, err
    assert "Stopped." in out
    with catalog.session() as s:
        jobs = s.execute(
            sa.text("SELECT args->>'rel_path', status FROM procrastinate_jobs WHERE task_name = 'footage.index_file'")
        ).all()
    assert sorted((Path(p).name, st) for p, st in jobs) == [("first.mp4", "succeeded"), ("second.mp4", "succeeded")]


def test_a_watch_host_on_the_index_queue_leaves_renders_to_render_hosts(
    catalog: Catalog, tiny_clip: str, media_root: Path, tmp_path: Path
) -> None:
    from tiny_models import write_tiny_compact
    from typer.testing import CliRunner

    from cli.main import app

    write_clip(media_root / "first.mp4", Clip())
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    refused = CliRunner().invoke(app, ["watch", str(media_root), "-q", "gpu"], env=env)
    assert refused.exit_code == 2 and "unknown queue 'gpu'" in refused.output
    service = start(env, tmp_path / "logs", "watch", str(media_root), "--settle", "0.3", "-q", "index")
    try:
        wait_for(lambda: getattr(_assets(catalog).get("first.mp4"), "status", None) == "indexed", timeout=90)
        model = write_tiny_compact(tmp_path / "tiny.pth")
        upscale = ["upscale", str(media_root / "first.mp4"), "--to", "2x", "-m", str(model)]
        assert CliRunner().invoke(app, upscale, env=env).exit_code == 0
        # Work the watch host does take goes on: a new file is indexed after the request.
        write_clip(media_root / "second.mp4", Clip(shots=(0.5, 0.5)))
        wait_for(lambda: getattr(_assets(catalog).get("second.mp4"), "status", None) == "indexed", timeout=60)
    finally:
        code, out, err = service.stop()
    assert code == 0, err
    assert "working on queues index" in " ".join(out.split())
    with catalog.session() as s:
        renders = s.execute(
            sa.text("SELECT status FROM procrastinate_jobs WHERE task_name = 'footage.render'")
        ).scalars()
        assert list(renders) == ["todo"]  # waiting for a render host, untouched


def test_scan_leaves_the_renditions_folder_alone(catalog: Catalog, embedder: ClipEmbedder, media_root: Path) -> None:
    renders = media_root / "renditions"
    renders.mkdir()
    made = write_clip(renders / "a.4k.mov", Clip())
    index_file(catalog, embedder, made, IndexOptions(kind="rendition"))
    recorder = Recorder(catalog, embedder)
    watcher = FolderWatcher(catalog, [media_root], WatchSettings(exclude=(renders,)), recorder)
    (report,) = watcher.scan()
    assert (report.queued, report.missing) == (0, 0)
    assert _assets(catalog)["a.4k.mov"].status == "indexed"
    # Not taken as new masters, but still kept honest: a deleted rendition is missing.
    made.unlink()
    (report,) = watcher.scan()
    assert report.missing == 1 and _assets(catalog)["a.4k.mov"].status == "missing"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode; run as another user")
def test_a_file_unreadable_at_scan_is_recorded_and_tried_again(
    catalog: Catalog, embedder: ClipEmbedder, media_root: Path
) -> None:
    locked = write_clip(media_root / "locked.mp4", Clip())
    os.chmod(locked, 0)
    recorder = Recorder(catalog, embedder)
    watcher = FolderWatcher(catalog, [media_root], WatchSettings(settle_s=0.0, undecodable_retries=0), recorder)
    watcher.scan()
    watcher.tick()
    assert _assets(catalog)["locked.mp4"].status == "error"
    assert "cannot read: Permission denied" in (_assets(catalog)["locked.mp4"].error or "")
    os.chmod(locked, 0o644)  # someone fixes the rights: size and time are unchanged
    watcher.scan()
    watcher.tick()
    assert _assets(catalog)["locked.mp4"].status == "indexed"
