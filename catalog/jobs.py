"""The job queue (procrastinate) on the catalog's database: apps, task names, deferring.

Packages register their task functions under these names; anyone can defer a
job by name without importing the package that runs it (the upscaler asks
for a finished rendition to be indexed this way).
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate
from procrastinate import exceptions as procrastinate_errors

from catalog.database import Catalog

INDEX_QUEUE = "index"
RENDER_QUEUE = "render"
QUEUES = (INDEX_QUEUE, RENDER_QUEUE)

INDEX_TASK = "footage.index_file"
RENDER_TASK = "footage.render"
RETRY_STALLED_TASK = "footage.retry_stalled_jobs"

# A worker that has not sent a heartbeat for this long is taken as dead and
# its jobs are handed to others.
STALLED_WORKER_TIMEOUT_S = 60.0

logger = logging.getLogger(__name__)


def job_app(catalog: Catalog, *, asynchronous: bool = True) -> procrastinate.App:
    """A procrastinate app on the catalog's database.

    Workers need the asynchronous connector; code that only defers jobs from
    plain threads uses the synchronous one.
    """
    if asynchronous:
        connector: Any = procrastinate.PsycopgConnector(conninfo=catalog.conninfo)
    else:
        connector = procrastinate.SyncPsycopgConnector(conninfo=catalog.conninfo)
    return procrastinate.App(connector=connector)


def defer_index(app: procrastinate.App, path: str, *, root_id: int | None = None, **options: Any) -> int | None:
    """Queue indexing of ``path``; ``None`` when a job for it is already waiting."""
    try:
        return app.configure_task(
            INDEX_TASK, queue=INDEX_QUEUE, queueing_lock=f"index:{path}", lock=f"index:{path}"
        ).defer(path=path, root_id=root_id, **options)
    except procrastinate_errors.AlreadyEnqueued:
        return None


def register_maintenance(app: procrastinate.App) -> None:
    """Periodic upkeep every worker runs: jobs of dead workers go back in the queue."""

    @app.periodic(cron="* * * * *", periodic_id="retry-stalled")
    @app.task(name=RETRY_STALLED_TASK, queueing_lock=RETRY_STALLED_TASK, pass_context=True)
    async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_WORKER_TIMEOUT_S):
            logger.warning("retrying job %s of a worker that stopped responding", job.id)
            await manager.retry_job(job)
