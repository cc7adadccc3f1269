"""Fault injection: ``kill -9`` of the embedded postmaster mid-index under ``footage watch``
and mid-render under ``footage worker``; a configured server that stays away.

The promise: the service waits for its database, starts the embedded server
again (it is footage's own), files noticed meanwhile are indexed afterwards and
the render in flight ends done; it never prints a traceback. A server that is
not footage's own is waited for, then given up on with one error.
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


def _kill_postmaster(pgdata: Path) -> int:
    """``kill -9`` the running postmaster; returns its pid once it is gone."""
    killed = _postmaster(pgdata)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: _postmaster(pgdata) != killed, timeout=30, interval=0.1)
    return killed


def _revived(pgdata: Path, killed: int) -> None:
    """Wait for the service to start the server again; only the pid file is read until then,
    so nothing but the service can have started it."""
    wait_for(lambda: _postmaster(pgdata) not in (None, killed), timeout=60, interval=0.2)


def _indexed(home: Path) -> set[str]:
    with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.session() as s:
        return {Path(p).name for p in s.scalars(sa.select(Asset.rel_path).where(Asset.status == "indexed"))}


def _indexing(home: Path) -> set[str]:
    """Files whose index job is running now."""
    with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.session() as s:
        rows = s.execute(
            sa.text(
                "SELECT args->>'rel_path' FROM procrastinate_jobs WHERE status = 'doing' AND task_name LIKE '%index%'"
            )
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
        killed = _kill_postmaster(pgdata)
        down = time.time()
        write_clip(root / "while-down.mp4", Clip(shots=(0.5, 0.5)))  # noticed while there is no database
        _revived(pgdata, killed)
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


def test_a_render_survives_its_database(tiny_clip: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from tiny_models import write_tiny_compact
    from typer.testing import CliRunner

    from catalog.media import content_hash
    from cli.main import app

    home = tmp_path / "home"
    monkeypatch.delenv("FOOTAGE_DATABASE_URL", raising=False)
    env = catalog_env(None, home, FOOTAGE_CLIP_MODEL=tiny_clip)
    master = write_clip(tmp_path / "long.mov", Clip(width=320, height=180, shots=(5.0, 5.0, 5.0)))
    before = content_hash(master)
    model = write_tiny_compact(tmp_path / "tiny.pth")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(master)], env=env).exit_code == 0
    # Frame by frame: the fault is the database's, not the temporal stage's (half the render time).
    queued = runner.invoke(
        app, ["upscale", str(master), "--to", "2x", "-m", str(model), "--temporal", "off", "--json"], env=env
    )
    assert queued.exit_code == 0, queued.output
    rendition_id, output = json.loads(queued.stdout)["rendition_id"], Path(json.loads(queued.stdout)["output"])

    def rendition() -> tuple[str, int]:
        with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.session() as s:
            row = s.execute(
                sa.text("SELECT status, frames_done FROM renditions WHERE id = :id"), {"id": rendition_id}
            ).one()
        return row.status, row.frames_done

    pgdata = home / "pgdata"
    worker = start(env, tmp_path / "logs", "worker", "--stall-timeout", "2")
    failure: AssertionError | None = None
    final = at_kill = None
    try:
        wait_for(lambda: rendition()[1] > 0, timeout=120, interval=0.2)
        at_kill = rendition()
        _revived(pgdata, _kill_postmaster(pgdata))
        wait_for(lambda: rendition()[0] in ("done", "failed"), timeout=240, interval=0.5)
        final = rendition()
    except AssertionError as exc:
        failure = exc
    finally:
        code, _, err = worker.stop()
        stop_embedded(pgdata)
    assert failure is None, f"{failure}; the worker said:\n{err}"
    assert at_kill is not None and at_kill[0] == "running", at_kill  # the kill landed mid-render
    assert code == 0, err
    assert "Traceback" not in err, err
    assert final is not None and final[0] == "done", final
    assert output.exists() and not list(output.parent.glob(".*partial*"))
    assert content_hash(master) == before  # the master, byte for byte
    print("faults: kill -9 postmaster mid-render under worker: runs=1 faults injected=1 renditions=1 lost: 0")


def test_a_worker_gives_up_on_a_database_that_stays_away(tmp_path: Path) -> None:
    """A configured server is its administrator's to restart: after its patience the worker
    stops with ``DatabaseUnavailableError`` (the CLI's one ``Error:`` line, exit 3)."""
    import threading

    import pytest

    from catalog import Catalog, DatabaseUnavailableError
    from catalog.jobs import job_app
    from catalog.workers import run_worker

    pgdata = tmp_path / "home" / "pgdata"
    with open_catalog(CatalogSettings(home=tmp_path / "home", database_url=None)) as ours:
        configured = Catalog(engine=ours.engine, embedded=None)  # as if from FOOTAGE_DATABASE_URL
        threading.Timer(3.0, stop_embedded, args=(pgdata,)).start()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="unreachable for 4 s"):
            run_worker(job_app(configured), queues=None, catalog=configured, patience_s=4)
        gave_up_after = time.monotonic() - started
    assert _postmaster(pgdata) is None  # nobody started it again
    assert gave_up_after < 3 + 4 + 15, gave_up_after  # not held up by the pools waiting for connections
    print(f"faults: configured server stopped under worker: gave up after {gave_up_after:.1f}s (patience 4 s)")
