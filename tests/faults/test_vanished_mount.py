"""Fault injection: a watched folder on a mount (a tmpfs "NAS" bind-mounted where footage
watches it) unmounted under ``footage watch``, then mounted again.

The promise: while it is away the folder is shown offline and none of its
files is marked missing; when it is back nothing is indexed twice and files
that arrive afterwards are noticed as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def share(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the share's own folder, where it is mounted for footage); both unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (CI runs as root)")
    nas, root = tmp_path / "nas", tmp_path / "mnt" / "footage"
    nas.mkdir()
    root.mkdir(parents=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(nas))
        _mount("--bind", str(nas), str(root))
    except subprocess.CalledProcessError as exc:
        subprocess.run(["umount", "-l", str(nas)], check=False, capture_output=True)
        pytest.skip(f"cannot mount here: {exc.stderr.decode().strip()}")
    try:
        yield nas, root
    finally:
        for mounted in (root, nas):
            subprocess.run(["umount", "-l", str(mounted)], check=False, capture_output=True)


def _assets(catalog: Catalog) -> dict[str, str]:
    with catalog.session() as s:
        return {Path(p).name: status for p, status in s.execute(sa.text("SELECT rel_path, status FROM assets"))}


def _indexings(catalog: Catalog) -> dict[str, tuple[object, int]]:
    """Per file: when it was last indexed, and how many moment views it has."""
    with catalog.session() as s:
        rows = s.execute(
            sa.text(
                "SELECT a.rel_path, a.indexed_at, (SELECT count(*) FROM segments m WHERE m.asset_id = a.id)"
                " FROM assets a"
            )
        )
        return {Path(path).name: (indexed_at, views) for path, indexed_at, views in rows}


def _online(catalog: Catalog) -> bool:
    with catalog.session() as s:
        return bool(s.scalar(sa.text("SELECT offline_since IS NULL FROM roots")))


def test_an_unmounted_share_is_offline_not_missing(
    catalog: Catalog, tiny_clip: str, tmp_path: Path, share: tuple[Path, Path]
) -> None:
    nas, root = share
    for name in ("a.mp4", "b.mp4"):
        write_clip(nas / name, Clip(width=160, height=90, shots=(1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    watch = start(env, tmp_path / "logs", "watch", str(root), "--settle", "0.3", "--rescan", "1")
    try:
        wait_for(lambda: _assets(catalog) == {"a.mp4": "indexed", "b.mp4": "indexed"}, timeout=120, interval=0.2)
        before = _indexings(catalog)
        subprocess.run(["umount", str(root)], check=True)  # the share goes away; its mount point stays, empty
        wait_for(lambda: not _online(catalog), timeout=30, interval=0.2)
        time.sleep(3)  # rescans (every second) and the unmount's events have had their chance
        while_away = _assets(catalog)
        shown = json.loads(CliRunner().invoke(app, ["db", "status", "--json"], env=env).stdout)["roots"]
        _mount("--bind", str(nas), str(root))
        wait_for(lambda: _online(catalog), timeout=30, interval=0.2)
        write_clip(nas / "c.mp4", Clip(width=160, height=90, shots=(1.0,)))  # arrives after the remount
        wait_for(lambda: _assets(catalog).get("c.mp4") == "indexed", timeout=120, interval=0.2)
        time.sleep(2)  # the catch-up scan after the remount has run
    finally:
        code, _, err = watch.stop()
    assert while_away == {"a.mp4": "indexed", "b.mp4": "indexed"}  # nothing missing while unmounted
    assert [(r["path"], r["online"]) for r in shown] == [(str(root), False)] and shown[0]["offline_since"]
    assert _assets(catalog) == {"a.mp4": "indexed", "b.mp4": "indexed", "c.mp4": "indexed"}
    after = _indexings(catalog)
    assert {name: after[name] for name in before} == before  # nothing indexed again, no moment written twice
    assert code == 0 and "Traceback" not in err, err
    said = " ".join(err.split())  # the console wraps lines where a path's length puts them
    assert "offline" in said and "is back" in said, err
    print("faults: watched share unmounted under watch and mounted again: missing=0 indexed twice=0 offline shown")
