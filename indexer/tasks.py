"""The indexer's job: index one path, as a procrastinate task any worker can run."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import procrastinate

from catalog import Catalog
from catalog.jobs import INDEX_QUEUE, INDEX_TASK, defer_index, index_work
from catalog.metrics import FILES_INDEXED, INDEX_REALTIME
from catalog.proxies import DEFAULT_MODE, ask_if_wanted
from catalog.storages import StorageUnavailableError
from indexer.embed import ClipEmbedder
from indexer.errors import EmbeddingModelError, UnreadableFileError
from indexer.index import IndexOptions, IndexResult, index_file, record_failure
from indexer.sampling import DEFAULT_MAX_GAP_S, SamplingOptions
from indexer.settings import EmbeddingSettings


def files_at_once() -> int:
    """How many files a worker indexes at once unless told: one per four cores.

    One file leaves most of a large machine idle: its decoding thread also makes the picture
    grid, and one thread beside it the 48x27 copies for the shot detector. Measured with
    ``bench/index_speed.py --at-once``, 8 s of 1080p H.264, when the decoding thread still
    made those copies too: on 16 cores beside an H200, 1, 2, 4 and 8 files at once indexed
    8.8, 15.7, 22.6 and 27.7x real time in all; on 2 cores two files gave 6% over one. Four
    on 16 cores takes most of the gain for half the memory of eight.
    """
    return max(1, (os.cpu_count() or 1) // 4)


# How long a CLIP model that failed to load is left alone before the next try (seconds).
_RETRY_LOAD_S = 60.0
logger = logging.getLogger(__name__)


class LazyEmbedder:
    """Loads the CLIP model on first use, once per process, whatever thread asks.

    A model that cannot be loaded is not tried again for ``_RETRY_LOAD_S``
    seconds, so a queue of files fails fast, with one warning, not one per file.
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self._embedder: ClipEmbedder | None = None
        self._failed: tuple[float, EmbeddingModelError] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ClipEmbedder:
        with self._lock:
            if self._embedder is None:
                if self._failed is not None and time.monotonic() - self._failed[0] < _RETRY_LOAD_S:
                    raise self._failed[1]
                try:
                    self._embedder = ClipEmbedder(self.settings)
                except EmbeddingModelError as exc:
                    logger.warning("%s; files wait until it loads (tried again in %.0f s)", exc, _RETRY_LOAD_S)
                    self._failed = (time.monotonic(), exc)
                    raise
                if self._failed is not None:
                    logger.info("CLIP model %s loaded", self.settings.identity)
                    self._failed = None
            return self._embedder


def register_index_task(
    app: procrastinate.App,
    catalog: Catalog,
    embedder: Callable[[], ClipEmbedder],
    on_result: Callable[[IndexResult], None] | None = None,
    proxy_mode: str = DEFAULT_MODE,
) -> None:
    """Make ``app``'s workers able to run index jobs against ``catalog``; a version indexed gets
    its proxy queued when ``proxy_mode`` wants one (catalog.proxies)."""

    @app.task(
        name=INDEX_TASK,
        queue=INDEX_QUEUE,
        # Indexing is idempotent, so a retry after a lost connection is safe.
        retry=procrastinate.RetryStrategy(max_attempts=3, wait=5),
    )
    def index_job(
        storage_id: int,
        rel_path: str,
        root_id: int | None = None,
        keyframes_only: bool = False,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        kind: str = "master",
        **_ignored: Any,
    ) -> None:
        try:
            path = catalog.mounts.path(storage_id, rel_path)
        except StorageUnavailableError as exc:
            # Only taken from a storage's queue by a worker that served it when it started: the
            # share went away since. Not the file's fault; the job is tried again (and requeued).
            raise UnreadableFileError(f"{exc} (on {socket.gethostname()})") from exc
        options = IndexOptions(
            sampling=SamplingOptions(max_gap_s=max_gap_s, keyframes_only=keyframes_only),
            kind=kind,
            root_id=root_id,
        )
        try:
            loaded = embedder()
        except EmbeddingModelError as exc:
            # The file is fine; the model is not there. Recorded as waiting and asked for again
            # a while later, it is indexed once the model loads; nothing else stops.
            record_failure(catalog, path, f"waiting for the CLIP model: {exc}", kind, root_id, status="pending")
            defer_index(
                app,
                catalog.mounts.storage(storage_id),
                rel_path,
                root_id=root_id,
                in_s=_RETRY_LOAD_S,
                keyframes_only=keyframes_only,
                max_gap_s=max_gap_s,
                kind=kind,
                work=index_work(kind),
            )
            return
        started = time.perf_counter()
        result = index_file(catalog, loaded, path, options)
        FILES_INDEXED.labels(result.outcome).inc()
        if result.outcome == "indexed" and result.media_seconds > 0:
            INDEX_REALTIME.observe(result.media_seconds / max(1e-6, time.perf_counter() - started))
        if not result.readable:
            # Another host's path, a share not mounted here, a file gone: the work was not done.
            raise UnreadableFileError(f"{result.message} (on {socket.gethostname()})")
        ids = {"asset_id": result.asset_id, "path": str(path)}
        if result.outcome == "failed":
            logger.warning("%s", result.message, extra=ids)
        else:
            logger.info("%s: %s%s", result.outcome, path, f" ({result.message})" if result.message else "", extra=ids)
        if result.outcome == "indexed" and result.asset_id is not None:
            ask_if_wanted(catalog, app, result.asset_id, proxy_mode)
        if on_result is not None:
            on_result(result)
