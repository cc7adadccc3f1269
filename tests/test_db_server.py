"""``footage db server``: the catalog as a network server for a team, in one command: other
hosts connect with the URL it prints, only with its password and only from the addresses
allowed; it keeps its data across restarts and stops cleanly."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from media import Clip, write_clip
from polling import wait_for
from services import Service, catalog_env, start
from typer.testing import CliRunner

from catalog import schema
from cli.main import app

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(tmp_path: Path, folder: Path, *args: str) -> Iterator[tuple[Service, str]]:
    env = catalog_env(None, tmp_path / "server-home")
    service = start(env, tmp_path / "logs", "db", "server", str(folder), *args)
    url: list[str] = []

    def announced() -> bool:
        assert service.process.poll() is None, service.err.read_text()
        url.extend(line.split("=", 1)[1] for line in service.out.read_text().splitlines() if "DATABASE_URL=" in line)
        return bool(url)

    try:
        wait_for(announced, timeout=120, interval=0.2)
        yield service, url[0]
    finally:
        code, out, err = service.stop()
        assert code == 0, err
        assert "Stopped." in out and "database system is shut down" in err


def _refusal(port: int, user: str, password: str, dbname: str) -> str:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(
            host="127.0.0.1", port=port, user=user, password=password, dbname=dbname, connect_timeout=10
        ).close()
    return str(refused.value)


def test_a_catalog_server_in_one_command(tiny_clip: str, tmp_path: Path) -> None:
    folder, port = tmp_path / "catalog", _free_port()
    media = tmp_path / "media"
    media.mkdir()
    write_clip(media / "harbour.mp4", Clip(shots=(0.5, 0.5)))
    with _server(tmp_path, folder, "--port", str(port)) as (_, url):
        assert f"@127.0.0.1:{port}/footage" in url
        # Another host's commands, with nothing but the printed line.
        host = catalog_env(None, tmp_path / "host-a", FOOTAGE_DATABASE_URL=url, FOOTAGE_CLIP_MODEL=tiny_clip)
        indexed = runner.invoke(app, ["index", str(media)], env=host)
        assert indexed.exit_code == 0, indexed.output
        status = json.loads(runner.invoke(app, ["db", "status", "--json"], env=host).stdout)
        assert status["server_version"].startswith("18") and status["pgvector_version"].startswith("0.8")
        assert status["up_to_date"] and status["revision"] == schema.head_revision()
        assert status["row_counts"]["assets"] == 1
        password = url.split(":")[2].split("@")[0]
        said = _refusal(port, "footage", "not-it", "footage")
        assert "password authentication failed" in said
        # The administrator is reachable through the server's own socket only.
        said = _refusal(port, "postgres", password, "postgres")
        assert "no pg_hba.conf entry" in said
    secret = folder.with_name("catalog.footage-password")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text().strip() == password
    # Started again: the same data, the same password.
    with _server(tmp_path, folder, "--port", str(port)) as (_, again):
        assert again == url
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            assert conn.execute("SELECT count(*) FROM assets").fetchone() == (1,)


def test_only_the_allowed_addresses_connect(tmp_path: Path) -> None:
    folder, port = tmp_path / "catalog", _free_port()
    # Listening on loopback but allowing only another network: the right password from here is refused.
    with _server(tmp_path, folder, "--port", str(port), "--allow", "10.213.78.0/24") as (_, url):
        password = url.split(":")[2].split("@")[0]
        said = _refusal(port, "footage", password, "footage")
        assert 'no pg_hba.conf entry for host "127.0.0.1"' in said
    lines = [line for line in (folder / "pg_hba.conf").read_text().splitlines() if line.startswith("host")]
    assert lines == ["host footage footage 10.213.78.0/24 scram-sha-256"]
    # Listening on the network needs the allowed addresses said out loud.
    refused = runner.invoke(app, ["db", "server", str(tmp_path / "other"), "--listen", "0.0.0.0"], env=os.environ)
    assert refused.exit_code == 2 and "needs --allow" in refused.output
    assert not (tmp_path / "other").exists()
