"""index(path) end to end on a real catalog with a tiny real CLIP model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import sqlalchemy as sa
from media import Clip, truncate, write_clip
from tiny_models import write_tiny_clip
from typer.testing import CliRunner

from catalog import Asset, Catalog, MomentView
from catalog.media import RENDITION_TAG
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import index_file
from indexer.settings import EmbeddingSettings


def _segments(catalog: Catalog, asset_id: int) -> list[tuple[float, float, float, int]]:
    with catalog.session() as s:
        return list(
            s.execute(
                sa.select(MomentView.start_s, MomentView.end_s, MomentView.frame_s, MomentView.view)
                .where(MomentView.asset_id == asset_id)
                .order_by(MomentView.frame_s, MomentView.view)
            ).all()
        )


def _asset(catalog: Catalog, asset_id: int) -> Asset:
    with catalog.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None
        return asset


def test_index_writes_asset_and_segments(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "harbour.mov", Clip(shots=(1.0, 1.0), audio=True))
    result = index_file(catalog, embedder, path)
    assert result.outcome == "indexed" and result.asset_id is not None
    asset = _asset(catalog, result.asset_id)
    assert asset.status == "indexed" and asset.kind == "master"
    assert (asset.width, asset.height, asset.video_codec) == (160, 90, "h264")
    assert asset.content_hash is not None and asset.content_hash.startswith("sha256:")
    assert asset.audio_streams[0]["codec"] == "aac"
    # Two shots, each seen through two square views (16:9).
    assert [(s, v) for s, _, _, v in _segments(catalog, result.asset_id)] == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    assert result.segments == 4


def test_reindex_of_unchanged_file_does_no_work(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip())
    first = index_file(catalog, embedder, path)
    with catalog.session() as s:
        ids_before = list(s.scalars(sa.select(MomentView.id).order_by(MomentView.id)))
    second = index_file(catalog, embedder, path)
    assert second.outcome == "unchanged" and second.asset_id == first.asset_id
    with catalog.session() as s:
        assert list(s.scalars(sa.select(MomentView.id).order_by(MomentView.id))) == ids_before


def test_changed_file_is_reindexed_under_the_same_id(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip(shots=(1.0,)))
    first = index_file(catalog, embedder, path)
    write_clip(path, Clip(shots=(1.0, 1.0, 1.0)))
    second = index_file(catalog, embedder, path)
    assert second.outcome == "indexed" and second.asset_id == first.asset_id
    assert len({s for s, *_ in _segments(catalog, first.asset_id or 0)}) == 3


def test_forced_reindex_gives_the_same_rows(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    from indexer.index import IndexOptions

    path = write_clip(tmp_path / "a.mp4", Clip(shots=(1.0, 1.0)))
    first = index_file(catalog, embedder, path)
    before = _segments(catalog, first.asset_id or 0)
    again = index_file(catalog, embedder, path, IndexOptions(force=True))
    assert again.outcome == "indexed" and _segments(catalog, first.asset_id or 0) == before


def test_rename_keeps_identity(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip())
    first = index_file(catalog, embedder, path)
    moved = tmp_path / "sub" / "renamed.mp4"
    moved.parent.mkdir()
    shutil.move(path, moved)
    second = index_file(catalog, embedder, moved)
    assert second.outcome == "moved" and second.asset_id == first.asset_id
    assert catalog.mounts.file(_asset(catalog, first.asset_id or 0)) == moved
    assert len(_segments(catalog, first.asset_id or 0)) == first.segments


def test_copy_is_a_new_asset(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip())
    first = index_file(catalog, embedder, path)
    copy = tmp_path / "copy.mp4"
    shutil.copy(path, copy)
    second = index_file(catalog, embedder, copy)
    assert second.outcome == "indexed" and second.asset_id != first.asset_id


def test_bad_files_are_recorded_and_good_ones_indexed(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not video")
    cut = truncate(write_clip(tmp_path / "cut.mp4", Clip(shots=(2.0,))))
    good = write_clip(tmp_path / "good.mp4", Clip())
    results = {Path(r.path).name: r for r in (index_file(catalog, embedder, p) for p in (empty, text, cut, good))}
    assert results["good.mp4"].outcome == "indexed"
    for name in ("empty.mov", "notes.mp4", "cut.mp4"):
        assert results[name].outcome == "failed"
        asset = _asset(catalog, results[name].asset_id or 0)
        assert asset.status == "error" and asset.error == results[name].message
    assert "empty file (0 bytes)" in (results["empty.mov"].message or "")


def test_footage_rendition_is_not_taken_as_master(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = tmp_path / "a.4k.mov"
    # QuickTime keeps custom keys only with use_metadata_tags, as renditions are written.
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata[RENDITION_TAG] = "1"
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 9, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    result = index_file(catalog, embedder, path)
    assert result.outcome == "skipped"
    with catalog.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Asset)) == 0


def test_other_model_keeps_its_own_vectors(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip())
    first = index_file(catalog, embedder, path)
    other = ClipEmbedder(EmbeddingSettings(model=write_tiny_clip(tmp_path / "other-clip", seed=1), batch_size=4))
    assert other.identity != embedder.identity
    # The file is unchanged, but the other model has never seen it: embedded, not skipped.
    second = index_file(catalog, other, path)
    assert (second.outcome, second.asset_id) == ("indexed", first.asset_id)
    with catalog.session() as s:
        counts = dict(
            s.execute(
                sa.select(MomentView.embedding_model, sa.func.count())
                .where(MomentView.asset_id == first.asset_id)
                .group_by(MomentView.embedding_model)
            ).all()
        )
    assert counts == {embedder.identity: first.segments, other.identity: second.segments}
    # Back with the first model: its vectors are still there, so nothing to redo.
    assert index_file(catalog, embedder, path).outcome == "unchanged"


def test_same_model_under_another_setting_is_the_same_model(
    catalog: Catalog, embedder: ClipEmbedder, tiny_clip: str, tmp_path: Path
) -> None:
    path = write_clip(tmp_path / "a.mp4", Clip())
    index_file(catalog, embedder, path)
    other = ClipEmbedder(EmbeddingSettings(model=tiny_clip, pretrained=None, batch_size=4))
    assert other.identity == embedder.identity  # pretrained does not apply to local-dir models
    assert index_file(catalog, other, path).outcome == "unchanged"


def test_weights_are_loaded_not_random(tiny_clip: str, embedder: ClipEmbedder) -> None:
    again = ClipEmbedder(EmbeddingSettings(model=tiny_clip))
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(again.embed_images([image]), embedder.embed_images([image]), atol=1e-5)
    vectors = embedder.embed_text(["a harbour at dusk", "a red car"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_only_loading_gives_the_same_text_vectors(tiny_clip: str, embedder: ClipEmbedder) -> None:
    text_only = ClipEmbedder(EmbeddingSettings(model=tiny_clip), text_only=True)
    np.testing.assert_allclose(text_only.embed_text(["a pier"]), embedder.embed_text(["a pier"]), atol=1e-6)
    assert text_only.model.visual is None


def test_cli_index_summary_and_exit_code(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    write_clip(folder / "one.mp4", Clip())
    write_clip(folder / ".hidden.mp4", Clip())
    write_clip(folder / "copying.mp4", Clip()).rename(folder / "copying.mp4.part")
    (folder / "broken.mov").write_bytes(b"\x00" * 100)
    env = {
        "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_CLIP_MODEL": tiny_clip,
    }
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(folder), "--json"], env=env)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["indexed"] == 1 and report["counts"]["failed"] == 1
    assert {Path(f["path"]).name for f in report["files"]} == {"one.mp4", "broken.mov"}

    missing = runner.invoke(app, ["index", str(tmp_path / "nope")], env=env)
    assert missing.exit_code == 5
    assert missing.stderr == f"Error: no such file or folder: {tmp_path / 'nope'}\n"

    # A file moved since: its row says where it is now and where it came from.
    (folder / "one.mp4").rename(folder / "two.mp4")
    moved = runner.invoke(app, ["index", str(folder / "two.mp4")], env=env)
    assert moved.exit_code == 0, moved.output
    (row,) = [line for line in moved.stdout.splitlines() if "two.mp4" in line]
    assert "moved from " + str(folder / "one.mp4") in row


def test_reindex_with_a_new_model_keeps_spaces_apart(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    from tiny_models import write_tiny_clip

    path = write_clip(tmp_path / "a.mp4", Clip())
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"\x00" * 64)
    env = {
        "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_CLIP_MODEL": tiny_clip,
    }
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(path)], env=env).exit_code == 0
    assert runner.invoke(app, ["index", str(broken)], env=env).exit_code == 1

    other = write_tiny_clip(tmp_path / "other-clip", seed=1)
    nothing = runner.invoke(app, ["reindex", "--json"], env=env)
    assert json.loads(nothing.stdout)["files"] == []
    result = runner.invoke(app, ["reindex", "--json"], env={**env, "FOOTAGE_CLIP_MODEL": other})
    assert result.exit_code == 0, result.output
    assert [Path(f["path"]).name for f in json.loads(result.stdout)["files"]] == ["a.mp4"]
    with catalog.session() as s:
        models = s.execute(
            sa.select(MomentView.embedding_model, sa.func.count()).group_by(MomentView.embedding_model)
        ).all()
    assert dict(models) == {tiny_clip: 4, other: 4}


def test_a_faststart_file_cut_short_is_indexed_with_the_shortfall(
    catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    source = write_clip(tmp_path / "source.mp4", Clip(shots=(2.0, 2.0, 2.0)))
    faststart = tmp_path / "faststart.mp4"
    # The header first, as streaming exports write it: a cut copy still opens and decodes.
    with av.open(str(source)) as inp, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    whole = index_file(catalog, embedder, faststart)
    assert (whole.outcome, _asset(catalog, whole.asset_id or 0).error) == ("indexed", None)
    truncate(faststart, keep_fraction=0.5)
    cut = index_file(catalog, embedder, faststart)
    asset = _asset(catalog, cut.asset_id or 0)
    assert (cut.outcome, asset.status) == ("indexed", "indexed")  # what is there is searchable
    assert asset.error is not None and asset.error.startswith("truncated: 2.0 s of video decode")
    assert asset.error.endswith("the container declares 6.0 s")


def test_progress_within_a_file(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    from indexer.index import IndexProgress

    seen: list[IndexProgress] = []
    path = write_clip(tmp_path / "long.mp4", Clip(shots=(3.0, 3.0)))
    assert index_file(catalog, embedder, path, on_progress=seen.append).outcome == "indexed"
    assert [p.stage for p in seen][0] == "probing" and [p.stage for p in seen][-2:] == ["hashing", "writing"]
    sampled = [p.done_s for p in seen if p.stage == "sampling"]
    assert len(sampled) >= 4 and sampled == sorted(sampled)  # footage seconds, moment by moment
    assert sampled[-1] == pytest.approx(6.0, abs=0.05)
    assert all(p.total_s == pytest.approx(6.0, abs=0.05) for p in seen if p.stage != "probing")


def test_an_index_job_that_cannot_read_its_file_never_ends_done(
    catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    """Another host's path, a share not mounted here: the job fails (and is retried), naming the file."""
    from catalog.jobs import INDEX_TASK, job_app
    from catalog.storages import add_storage
    from indexer.errors import UnreadableFileError
    from indexer.tasks import register_index_task

    jobs = job_app(catalog)
    register_index_task(jobs, catalog, lambda: embedder)
    elsewhere = tmp_path / "mounted-elsewhere" / "a.mov"
    storage, rel = catalog.mounts.place(elsewhere)
    with pytest.raises(UnreadableFileError, match=rf"{elsewhere}: cannot read: No such file or directory \(on "):
        jobs.tasks[INDEX_TASK](storage_id=storage.id, rel_path=rel, kind="rendition")
    # A storage this host does not serve: the job fails too, saying so.
    with catalog.session() as s:
        nas = add_storage(s, "nas", tmp_path)
    with pytest.raises(UnreadableFileError, match=r"storage nas is not mounted on this host"):
        jobs.tasks[INDEX_TASK](storage_id=nas.id, rel_path="a.mov")
    here = write_clip(tmp_path / "here.mp4", Clip())
    storage, rel = catalog.mounts.place(here)
    jobs.tasks[INDEX_TASK](storage_id=storage.id, rel_path=rel)  # a readable file is indexed as before
    with catalog.session() as s:
        assert s.scalars(sa.select(Asset.status)).all() == ["indexed"]


