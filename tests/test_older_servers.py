"""Catalogs on older servers: the embedded catalog an older footage made (the ``pgserver``
wheel: PostgreSQL 16, pgvector 0.6.2) is upgraded on first use with nothing lost, and
a configured server with that pgvector keeps working with what it supports."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from media import Clip, write_clip
from polling import wait_for
from typer.testing import CliRunner

from catalog import DatabaseUnavailableError, normalise_url, start_embedded, stop_embedded
from catalog.embedded import DATABASE_NAME, server_version
from cli.main import app

runner = CliRunner()


@contextmanager
def _old_server(pgdata: Path, crash: bool = False) -> Iterator[str]:
    """A PostgreSQL 16 + pgvector 0.6.2 server of the old wheel in ``pgdata``; yields its admin
    URI, then stops it (``crash``: kills it, leaving the cluster as a power cut would)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    try:
        yield server.get_uri()
    finally:
        if crash:
            import psutil

            postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
            postmaster.kill()
            wait_for(lambda: not postmaster.is_running() or postmaster.status() == psutil.STATUS_ZOMBIE)
            wait_for(lambda: not psutil.pid_exists(postmaster.pid), timeout=60)  # reaped
        server.cleanup()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        if (pgdata / "postmaster.pid").exists() and not crash:
            owner = pgdata.owner()
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=owner if owner != "root" else None)


def _catalog_on(admin_uri: str) -> str:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return normalise_url(admin_uri).set(database=DATABASE_NAME).render_as_string(hide_password=False)


def _json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _found(env: dict[str, str]) -> list[tuple[str, float]]:
    hits = _json(env, "search", "a red circle", "--moments", "3")["results"]
    return [(moment["path"], moment["frame_s"]) for hit in hits for moment in hit["moments"]]


@pytest.fixture
def library(tmp_path: Path) -> list[Path]:
    media = tmp_path / "media"
    media.mkdir()
    return [
        write_clip(media / "a.mp4", Clip(shots=(1.0, 1.0))),
        write_clip(media / "b.mov", Clip(width=320, height=136, shots=(1.0, 1.0, 1.0))),
    ]


def test_a_configured_server_with_an_old_pgvector_keeps_working(
    tmp_path: Path, tiny_clip: str, library: list[Path]
) -> None:
    with _old_server(tmp_path / "old" / "pgdata") as admin_uri:
        env = {"FOOTAGE_DATABASE_URL": _catalog_on(admin_uri), "FOOTAGE_CLIP_MODEL": tiny_clip}
        assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
        status = _json(env, "db", "status")
        assert status["pgvector_version"] == "0.6.2"
        assert status["vector_storage"] == "vector"  # halfvec needs 0.7
        assert any("iterative index scans" in lack for lack in status["lacks"])
        assert any("halfvec storage" in lack and "ALTER EXTENSION" in lack for lack in status["lacks"])
        indexed = runner.invoke(app, ["index", *map(str, library)], env=env)
        assert indexed.exit_code == 0, indexed.output
        found = _found(env)
        assert {Path(path).name for path, _ in found} == {"a.mp4", "b.mov"}


@pytest.mark.parametrize("crashed", [False, True], ids=["stopped", "crashed"])
def test_an_old_embedded_catalog_is_upgraded_on_first_use(
    tmp_path: Path, tiny_clip: str, library: list[Path], crashed: bool
) -> None:
    home = tmp_path / "home"
    pgdata = home / "pgdata"
    home.mkdir()
    with _old_server(pgdata, crash=crashed) as admin_uri:  # what an older footage left in FOOTAGE_HOME
        old = {"FOOTAGE_DATABASE_URL": _catalog_on(admin_uri), "FOOTAGE_CLIP_MODEL": tiny_clip}
        assert runner.invoke(app, ["db", "upgrade"], env=old).exit_code == 0
        assert runner.invoke(app, ["index", *map(str, library)], env=old).exit_code == 0
        before = _found(old)
        rows_before = _json(old, "db", "status")["row_counts"]
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"

    new = {"FOOTAGE_HOME": str(home), "FOOTAGE_CLIP_MODEL": tiny_clip}
    try:
        after = _found(new)  # the first command upgrades
        status = _json(new, "db", "status")
        said = runner.invoke(app, ["db", "status"], env=new)
    finally:
        stop_embedded(pgdata)
    assert (pgdata / "PG_VERSION").read_text().strip() == str(server_version())
    assert status["server_version"].startswith(str(server_version()))
    assert status["pgvector_version"].startswith("0.8")
    assert status["vector_storage"] == "halfvec" and status["lacks"] == []
    assert status["row_counts"] == rows_before  # nothing lost
    assert after == before  # the same moments, in the same order
    assert (home / "pgdata.old" / "PG_VERSION").exists()  # kept until the user removes it
    # ...and status says so, with its size, since it is a whole copy of the catalog.
    kept = status["old_data"]
    assert (kept["path"], kept["made_by"]) == (str(home / "pgdata.old"), 16) and kept["size_bytes"] > 10**6
    assert said.exit_code == 0 and "pgdata.old" in said.stdout and "remove it once this one works" in said.stdout


def test_an_upgrade_that_cannot_run_says_what_to_do(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    with _old_server(pgdata):
        pass  # made, then stopped
    (tmp_path / "pgdata.old").mkdir()  # a previous upgrade's leftovers in the way
    with pytest.raises(
        DatabaseUnavailableError, match=r"PostgreSQL 16 .*pgdata.old is in the way\): move pgdata.old away"
    ):
        start_embedded(pgdata)
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"  # untouched
