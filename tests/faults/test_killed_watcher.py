"""Fault injection: ``kill -9`` of the watch service at seeded moments while it indexes.

The promise: a restart loses nothing. Every file ends indexed exactly once,
no job is left running or waiting, and no moment is written twice. The short
variant (two seeds) runs always; FOOTAGE_FAULTS_LONG=1 runs eight.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import Service, catalog_env, start

from catalog import Asset, Catalog

SEEDS = range(8) if os.environ.get("FOOTAGE_FAULTS_LONG") else range(2)
FILES = 4


def _watch(env: dict[str, str], root: Path, logs: Path) -> Service:
    return start(env, logs, "watch", str(root), "--settle", "0.3", "--stall-timeout", "2")


def _jobs(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as s:
        rows = s.execute(
            sa.text(
                "SELECT status::text, count(*) FROM procrastinate_jobs"
                " WHERE task_name = 'footage.index_file' GROUP BY 1"
            )
        ).all()
    return {status: count for status, count in rows}


def _worker_started_since(catalog: Catalog, since: float) -> bool:
    """The restarted service is up: its worker has checked in (and handles SIGTERM from then on)."""
    with catalog.session() as s:
        started = s.scalar(sa.text("SELECT max(last_heartbeat) FROM procrastinate_workers"))
    return started is not None and started.timestamp() >= since


def _settled(catalog: Catalog) -> bool:
    with catalog.session() as s:
        indexed = s.scalar(sa.select(sa.func.count()).select_from(Asset).where(Asset.status == "indexed"))
    jobs = _jobs(catalog)
    return indexed == FILES and not jobs.get("doing") and not jobs.get("todo")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_killed_watcher_loses_nothing(seed: int, catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    rng = random.Random(seed)
    root = tmp_path / "incoming"
    root.mkdir()
    for i in range(FILES):
        write_clip(root / f"clip{i}.mp4", Clip(width=160, height=90, shots=(1.0, 1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    first = _watch(env, root, tmp_path / "logs")
    try:
        # The kill lands while a file is being indexed, at a seeded moment into it.
        wait_for(lambda: _jobs(catalog).get("doing", 0) > 0, timeout=120, interval=0.05)
        first_doing = _jobs(catalog).get("doing", 0)
        delay = rng.uniform(0.0, 1.0)
        time.sleep(delay)
    finally:
        first.kill()
    restarted = time.time()
    second = _watch(env, root, tmp_path / "logs")
    try:
        wait_for(lambda: _worker_started_since(catalog, restarted), timeout=120, interval=0.2)
        wait_for(lambda: _settled(catalog), timeout=180, interval=0.2)
    finally:
        code, _, err = second.stop()
    assert code == 0, err
    assert "Traceback" not in err, err
    with catalog.session() as s:
        paths = [str(catalog.mounts.file(a)) for a in s.scalars(sa.select(Asset))]
        views = s.execute(
            sa.text("SELECT asset_id, frame_s, view, count(*) FROM segments GROUP BY 1, 2, 3 HAVING count(*) > 1")
        ).all()
    assert sorted(Path(p).name for p in paths) == [f"clip{i}.mp4" for i in range(FILES)]
    assert views == []  # no moment written twice
    jobs = _jobs(catalog)
    print(
        f"faults: kill -9 watch seed={seed} delay={delay:.2f}s jobs_doing_at_kill={first_doing} "
        f"files={FILES} indexed={len(paths)} lost: 0 jobs={jobs}"
    )
