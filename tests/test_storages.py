"""Storages: files kept as (storage, path inside it), each host resolving them through its own
map, a mount checked by its marker; and an older catalog upgraded in place."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from typer.testing import CliRunner

from catalog import Catalog, CatalogSettings, open_catalog, schema
from catalog.assets import asset_by_path
from catalog.storages import MARKER, StorageUnavailableError, add_storage, env_key, write_map
from catalog.tables import Asset
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import index_file
from indexer.watch import FolderWatcher, WatchSettings

runner = CliRunner()


def _host(url: str, home: Path, name: str, **overrides: Path) -> Catalog:
    """The catalog at ``url`` as host ``name`` sees it (its own FOOTAGE_HOME and map)."""
    settings = CatalogSettings(
        home=home, database_url=url, host=name, storage_overrides={env_key(k): v for k, v in overrides.items()}
    )
    return open_catalog(settings)


@pytest.fixture
def hosts(catalog: Catalog, tmp_path: Path) -> Iterator[tuple[Catalog, Catalog, Path, Path]]:
    """Hosts a and b on one catalog; storage ``nas`` added by a at one folder, mounted by b
    at another path to the same files (a symlink stands in for b's mount of the share)."""
    url = catalog.engine.url.render_as_string(hide_password=False)
    share = tmp_path / "share"
    share.mkdir()
    b_mount = tmp_path / "b-mounts" / "footage"
    b_mount.parent.mkdir()
    b_mount.symlink_to(share)
    a = _host(url, tmp_path / "home-a", "studio-a")
    with a.session() as session:
        add_storage(session, "nas", share)
    write_map(tmp_path / "home-a", "nas", share)
    a.close()
    a = _host(url, tmp_path / "home-a", "studio-a")
    b = _host(url, tmp_path / "home-b", "render-b", nas=b_mount)
    try:
        yield a, b, share, b_mount
    finally:
        a.close()
        b.close()


def test_a_file_on_a_storage_is_at_each_hosts_own_path(
    hosts: tuple[Catalog, Catalog, Path, Path], embedder: ClipEmbedder
) -> None:
    a, b, share, b_mount = hosts
    (share / "day1").mkdir()
    clip = write_clip(share / "day1" / "A003C012.mov", Clip(width=160, height=90, shots=(1.0,)))
    assert index_file(a, embedder, clip).outcome == "indexed"
    with a.session() as session:
        asset = asset_by_path(session, clip)
        assert asset is not None
        assert (a.mounts.storage(asset.storage_id).name, asset.rel_path) == ("nas", "day1/A003C012.mov")
    # Host b opens it at its own mount, and finds it by its own path.
    assert b.mounts.file(asset) == b_mount / "day1" / "A003C012.mov"
    with b.session() as session:
        found = asset_by_path(session, b_mount / "day1" / "A003C012.mov")
        assert found is not None and found.id == asset.id
    # b indexing the same file through its own path: the same asset, unchanged.
    again = index_file(b, embedder, b_mount / "day1" / "A003C012.mov")
    assert (again.outcome, again.asset_id) == ("unchanged", asset.id)


def test_a_host_without_the_storage_shows_its_name_and_cannot_open_it(
    hosts: tuple[Catalog, Catalog, Path, Path], tmp_path: Path
) -> None:
    a, _, share, _ = hosts
    url = a.engine.url.render_as_string(hide_password=False)
    nas = a.mounts.by_name("nas")
    assert nas is not None
    with a.session() as session:
        insert = sa.insert(Asset).values(storage_id=nas.id, rel_path="x/clip.mov").returning(Asset.id)
        asset_id = session.execute(insert).scalar_one()
    with _host(url, tmp_path / "home-c", "laptop-c") as c, c.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None
        assert c.mounts.shown_file(asset) == "nas:x/clip.mov"
        with pytest.raises(StorageUnavailableError, match="not mounted on this host"):
            c.mounts.file(asset)


def test_a_folder_without_the_marker_or_with_anothers_is_not_served(
    hosts: tuple[Catalog, Catalog, Path, Path], tmp_path: Path
) -> None:
    a, _, share, _ = hosts
    url = a.engine.url.render_as_string(hide_password=False)
    empty = tmp_path / "empty-mount-point"
    empty.mkdir()
    other = tmp_path / "other-share"
    other.mkdir()
    with a.session() as session:
        add_storage(session, "archive", other)
    for folder, why in ((empty, f"has no {MARKER}"), (other, "holds storage 'archive', not this one")):
        with _host(url, tmp_path / "home-d", "host-d", nas=folder) as d:
            nas = d.mounts.by_name("nas")
            assert nas is not None
            mount = d.mounts.mount(nas)
            assert not mount.served and why in (mount.problem or "")


def test_a_wrong_share_at_the_watched_path_indexes_nothing_and_marks_nothing_missing(
    hosts: tuple[Catalog, Catalog, Path, Path], embedder: ClipEmbedder, tmp_path: Path
) -> None:
    a, _, share, _ = hosts
    clip = write_clip(share / "a.mov", Clip(width=160, height=90, shots=(1.0,)))
    assert index_file(a, embedder, clip).outcome == "indexed"
    # Another folder at the same path (a wrong NAS mounted there): other files, no marker.
    share.rename(tmp_path / "real-share")
    share.mkdir()
    write_clip(share / "stranger.mov", Clip(width=160, height=90, shots=(1.0,)))
    queued: list[Path] = []
    watcher = FolderWatcher(a, [share], WatchSettings(settle_s=0), lambda path, root: queued.append(path))
    reports = watcher.scan()
    watcher.tick()
    assert [r.offline for r in reports] == [True] and queued == []
    with a.session() as session:
        statuses = {x.rel_path: x.status for x in session.scalars(sa.select(Asset))}
    assert statuses == {"a.mov": "indexed"}


def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_storage_commands(catalog: Catalog, tmp_path: Path) -> None:
    url = catalog.engine.url.render_as_string(hide_password=False)
    share, b_mount, wrong = tmp_path / "share", tmp_path / "b" / "footage", tmp_path / "wrong"
    share.mkdir()
    wrong.mkdir()
    b_mount.parent.mkdir()
    b_mount.symlink_to(share)
    env_a = {"FOOTAGE_DATABASE_URL": url, "FOOTAGE_HOME": str(tmp_path / "a"), "FOOTAGE_HOST": "a"}
    env_b = {"FOOTAGE_DATABASE_URL": url, "FOOTAGE_HOME": str(tmp_path / "b-home"), "FOOTAGE_HOST": "b"}

    code, out, err = _cli(env_a, "storage", "add", "nas", str(share))
    assert code == 0, err
    assert "footage storage mount nas PATH" in out and (share / MARKER).is_file()
    code, _, err = _cli(env_a, "storage", "add", "nas", str(wrong))
    assert code == 2 and "exists already" in err and "Traceback" not in err
    code, _, err = _cli(env_b, "storage", "mount", "nas", str(wrong))
    assert code == 2 and f"has no {MARKER}" in err and "Traceback" not in err
    code, _, err = _cli(env_b, "storage", "mount", "archive", str(share))
    assert code == 5 and "no storage 'archive'" in err

    code, out, err = _cli(env_b, "storage", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out)["storages"]}
    assert listed["nas"]["served"] is False and "not mounted on this host" in listed["nas"]["problem"]
    assert listed["host-b"]["served"] is True and listed["host-b"]["folder"] == "/"
    assert listed["host-a"]["served"] is False

    code, out, err = _cli(env_b, "storage", "mount", "nas", str(b_mount))
    assert code == 0, err
    code, out, err = _cli(env_b, "storage", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out)["storages"]}
    assert listed["nas"] == {**listed["nas"], "served": True, "folder": str(b_mount), "problem": None}
    # FOOTAGE_STORAGE_NAS overrides the map for one process.
    code, out, err = _cli({**env_b, "FOOTAGE_STORAGE_NAS": str(wrong)}, "storage", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out)["storages"]}
    assert listed["nas"]["folder"] == str(wrong) and listed["nas"]["served"] is False


