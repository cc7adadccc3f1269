"""The proxy job: make a recorded proxy where its source and the renditions storage are served.

Asked for by the indexer after a version is indexed (``catalog.proxies.ask_if_wanted``) or by
``footage proxy``; run by render workers (the queue ``render@<source's storage>``), or in the
asking process. Done once: a job run again after it succeeded finds the proxy done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import procrastinate
from procrastinate import exceptions as procrastinate_errors

from catalog import Catalog, FootageError, UnsafePathError
from catalog import proxies as records
from catalog.jobs import PROXY_TASK, RENDER_QUEUE
from catalog.renditions import ensure_inside, renditions_storage
from catalog.storages import StorageUnavailableError, mounts_of
from upscaler.errors import RenderError
from upscaler.proxy import ProxyResult, make_proxy

logger = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 1.0
# A share that went away, a full disk, a cut connection: tried again a little later.
RETRYABLE: tuple[type[Exception], ...] = (StorageUnavailableError, OSError)


def register_proxy_task(app: procrastinate.App, catalog: Catalog, renditions_dir: Path | None) -> None:
    """Make ``app``'s workers able to make proxies."""

    @app.task(
        name=PROXY_TASK,
        queue=RENDER_QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=3, wait=10, retry_exceptions=RETRYABLE),
    )
    def proxy_job(context: procrastinate.JobContext, proxy_id: int) -> None:
        cancel = threading.Event()
        made = make_recorded_proxy(
            catalog, renditions_dir, proxy_id, cancel=cancel, should_abort=context.should_abort, in_job=True
        )
        if cancel.is_set():
            raise procrastinate_errors.JobAborted()
        if made is not None:
            logger.info("proxy %s done: %s", proxy_id, made.path, extra={"proxy_id": proxy_id})


def make_recorded_proxy(
    catalog: Catalog,
    renditions_dir: Path | None,
    proxy_id: int,
    *,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    should_abort: Callable[[], bool] | None = None,
    in_job: bool = False,
) -> ProxyResult | None:
    """Make a recorded proxy here and record the outcome; None when it was made already or
    failed (recorded). ``in_job``: a failure that may pass (a share away, a full disk) leaves it
    queued for the job's retry and is raised; in a command it is recorded as failed, so
    ``footage proxy --missing`` asks for it again."""
    with catalog.session() as session:
        source = records.start(session, proxy_id)
        if source is None:
            return None
        made_from = {
            "asset_id": source.id,
            "kind": source.kind,
            "name": Path(source.rel_path).name,
            "content_hash": source.content_hash,
        }
        name = records.proxy_name(source)
        mounts = mounts_of(session)
        try:
            source_file = mounts.file(source)
            storage_id = renditions_storage(session, renditions_dir).id
            folder = mounts.path(storage_id, records.PROXY_FOLDER)
            unreachable = None
        except StorageUnavailableError as exc:
            unreachable = exc
    if unreachable is not None:
        # Not this host's to do now: in a job it waits for the retry, in a command it is said.
        with catalog.session() as session:
            if in_job:
                records.requeue(session, proxy_id)
            else:
                records.fail(session, proxy_id, str(unreachable))
        raise unreachable
    try:
        folder.mkdir(exist_ok=True)
        output = ensure_inside(folder, folder / Path(name).name)
        if output == source_file.resolve():
            raise UnsafePathError(f"refusing to write a proxy over its source {source_file}")
        result = make_proxy(
            source_file,
            output,
            made_from,
            progress=_recorder(catalog, proxy_id, on_progress, cancel, should_abort),
            cancel=cancel,
        )
    except Exception as exc:
        with catalog.session() as session:
            if in_job and isinstance(exc, RETRYABLE) and not (cancel is not None and cancel.is_set()):
                records.requeue(session, proxy_id)
            else:
                records.fail(
                    session, proxy_id, str(exc) if isinstance(exc, FootageError) else f"{type(exc).__name__}: {exc}"
                )
        if isinstance(exc, RenderError):
            logger.warning("proxy %s: %s", proxy_id, exc, extra={"proxy_id": proxy_id})
            return None
        raise
    facts = {
        "width": result.width,
        "height": result.height,
        "video_codec": "h264",
        "size_bytes": result.size_bytes,
        "duration_s": result.duration_s,
        "provenance": result.provenance,
    }
    with catalog.session() as session:
        records.finish(session, proxy_id, storage_id, name, facts)
    return result


def _recorder(
    catalog: Catalog,
    proxy_id: int,
    on_progress: Callable[[float], None] | None,
    cancel: threading.Event | None,
    should_abort: Callable[[], bool] | None,
) -> Callable[[float], None]:
    last = 0.0

    def progress(fraction: float) -> None:
        nonlocal last
        if on_progress is not None:
            on_progress(fraction)
        now = time.monotonic()
        if now - last < _PROGRESS_EVERY_S:
            return
        last = now
        with catalog.session() as session:
            records.record_progress(session, proxy_id, fraction)
        if should_abort is not None and cancel is not None and should_abort():
            cancel.set()

    return progress
