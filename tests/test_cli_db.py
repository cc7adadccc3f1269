"""The CLI as users see it: ``footage --version``, ``footage db ...``, errors, help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from catalog import schema, stop_embedded
from cli.main import app

runner = CliRunner()


def _status(env: dict[str, str]) -> dict[str, object]:
    result = runner.invoke(app, ["db", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("footage ")


def test_configured_database_is_used_and_not_migrated_behind_the_users_back(
    make_database: Callable[[], str], bundled_pgvector: str
) -> None:
    env = {"FOOTAGE_DATABASE_URL": make_database()}
    before = _status(env)
    assert before["embedded"] is False
    assert before["revision"] is None and before["up_to_date"] is False
    tables = (
        "storages",
        "worker_queues",
        "roots",
        "assets",
        "segments",
        "renditions",
        "proxies",
        "asset_words",
        "notes",
        "tags",
    )
    assert before["row_counts"] == dict.fromkeys((*tables, "selections", "selection_items"))

    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from empty to {schema.head_revision()}" in upgraded.stdout

    after = _status(env)
    assert after["up_to_date"] is True
    assert after["pgvector_version"] == bundled_pgvector
    # This host's own storage (its whole disk) is the one row a fresh catalog holds.
    assert after["row_counts"] == {**dict.fromkeys((*tables, "selections", "selection_items"), 0), "storages": 1}

    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert f"already at {schema.head_revision()}" in again.stdout


def test_status_table_for_people(catalog_url: str, bundled_pgvector: str) -> None:
    result = runner.invoke(app, ["db", "status"], env={"FOOTAGE_DATABASE_URL": catalog_url})
    assert result.exit_code == 0, result.output
    assert "pgvector" in result.stdout and bundled_pgvector in result.stdout
    assert "renditions" in result.stdout


def test_downgrade_needs_confirmation(make_database: Callable[[], str]) -> None:
    env = {"FOOTAGE_DATABASE_URL": make_database()}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    refused = runner.invoke(app, ["db", "downgrade", "base"], env=env)
    assert refused.exit_code == 2
    assert refused.stderr == "Error: downgrading drops catalog tables and their rows; add --yes to confirm\n"
    assert _status(env)["up_to_date"] is True

    done = runner.invoke(app, ["db", "downgrade", "base", "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert _status(env)["revision"] is None


def test_not_postgres_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["db", "status"], env={"FOOTAGE_DATABASE_URL": "mysql://me@db/footage"})
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: FOOTAGE_DATABASE_URL must name a PostgreSQL server (postgresql+psycopg://...), not 'mysql'\n"
    )
    assert "Traceback" not in result.output


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://nobody@/footage?host={tmp_path}"
    result = runner.invoke(app, ["db", "status"], env={"FOOTAGE_DATABASE_URL": url})
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: cannot reach the catalog database at postgresql+psycopg://nobody@/footage")
    assert result.stderr.count("\n") == 1


def test_schema_out_of_date_is_reported(make_database: Callable[[], str]) -> None:
    from catalog import CatalogSettings, SchemaOutOfDateError, open_catalog

    settings = CatalogSettings(home=Path("/nonexistent"), database_url=make_database())
    with pytest.raises(SchemaOutOfDateError, match="run `footage db upgrade`"):
        open_catalog(settings)


def test_stop_refuses_a_configured_server(catalog_url: str) -> None:
    result = runner.invoke(app, ["db", "stop"], env={"FOOTAGE_DATABASE_URL": catalog_url})
    assert result.exit_code == 2
    assert result.stderr == "Error: FOOTAGE_DATABASE_URL is set: footage does not run that server\n"


def test_embedded_server_starts_migrates_and_is_reused(tmp_path: Path, bundled_pgvector: str) -> None:
    """From fresh shells: the first call starts and migrates, the second reuses."""
    home = tmp_path / "home"
    footage = [sys.executable, "-m", "cli"]
    env = {"FOOTAGE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    try:
        first = subprocess.run(
            [*footage, "db", "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stderr
        one = json.loads(first.stdout)
        assert one["embedded"] is True and one["embedded_started"] is True
        assert one["up_to_date"] is True and one["pgvector_version"] == bundled_pgvector
        assert one["old_data"] is None  # no upgrade, nothing kept

        second = subprocess.run(
            [*footage, "db", "status", "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        two = json.loads(second.stdout)
        assert two["embedded_started"] is False
        assert two["embedded_pid"] == one["embedded_pid"]

        stopped = subprocess.run([*footage, "db", "stop"], env=env, capture_output=True, text=True)
        assert "Stopped the embedded server" in stopped.stdout
    finally:
        stop_embedded(home / "pgdata")


def test_two_commands_starting_the_embedded_server_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"FOOTAGE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "cli", "db", "status", "--json"]
    try:
        both = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
        ]
        results = [p.communicate(timeout=120) for p in both]
        assert [p.returncode for p in both] == [0, 0], [err for _, err in results]
        statuses = [json.loads(out) for out, _ in results]
        assert statuses[0]["embedded_pid"] == statuses[1]["embedded_pid"]  # one server, started once
        assert sorted(s["embedded_started"] for s in statuses) == [False, True]
        assert all(s["up_to_date"] for s in statuses)
    finally:
        stop_embedded(home / "pgdata")


def _commands(group: TyperGroup, prefix: str = "footage") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, TyperGroup):
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    commands = _commands(root)
    assert len(commands) >= 5
    for name, command in commands:
        assert command.help and len(command.help.strip()) > 20, f"{name} has no help"
        result = runner.invoke(app, [*name.split()[1:], "--help"])
        assert result.exit_code == 0, name


def test_the_embedded_catalog_is_not_downgraded_by_accident(tmp_path: Path) -> None:
    env = {"FOOTAGE_HOME": str(tmp_path / "home")}
    head = schema.head_revision()
    try:
        wiped = runner.invoke(app, ["db", "downgrade", "base", "--yes", "--for-older-footage"], env=env)
        assert wiped.exit_code == 2 and "move " in wiped.output and "pgdata away" in wiped.output
        undone = runner.invoke(app, ["db", "downgrade", "0003", "--yes"], env=env)
        assert undone.exit_code == 2 and "--for-older-footage" in undone.output
        assert _status(env)["revision"] == head  # nothing happened

        handed = runner.invoke(app, ["db", "downgrade", "0003", "--yes", "--for-older-footage"], env=env)
        assert handed.exit_code == 0, handed.output
        assert "now at 0003" in handed.stdout and f"({head}) upgrades it again" in handed.stdout
        assert _status(env)["revision"] == head  # as it said: this footage's next command upgraded it
    finally:
        stop_embedded(tmp_path / "home" / "pgdata")


def test_the_embedded_server_gets_buffers_for_its_index(tmp_path: Path) -> None:
    """PostgreSQL's default 128 MB of shared buffers hold a tenth of the HNSW index of 10^6
    moments; footage's own server gets a quarter of the machine's memory (capped)."""
    import sqlalchemy as sa

    from catalog import CatalogSettings, open_catalog
    from catalog.embedded import buffers_mb

    home = tmp_path / "home"
    try:
        with open_catalog(CatalogSettings(home=home, database_url=None)) as catalog, catalog.engine.connect() as conn:
            mb = conn.execute(
                sa.text("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
            ).scalar_one()
            wal = conn.execute(sa.text("SELECT current_setting('wal_level'), current_setting('max_wal_size')")).one()
        assert mb == buffers_mb() > 128
        assert tuple(wal) == ("minimal", "4GB")  # index builds write the index once, not twice
        assert _status({"FOOTAGE_HOME": str(home)})["embedded_pid"] == int(
            (home / "pgdata" / "postmaster.pid").read_text().split()[0]
        )  # the restarted postmaster's pid, not the first one's
    finally:
        stop_embedded(home / "pgdata")
