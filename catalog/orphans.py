"""Work the catalog waits for that no job will do, found every few minutes and queued again.

A rendition queued or running with no job alive for it and no live lease, or a
file pending with no index job waiting or running, would otherwise read as
"queued", "running" or "indexing" for good (a job lost to a crash between two
writes, a job that failed on a host that could not read the file).
"""

from __future__ import annotations

import logging

import procrastinate
import sqlalchemy as sa

from catalog.database import Catalog
from catalog.jobs import INDEX_QUEUE, INDEX_TASK, RENDER_TASK, defer_index, defer_render, index_work
from catalog.tables import Rendition

logger = logging.getLogger(__name__)

ORPHAN_TASK = "footage.requeue_orphans"
ORPHAN_CRON = "*/5 * * * *"
# Work younger than this may have its job on the way (a request records, then queues).
_SETTLING = "interval '1 minute'"

_RENDITIONS = sa.text(
    f"""
    SELECT r.id, m.storage_id FROM renditions r JOIN assets m ON m.id = r.master_id
    WHERE r.status IN ('queued', 'running')
      AND r.requested_at < now() - {_SETTLING}
      AND (r.lease_expires_at IS NULL OR r.lease_expires_at < now())
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
        WHERE j.task_name = '{RENDER_TASK}' AND j.status IN ('todo', 'doing')
          AND j.args->>'rendition_id' = r.id::text)
    ORDER BY r.id
    """
)
_FILES = sa.text(
    f"""
    SELECT a.storage_id, a.rel_path, a.root_id, a.kind FROM assets a
    WHERE a.status = 'pending'
      AND a.updated_at < now() - {_SETTLING}
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
        WHERE j.task_name = '{INDEX_TASK}' AND j.status IN ('todo', 'doing')
          AND j.args->>'storage_id' = a.storage_id::text AND j.args->>'rel_path' = a.rel_path)
    ORDER BY a.id
    """
)


def requeue_orphans(catalog: Catalog, app: procrastinate.App) -> tuple[int, int]:
    """Queue again every orphaned rendition and pending file; returns (renditions, files) queued."""
    with catalog.session() as session:
        renditions = list(session.execute(_RENDITIONS).all())
        files = list(session.execute(_FILES).all())
    mounts = catalog.mounts
    for rendition_id, master_storage in renditions:
        job_id = defer_render(app, rendition_id, mounts.storage(master_storage))
        if job_id is not None:
            with catalog.session() as session:
                session.execute(sa.update(Rendition).where(Rendition.id == rendition_id).values(job_id=job_id))
        logger.warning("rendition %s had no job that would finish it: queued again as job %s", rendition_id, job_id)
    for storage_id, rel_path, root_id, kind in files:
        work = index_work(kind)
        defer_index(app, mounts.storage(storage_id), rel_path, root_id=root_id, kind=kind, work=work)
        logger.warning("%s was pending with no index job: queued again", mounts.shown(storage_id, rel_path))
    return len(renditions), len(files)


def register_orphan_check(app: procrastinate.App, catalog: Catalog) -> None:
    """Every five minutes, one worker (whichever serves the index queue first) looks for orphans."""

    @app.periodic(cron=ORPHAN_CRON)
    @app.task(name=ORPHAN_TASK, queue=INDEX_QUEUE, queueing_lock=ORPHAN_TASK)
    def orphan_check(timestamp: int) -> None:
        requeue_orphans(catalog, app)
