"""The indexer's job: index one path, as a procrastinate task any worker can run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import procrastinate

from catalog import Catalog
from catalog.jobs import INDEX_QUEUE, INDEX_TASK
from indexer.embed import ClipEmbedder, EmbeddingSettings
from indexer.index import IndexOptions, IndexResult, index_file
from indexer.sampling import DEFAULT_MAX_GAP_S, SamplingOptions

logger = logging.getLogger(__name__)


class LazyEmbedder:
    """Loads the CLIP model on first use, once per process, whatever thread asks."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self._embedder: ClipEmbedder | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ClipEmbedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = ClipEmbedder(self.settings)
            return self._embedder


def register_index_task(
    app: procrastinate.App,
    catalog: Catalog,
    embedder: Callable[[], ClipEmbedder],
    on_result: Callable[[IndexResult], None] | None = None,
) -> None:
    """Make ``app``'s workers able to run index jobs against ``catalog``."""

    @app.task(
        name=INDEX_TASK,
        queue=INDEX_QUEUE,
        # Indexing is idempotent, so a retry after a lost connection is safe.
        retry=procrastinate.RetryStrategy(max_attempts=3, wait=5),
    )
    def index_job(
        path: str,
        root_id: int | None = None,
        keyframes_only: bool = False,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        kind: str = "master",
        **_ignored: Any,
    ) -> None:
        options = IndexOptions(
            sampling=SamplingOptions(max_gap_s=max_gap_s, keyframes_only=keyframes_only),
            kind=kind,
            root_id=root_id,
        )
        result = index_file(catalog, embedder(), Path(path), options)
        if result.outcome == "failed":
            logger.warning("%s", result.message)
        else:
            logger.info("%s: %s", result.outcome, path)
        if on_result is not None:
            on_result(result)