def test_an_index_that_began_before_a_newer_one_finished_never_replaces_it(
    catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    """Two index jobs of one file overlap when one was handed on while its worker was away: the
    late one (begun first) must not write over the newer one's result."""
    from indexer.index import IndexOptions, IndexProgress, IndexResult

    clip = write_clip(tmp_path / "clip.mp4", Clip(shots=(1.0, 1.0)))
    newer: list[IndexResult] = []

    def meanwhile(progress: IndexProgress) -> None:
        if progress.stage == "writing" and not newer:  # the late job is about to write: another one finished first
            newer.append(index_file(catalog, embedder, clip, IndexOptions(force=True)))

    late = index_file(catalog, embedder, clip, on_progress=meanwhile)
    assert [r.outcome for r in newer] == ["indexed"]
    assert late.outcome == "unchanged" and "indexed meanwhile by a newer job" in (late.message or "")
    with catalog.session() as s:
        (asset,) = s.scalars(sa.select(Asset)).all()
        views = s.scalar(sa.select(sa.func.count()).select_from(MomentView).where(MomentView.asset_id == asset.id))
    assert views == newer[0].segments  # the newer job's moments, not written twice
    again = index_file(catalog, embedder, clip, IndexOptions(force=True))  # begun after: replaces as before
    assert again.outcome == "indexed"


def test_a_file_that_vanishes_mid_index_is_reported_as_vanished(
    catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    from indexer.index import IndexProgress

    clip = write_clip(tmp_path / "going.mp4", Clip(shots=(1.0,)))

    def delete_while_hashing(progress: IndexProgress) -> None:
        if progress.stage == "hashing":
            clip.unlink()

    result = index_file(catalog, embedder, clip, on_progress=delete_while_hashing)
    assert (result.outcome, result.readable) == ("failed", False)  # its index job fails and is retried
    assert result.message is not None and "vanished while it was being indexed" in result.message
    with catalog.session() as s:
        assert s.scalars(sa.select(Asset)).all() == []  # nothing recorded against a file that is not there
