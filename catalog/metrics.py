"""What footage's long-running commands (serve, watch, worker) count for Prometheus, and
whether they are alive and ready.

This process's own work (frames rendered, files indexed, searches answered, stalled jobs
handed on, database reconnections) is counted where it happens, in prometheus_client's
registry. The queue (jobs by queue and state, the oldest waiting job's age) is the
catalog's, read at each scrape, so every host's endpoint reports the same queue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from catalog.database import Catalog

logger = logging.getLogger(__name__)

FRAMES_RENDERED = Counter("footage_frames_rendered", "Frames this process rendered into renditions.")
RENDER_FPS = Gauge("footage_render_fps", "Frames per second of this process's render now (0: none running).")
FILES_INDEXED = Counter("footage_files_indexed", "Files this process indexed, by outcome.", ["outcome"])
INDEX_REALTIME = Histogram(
    "footage_index_realtime_factor",
    "Media seconds indexed per wall-clock second, one observation per file indexed.",
    buckets=(0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SEARCH_SECONDS = Histogram(
    "footage_search_seconds",
    "Time to answer a search, as the service answers it.",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
STALLED_RECOVERIES = Counter("footage_stalled_jobs_recovered", "Jobs of workers that stopped responding, handed on.")
DATABASE_RECONNECTS = Counter(
    "footage_database_reconnects", "Times this process found the catalog database gone and connected again."
)

_QUEUE = sa.text(
    "SELECT queue_name, status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY queue_name, status"
)
# The age of the oldest job that could start now: deferred (its 'deferred' event) and due.
_OLDEST = sa.text(
    "SELECT j.queue_name, extract(epoch FROM now() - min(e.at)) AS age FROM procrastinate_jobs j "
    "JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred' "
    "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) GROUP BY j.queue_name"
)


class QueueCollector(Collector):
    """The catalog's queue at scrape time; nothing when the database cannot be reached (the
    readiness check says so)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily(
            "footage_jobs", "Jobs in the catalog's queue, by queue and state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "footage_oldest_waiting_job_seconds", "Age of the oldest job waiting to start, by queue.", labels=["queue"]
        )
        try:
            with self.catalog.engine.connect() as conn:
                for row in conn.execute(_QUEUE):
                    jobs.add_metric([row.queue_name, row.status], row.n)
                for row in conn.execute(_OLDEST):
                    oldest.add_metric([row.queue_name], float(row.age))
        except sa.exc.SQLAlchemyError as exc:
            logger.debug("the queue could not be read for /metrics: %s", exc)
            return []
        return [jobs, oldest]


_collecting: set[int] = set()
_collecting_lock = threading.Lock()


def collect_queue(catalog: Catalog) -> None:
    """Report ``catalog``'s queue from this process's registry (once per catalog)."""
    with _collecting_lock:
        if id(catalog) not in _collecting:
            REGISTRY.register(QueueCollector(catalog))
            _collecting.add(id(catalog))


def metrics_text() -> tuple[bytes, str]:
    """The Prometheus exposition of this process: (body, content type)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def readiness(catalog: Catalog, checks: dict[str, Callable[[], str | None]] | None = None) -> dict[str, Any]:
    """``{"ready": bool, "checks": {name: "ok" or what is wrong}}``: the catalog reachable, every
    watched folder mounted, and what the command adds (a model loaded)."""
    from catalog.errors import FootageError

    found: dict[str, str] = {}
    try:
        with catalog.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            rows = conn.execute(sa.text("SELECT storage_id, rel_path FROM roots WHERE offline_since IS NOT NULL"))
            offline = [catalog.mounts.shown(storage_id, rel) for storage_id, rel in rows]
        found["catalog"] = "ok"
        found["storage"] = "ok" if not offline else f"offline: {', '.join(offline)}"
    except (sa.exc.SQLAlchemyError, FootageError) as exc:
        found["catalog"] = f"unreachable: {str(exc).splitlines()[0]}"
    for name, check in (checks or {}).items():
        found[name] = check() or "ok"
    return {"ready": all(v == "ok" for v in found.values()), "checks": found}


class HealthServer:
    """``/metrics``, ``/health/live`` and ``/health/ready`` for a command without a web
    service of its own (``watch`` without ``--serve``, ``worker``), on its own thread."""

    def __init__(self, catalog: Catalog, host: str, port: int, checks: dict[str, Callable[[], str | None]]) -> None:
        collect_queue(catalog)
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                status, body, content_type = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every few seconds is not an event

        self.catalog, self.checks = catalog, checks
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="footage-health", daemon=True)

    def _answer(self, path: str) -> tuple[int, bytes, str]:
        if path == "/metrics":
            body, content_type = metrics_text()
            return 200, body, content_type
        if path == "/health/live":
            return 200, b'{"live": true}', "application/json"
        if path == "/health/ready":
            ready = readiness(self.catalog, self.checks)
            return (200 if ready["ready"] else 503), json.dumps(ready).encode(), "application/json"
        return 404, b'{"error": "no such page: /metrics, /health/live, /health/ready"}', "application/json"

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