def test_an_older_catalog_upgrades_in_place(make_database: Callable[..., str], tmp_path: Path) -> None:
    """Absolute paths of 0007 become paths on the migrating host's own storage, queued jobs
    follow, and the files are found at the same paths afterwards."""
    url = make_database()
    engine = sa.create_engine(url)
    try:
        schema.upgrade(engine, "0007")
        with engine.begin() as conn:
            root = conn.execute(sa.text("INSERT INTO roots (path) VALUES ('/media/rushes') RETURNING id")).scalar()
            master = conn.execute(
                sa.text(
                    "INSERT INTO assets (path, root_id, status) VALUES ('/media/rushes/day 1/A001_C002.mov', :r,"
                    " 'indexed') RETURNING id"
                ),
                {"r": root},
            ).scalar()
            conn.execute(
                sa.text(
                    "INSERT INTO renditions (master_id, label, target_width, target_height, model_name, output_path)"
                    " VALUES (:m, '4k', 3840, 2160, 'x', '/home/me/renditions/A001_C002.4k.x.hevc.mov')"
                ),
                {"m": master},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args) VALUES"
                    " ('index', 'footage.index_file', 'index:/media/x.mov', 'index:/media/x.mov',"
                    " CAST(:args AS jsonb))"
                ),
                {"args": json.dumps({"path": "/media/x.mov", "root_id": None})},
            )
        schema.upgrade(engine, host="Studio-A.local")
        with engine.connect() as conn:
            storages = conn.execute(sa.text("SELECT id, name, host FROM storages")).all()
            ((storage_id, name, host),) = storages
            assert (name, host) == ("host-studio-a.local", "Studio-A.local")
            assert conn.execute(sa.text("SELECT storage_id, rel_path FROM roots")).one() == (storage_id, "media/rushes")
            assert conn.execute(sa.text("SELECT rel_path FROM assets")).scalar() == "media/rushes/day 1/A001_C002.mov"
            assert conn.execute(sa.text("SELECT output_rel_path FROM renditions")).scalar() == (
                "home/me/renditions/A001_C002.4k.x.hevc.mov"
            )
            words = conn.execute(sa.text("SELECT name_words, folder_words FROM asset_words")).one()
            assert "a001" in words.name_words and words.folder_words == ["day", "1"]
            job = conn.execute(sa.text("SELECT queue_name, args, queueing_lock FROM procrastinate_jobs")).one()
            assert job.queue_name == "index@host-studio-a.local"
            assert job.args == {"storage_id": storage_id, "rel_path": "media/x.mov", "root_id": None}
            assert job.queueing_lock == f"index:{storage_id}:media/x.mov"
    finally:
        engine.dispose()
    with _host(url, tmp_path / "home", "Studio-A.local") as same, same.session() as session:
        asset = asset_by_path(session, "/media/rushes/day 1/A001_C002.mov")
        assert asset is not None and same.mounts.file(asset) == Path("/media/rushes/day 1/A001_C002.mov")


