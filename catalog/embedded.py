"""The embedded PostgreSQL + pgvector server (the ``pgserver`` wheel).

The server is started once in the data directory and left running after the
process exits, so later commands reuse it instead of paying start-up again;
``stop_embedded`` shuts it down.
"""

from __future__ import annotations

import fcntl
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import DatabaseUnavailableError

DATABASE_NAME = "footage"


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: its admin URI, postmaster pid, and whether this call started it."""

    pgdata: Path
    admin_uri: str
    pid: int
    started: bool


def _pgserver():  # type: ignore[no-untyped-def]
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver
    # copes by falling back to /tmp, so the warning is noise for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.utils import PostmasterInfo

    return pgserver, PostmasterInfo


def start_embedded(pgdata: Path) -> EmbeddedServer:
    """Start (or reuse) the embedded server in ``pgdata`` and return how to reach it."""
    pgserver, postmaster_info = _pgserver()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _start_lock(pgdata):
            return _start(pgserver, postmaster_info, pgdata)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        log = pgdata / "log"
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} (server log: {log})"
        ) from exc


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
    return EmbeddedServer(
        pgdata=pgdata,
        admin_uri=server.get_uri(),
        pid=int(server.get_pid()),
        started=not already_running,
    )


def stop_embedded(pgdata: Path) -> bool:
    """Stop the embedded server in ``pgdata``; returns False when none was running."""
    _, postmaster_info = _pgserver()
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import, by name

    if not pgdata.exists():
        return False
    info = postmaster_info.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    owner = pgdata.owner()
    user = owner if owner != "root" else None
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    return True
