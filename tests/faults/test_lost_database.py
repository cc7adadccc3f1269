"""Fault injection: ``kill -9`` of the embedded postmaster while the watch service runs.

The promise: the service waits for its database, starts the embedded server
again (it is footage's own), and files noticed meanwhile are indexed afterwards;
it never prints a traceback.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start

from catalog import Asset, CatalogSettings, open_catalog, stop_embedded


def _postmaster(pgdata: Path) -> int | None:
    """The running postmaster's pid, from its pid file, or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _indexed(home: Path) -> set[str]:
    with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.session() as s:
        return {Path(p).name for p in s.scalars(sa.select(Asset.path).where(Asset.status == "indexed"))}


def _indexing(home: Path) -> set[str]:
    """Files whose index job is running now."""
    with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.session() as s:
        rows = s.execute(
            sa.text("SELECT args->>'path' FROM procrastinate_jobs WHERE status = 'doing' AND task_name LIKE '%index%'")
        ).scalars()
        return {Path(p).name for p in rows}


def test_the_service_survives_its_database(tiny_clip: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home, root = tmp_path / "home", tmp_path / "incoming"
    root.mkdir()
    monkeypatch.delenv("FOOTAGE_DATABASE_URL", raising=False)
    env = catalog_env(None, home, FOOTAGE_CLIP_MODEL=tiny_clip)
    write_clip(root / "before.mp4", Clip())
    service = start(env, tmp_path / "logs", "watch", str(root), "--settle", "0.3", "--stall-timeout", "2")
    pgdata = home / "pgdata"
    failure: AssertionError | None = None
    try:
        wait_for(lambda: _postmaster(pgdata) is not None and "before.mp4" in _indexed(home), timeout=120, interval=0.5)
        # The kill lands while a file is being indexed.
        write_clip(root / "during.mp4", Clip(width=320, height=180, shots=(3.0, 3.0, 3.0)))
        wait_for(lambda: _indexing(home) == {"during.mp4"}, timeout=60, interval=0.05)
        killed = _postmaster(pgdata)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: _postmaster(pgdata) != killed, timeout=30, interval=0.1)  # it is gone
        down = time.time()
        write_clip(root / "while-down.mp4", Clip(shots=(0.5, 0.5)))  # noticed while there is no database
        # The service brings its server back by itself (the test only reads the pid file until then).
        wait_for(lambda: _postmaster(pgdata) not in (None, killed), timeout=60, interval=0.2)
        revived_after = time.time() - down
        wait_for(lambda: _indexed(home) == {"before.mp4", "during.mp4", "while-down.mp4"}, timeout=120, interval=0.5)
    except AssertionError as exc:
        failure = exc
    finally:
        code, out, err = service.stop()
        stop_embedded(pgdata)
    assert failure is None, f"{failure}; the service said:\n{err}"
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "Stopped." in out
    print(
        "faults: kill -9 postmaster mid-index under watch: runs=1 faults injected=1 files=3 "
        f"revived in {revived_after:.1f}s lost: 0"
    )