def test_jobs_say_which_storage_a_waiting_job_needs(
    hosts: tuple[Catalog, Catalog, Path, Path], embedder: ClipEmbedder, tmp_path: Path
) -> None:
    from tiny_models import write_tiny_compact

    a, _, share, _ = hosts
    clip = write_clip(share / "a.mov", Clip(width=160, height=90, shots=(1.0,)))
    assert index_file(a, embedder, clip).outcome == "indexed"
    env = {
        "FOOTAGE_DATABASE_URL": a.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_HOME": str(tmp_path / "home-a"),
        "FOOTAGE_HOST": "studio-a",
        "FOOTAGE_RENDITIONS_DIR": str(tmp_path / "renditions"),
    }
    model = write_tiny_compact(tmp_path / "tiny.pth")
    code, out, err = _cli(env, "upscale", "nas:a.mov", "--to", "2x", "-m", str(model), "--json")
    assert code == 0, err
    requested = json.loads(out)
    assert requested["output"] == str(tmp_path / "renditions" / "a.2x.tiny.hevc.mov")
    code, out, err = _cli(env, "jobs", "--json")
    (job,) = json.loads(out)["jobs"]
    assert job["queue"] == "render@nas"
    assert job["waiting_for"] == "a running worker taking render work on storage nas"


def test_reindex_leaves_other_hosts_storages_to_them(
    hosts: tuple[Catalog, Catalog, Path, Path], embedder: ClipEmbedder, tiny_clip: str, tmp_path: Path
) -> None:
    a, _, share, _ = hosts
    assert index_file(a, embedder, write_clip(share / "a.mov", Clip(width=160, height=90, shots=(1.0,)))).asset_id
    env = {
        "FOOTAGE_DATABASE_URL": a.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_HOME": str(tmp_path / "home-c"),
        "FOOTAGE_HOST": "laptop-c",
        "FOOTAGE_CLIP_MODEL": tiny_clip,
    }
    code, out, err = _cli(env, "reindex", "--all", "--json")
    assert code == 0, err
    assert "1 assets lie on storages this host does not serve" in " ".join(err.split())
    assert json.loads(out)["files"] == []
