"""The job queue (procrastinate) on the catalog's database: apps, task names, deferring.

Packages register their task functions under these names; anyone can defer a
job by name without importing the package that runs it (the upscaler asks
for a finished rendition to be indexed this way).
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate
import psycopg
import sqlalchemy as sa
from procrastinate import exceptions as procrastinate_errors

from catalog.database import Catalog
from catalog.tables import Storage

# Kinds of work a process takes (`-q`). Each job goes on its kind's queue for the storage its
# files are on (``index@nas``), so a worker that does not serve a storage never takes its jobs;
# work on no storage (the orphan check) stays on the bare kind's queue.
INDEX_QUEUE = "index"
RENDER_QUEUE = "render"
QUEUES = (INDEX_QUEUE, RENDER_QUEUE)


def storage_queue(kind: str, storage: Storage) -> str:
    return f"{kind}@{storage.name}"


def index_work(asset_kind: str) -> str:
    """Who indexes a file: masters go to indexers, a rendition's file to whoever renders (render
    hosts often run with `-q render` only, and they mount the renditions storage)."""
    return RENDER_QUEUE if asset_kind == "rendition" else INDEX_QUEUE


def served_queues(kinds: list[str], served: list[Storage]) -> list[str]:
    """The queues a worker taking ``kinds`` of work listens to, given the storages it serves."""
    return [*kinds, *(storage_queue(kind, s) for kind in kinds for s in served)]


def is_index_queue(queue: str) -> bool:
    return queue == INDEX_QUEUE or queue.startswith(f"{INDEX_QUEUE}@")


INDEX_TASK = "footage.index_file"
RENDER_TASK = "footage.render"
PROXY_TASK = "footage.proxy"

# A worker that has not sent a heartbeat for this long is taken as dead and
# its jobs are handed to others.
STALLED_WORKER_TIMEOUT_S = 60.0
# Every worker beats this often, whatever its own stall timeout: a worker started with
# the shortest one (1 s) must never take another, configured otherwise, for dead.
HEARTBEAT_S = 0.5

logger = logging.getLogger(__name__)

_POOL_TIMEOUT_S = 5.0


def job_app(catalog: Catalog, *, asynchronous: bool = True) -> procrastinate.App:
    """A procrastinate app on the catalog's database.

    Workers need the asynchronous connector; code that only defers jobs from
    plain threads uses the synchronous one.
    """
    # A pool waits this long for a connection (psycopg_pool's default is 30 s): when the
    # database is gone a worker's wind-down would sit out the full wait on each write.
    if asynchronous:
        connector: Any = procrastinate.PsycopgConnector(conninfo=catalog.conninfo, timeout=_POOL_TIMEOUT_S)
    else:
        connector = procrastinate.SyncPsycopgConnector(conninfo=catalog.conninfo, timeout=_POOL_TIMEOUT_S)
    return procrastinate.App(connector=connector)


def defer_index(
    app: procrastinate.App,
    storage: Storage,
    rel_path: str,
    *,
    root_id: int | None = None,
    in_s: float | None = None,
    work: str = INDEX_QUEUE,
    **options: Any,
) -> int | None:
    """Queue indexing of the file ``rel_path`` on ``storage`` (in ``in_s`` seconds, or now) for
    workers taking ``work`` (a kind of queue) there; ``None`` when a job for it is already waiting."""
    return _defer_once(
        app,
        INDEX_TASK,
        storage_queue(work, storage),
        f"index:{storage.id}:{rel_path}",
        in_s,
        storage_id=storage.id,
        rel_path=rel_path,
        root_id=root_id,
        **options,
    )


def defer_render(app: procrastinate.App, rendition_id: int, master_storage: Storage) -> int | None:
    """Queue the render of a recorded rendition for workers serving its master's storage;
    ``None`` when it is already waiting."""
    queue = storage_queue(RENDER_QUEUE, master_storage)
    return _defer_once(app, RENDER_TASK, queue, f"render:{rendition_id}", rendition_id=rendition_id)


def defer_proxy(app: procrastinate.App, proxy_id: int, source_storage: Storage) -> int | None:
    """Queue the making of a recorded proxy for render workers serving its source's storage (they
    serve the renditions storage it is written to); ``None`` when it is already waiting."""
    queue = storage_queue(RENDER_QUEUE, source_storage)
    return _defer_once(app, PROXY_TASK, queue, f"proxy:{proxy_id}", proxy_id=proxy_id)


def _defer_once(
    app: procrastinate.App, task: str, queue: str, key: str, in_s: float | None = None, **arguments: Any
) -> int | None:
    """Defer ``task`` unless a job with ``key`` is waiting (``None`` then); ``key`` also keeps two
    such jobs from running at once."""
    try:
        return app.configure_task(
            task,
            queue=queue,
            queueing_lock=key,
            lock=key,
            schedule_in={"seconds": in_s} if in_s is not None else None,
        ).defer(**arguments)
    except procrastinate_errors.AlreadyEnqueued:
        return None


def cancel_job(app: procrastinate.App, job_id: int) -> bool:
    """Cancel a queued job, or ask a running one to abort; False if it had already ended."""
    return bool(app.job_manager.cancel_job_by_id(job_id, abort=True))


def job_status(catalog: Catalog, job_id: int) -> str | None:
    """A job's procrastinate status (todo, doing, succeeded, failed, cancelled, aborted), None if unknown."""
    with catalog.session() as session:
        found = session.execute(
            sa.text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one_or_none()
    return str(found) if found is not None else None


def take_over(app: procrastinate.App, job_id: int) -> bool:
    """Withdraw a job that no worker has started, so this process can do its work itself.

    The job is deleted rather than cancelled: its work is not cancelled, it is done
    here, and a job left behind would read as cancelled when it is done. False when
    a worker has taken it already (it is then that worker's).
    """
    return bool(app.job_manager.cancel_job_by_id(job_id, abort=False, delete_job=True))


def live_workers(catalog: Catalog, within_s: float = STALLED_WORKER_TIMEOUT_S) -> int:
    """Workers that sent a heartbeat in the last ``within_s`` seconds."""
    with catalog.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM procrastinate_workers"
                    " WHERE last_heartbeat > now() - make_interval(secs => :s)"
                ),
                {"s": within_s},
            ).scalar_one()
        )


# What losing the database looks like, from procrastinate, psycopg and SQLAlchemy.
DATABASE_LOST: tuple[type[BaseException], ...] = (
    procrastinate_errors.ConnectorException,
    psycopg.OperationalError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
)
