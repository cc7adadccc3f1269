"""``footage watch``, ``footage worker`` and ``footage serve``: the long-running side of footage."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import procrastinate
import typer

from catalog import Catalog, ConfigurationError, open_catalog
from catalog.jobs import (
    QUEUES,
    RENDER_QUEUE,
    STALLED_WORKER_TIMEOUT_S,
    defer_index,
    job_app,
    served_queues,
)
from catalog.orphans import register_orphan_check
from catalog.renditions import renditions_storage
from catalog.storages import RENDITIONS
from catalog.workers import run_worker
from cli.client import DEFAULT_PORT
from cli.indexing import KEYFRAMES_OPTION, MAX_GAP_OPTION
from cli.logs import LOG_FORMAT_OPTION, LogFormat, setup_logging
from cli.output import stdout
from cli.settings import (
    catalog_settings,
    device,
    embedding_settings,
    footage_home,
    models_dir,
    proxy_mode,
    renditions_dir,
    signing_settings,
)
from indexer.sampling import DEFAULT_MAX_GAP_S
from indexer.tasks import LazyEmbedder, files_at_once, register_index_task
from indexer.watch import FolderWatcher, WatchSettings

if TYPE_CHECKING:
    from cli.server import ServiceSettings
    from upscaler.jobs import UpscaleSettings

CONCURRENCY_OPTION = typer.Option(
    "--concurrency", min=1, help="Renders (and other jobs but indexing) this process runs at once."
)
INDEX_CONCURRENCY_OPTION = typer.Option(
    "--index-concurrency",
    min=1,
    show_default=False,
    help=f"Files this process indexes at once (default: one per four cores, so {files_at_once()} here).",
)
METRICS_OPTION = typer.Option(
    "--metrics",
    metavar="HOST:PORT",
    help="Serve /metrics (Prometheus), /health/live and /health/ready at this address (e.g. 0.0.0.0:9464).",
)
QUEUE_OPTION = typer.Option(
    "--queue", "-q", help=f"Queue to take jobs from (repeatable; default all: {', '.join(QUEUES)})."
)


HOST_OPTION = typer.Option("--host", help="Address to listen on; anything but loopback needs --token.")
PORT_OPTION = typer.Option("--port", min=1, max=65535, help="Port to listen on.")
TOKEN_OPTION = typer.Option(
    "--token", envvar="FOOTAGE_SERVER_TOKEN", help="Token clients on other machines must send (Bearer)."
)


def _service_settings(host: str, port: int, token: str | None) -> ServiceSettings:
    from cli.server import ServiceSettings

    service = ServiceSettings(host=host, port=port, token=token)
    service.check()
    return service


STALL_OPTION = typer.Option(
    "--stall-timeout",
    min=1.0,
    help="Seconds without a heartbeat after which a worker's jobs go to others; also how long this "
    "worker's hold on a rendition it renders lasts without a renewal.",
)


def worker_app(catalog: Catalog, stall_timeout_s: float = STALLED_WORKER_TIMEOUT_S) -> procrastinate.App:
    """The job app with every footage task: the one place indexer and upscaler meet."""
    from upscaler.jobs import register_render_task
    from upscaler.proxy_jobs import register_proxy_task

    app = job_app(catalog)
    register_index_task(app, catalog, LazyEmbedder(embedding_settings()), proxy_mode=proxy_mode())
    register_render_task(app, catalog, upscale_settings(lease_s=stall_timeout_s))
    register_proxy_task(app, catalog, renditions_dir())
    register_orphan_check(app, catalog)
    return app


def upscale_settings(lease_s: float = STALLED_WORKER_TIMEOUT_S) -> UpscaleSettings:
    from upscaler.jobs import UpscaleSettings

    return UpscaleSettings(
        renditions_dir=renditions_dir(),
        models_dir=models_dir(),
        device=device(),
        lease_s=lease_s,
        signing=signing_settings(),
    )


def _address(value: str | None) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port)."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"--metrics takes HOST:PORT (e.g. 0.0.0.0:9464), not {value!r}")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def _health(
    catalog: Catalog, address: tuple[str, int] | None, storages: Callable[[], str | None] | None = None
) -> Iterator[None]:
    """/metrics, /health/live and /health/ready at ``address`` while the command runs."""
    if address is None:
        yield
        return
    from catalog.metrics import HealthServer

    try:
        server = HealthServer(catalog, *address, checks={"mounts": storages} if storages is not None else {})
    except OSError as exc:
        raise ConfigurationError(f"--metrics {address[0]}:{address[1]}: cannot listen there: {exc.strerror}") from exc
    with server:
        yield


def _serving(catalog: Catalog, kinds: list[str]) -> tuple[list[str], Callable[[], str | None]]:
    """The queues a process taking ``kinds`` of work listens to: each kind's, for every storage
    this host serves (its marker checked now); renders only where the renditions storage is
    served too, since a render writes there. Says in one line each what is served and what
    not, and returns the readiness check that those storages stay served."""
    mounts = catalog.mounts
    with catalog.session() as session:
        # One machine needs no set-up: the first service started makes the renditions storage
        # in its own folder (a team adds a shared one first: `footage storage add renditions`).
        renditions = renditions_storage(session, renditions_dir()).id
    mounts.reload()
    found = mounts.mounts()
    served = [m.storage for m in found if m.served]
    for mount in found:
        if mount.served:
            stdout().print(f"Serving storage {mount.storage.name} at {mount.folder}")
        elif mount.storage.host is None:
            stdout().print(f"Not serving {mount.problem}")
    if RENDER_QUEUE in kinds and renditions not in {s.id for s in served}:
        why = mounts.mount(mounts.storage(renditions)).problem
        stdout().print(f"Taking no renders: a render writes to storage {RENDITIONS} ({why})")
        kinds = [k for k in kinds if k != RENDER_QUEUE]

    def still_served() -> str | None:
        lost = [p for s in served if (p := mounts.mount(s).problem) is not None]
        return "; ".join(lost) or None

    return served_queues(kinds, served), still_served


def _known_queues(queues: list[str] | None) -> list[str]:
    """The queues asked for, every queue when none is named; an unknown name is a usage error."""
    unknown = sorted(set(queues or ()) - set(QUEUES))
    if unknown:
        raise ConfigurationError(f"unknown queue {unknown[0]!r}; known: {', '.join(QUEUES)}")
    return list(dict.fromkeys(queues)) if queues else list(QUEUES)


def watch(
    roots: Annotated[list[Path], typer.Argument(help="Folders to watch (recursively).")],
    poll: Annotated[bool, typer.Option("--poll", help="Poll instead of OS events (network shares).")] = False,
    settle: Annotated[
        float, typer.Option("--settle", min=0.0, help="Seconds a file must stay unchanged before it is indexed.")
    ] = 5.0,
    rescan: Annotated[float, typer.Option("--rescan", min=1.0, help="Seconds between full rescans.")] = 1800.0,
    keyframes: Annotated[bool, KEYFRAMES_OPTION] = False,
    max_gap: Annotated[float, MAX_GAP_OPTION] = DEFAULT_MAX_GAP_S,
    concurrency: Annotated[int, CONCURRENCY_OPTION] = 1,
    index_concurrency: Annotated[int | None, INDEX_CONCURRENCY_OPTION] = None,
    stall_timeout: Annotated[float, STALL_OPTION] = STALLED_WORKER_TIMEOUT_S,
    queues: Annotated[list[str] | None, QUEUE_OPTION] = None,
    serve_too: Annotated[
        bool, typer.Option("--serve", help="Also answer searches over HTTP, as `footage serve` does.")
    ] = False,
    host: Annotated[str, HOST_OPTION] = "127.0.0.1",
    port: Annotated[int, PORT_OPTION] = DEFAULT_PORT,
    token: Annotated[str | None, TOKEN_OPTION] = None,
    metrics: Annotated[str | None, METRICS_OPTION] = None,
    log_format: Annotated[LogFormat, LOG_FORMAT_OPTION] = LogFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log library details too.")] = False,
) -> None:
    """Watch folders and keep them indexed: the watch-folder service.

    Registers the folders, catches up with what changed since the last run
    (new, changed, moved, deleted files), then follows filesystem events. A
    file is indexed once it has stopped changing and decodes; moves keep an
    asset's identity; deletions mark it missing. An in-process worker runs the
    jobs, so one command is enough; `footage worker` on other machines helps.
    `-q index` leaves renders to the GPU hosts' workers (a catalog host that
    indexes and serves). Stop with Ctrl-C (or SIGTERM): a restart loses nothing.

    Example: footage watch /media/incoming --settle 10 --serve -q index
    """
    queues = _known_queues(queues)
    for root in roots:
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise ConfigurationError(
                f"{root} {what}: name the folder your footage is in, e.g. `footage watch /media/rushes` "
                "(several folders are fine)"
            )
    service = _service_settings(host, port, token) if serve_too else None
    health_at = _address(metrics)
    setup_logging(verbose, log_format)
    with open_catalog(catalog_settings()) as catalog:
        listening, storages_served = _serving(catalog, queues)
        renditions = catalog.mounts.by_name(RENDITIONS)
        rendered_at = (catalog.mounts.folder(renditions) if renditions else None) or renditions_dir()
        settings = WatchSettings(settle_s=settle, rescan_interval_s=rescan, poll=poll, exclude=(rendered_at,))
        defer_app = job_app(catalog, asynchronous=False)
        defer_app.open()

        def enqueue(path: Path, root_id: int) -> None:
            storage, rel = catalog.mounts.place(path)
            defer_index(defer_app, storage, rel, root_id=root_id, keyframes_only=keyframes, max_gap_s=max_gap)

        if service is not None:
            # The page's service loads CLIP in its thread while the worker's first job imports the
            # same libraries in another: torchvision imported from two threads at once was seen
            # to fail ("partially initialized module"). Imported here first, before any thread.
            import open_clip  # noqa: F401
            import torchvision  # noqa: F401
        watcher = FolderWatcher(catalog, roots, settings, enqueue)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), name="footage-watch", daemon=True)
        stdout().print(
            f"Watching {', '.join(str(r) for r in roots)}, working on queues {', '.join(listening)} (Ctrl-C to stop)"
        )
        thread.start()
        answering = None
        if service is not None:
            from cli.server import start_service

            answering = start_service(catalog, embedding_settings(), service, footage_home())
        try:
            with _health(catalog, health_at, storages_served):
                run_worker(
                    worker_app(catalog, stall_timeout),
                    queues=listening,
                    concurrency=concurrency,
                    index_concurrency=index_concurrency or files_at_once(),
                    name="watch",
                    stall_timeout_s=stall_timeout,
                    catalog=catalog,
                    host=catalog.mounts.host,
                )
        finally:
            stop.set()
            if answering is not None:
                answering.stop()
            thread.join(timeout=30)
            defer_app.close()
    stdout().print("Stopped.")


def serve(
    host: Annotated[str, HOST_OPTION] = "127.0.0.1",
    port: Annotated[int, PORT_OPTION] = DEFAULT_PORT,
    token: Annotated[str | None, TOKEN_OPTION] = None,
    log_format: Annotated[LogFormat, LOG_FORMAT_OPTION] = LogFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log library details too.")] = False,
) -> None:
    """Answer search, show, pairs and jobs over HTTP, with the CLIP text tower loaded once.

    `footage search` uses a running service by itself (it finds it through
    FOOTAGE_HOME, or FOOTAGE_SERVER_URL), so a search answers in a fraction of a
    second instead of loading the model each time. The answers are the JSON of
    the matching commands' --json: GET /api/search?q=TEXT (and the search
    options' names: limit, moments, kind, min_height, max_height, under,
    has_rendition, since, exact; or like=ASSET@TIME), /api/assets/ASSET,
    /api/pairs, /api/jobs, /api/health.

    Example: footage serve --port 8765
    """
    from cli.server import serve_until_stopped, start_service

    service = _service_settings(host, port, token)
    setup_logging(verbose, log_format)
    with open_catalog(catalog_settings()) as catalog:
        stdout().print(f"Serving on http://{host}:{port} (Ctrl-C to stop)")
        serve_until_stopped(start_service(catalog, embedding_settings(), service, footage_home()))
    stdout().print("Stopped.")


def worker(
    queues: Annotated[list[str] | None, QUEUE_OPTION] = None,
    concurrency: Annotated[int, CONCURRENCY_OPTION] = 1,
    index_concurrency: Annotated[int | None, INDEX_CONCURRENCY_OPTION] = None,
    stall_timeout: Annotated[float, STALL_OPTION] = STALLED_WORKER_TIMEOUT_S,
    metrics: Annotated[str | None, METRICS_OPTION] = None,
    log_format: Annotated[LogFormat, LOG_FORMAT_OPTION] = LogFormat.text,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log library details too.")] = False,
) -> None:
    """Run queued jobs (indexing, rendering) until stopped.

    Start one on any machine that reaches the catalog database and the media
    storage; workers share the queue without doing a job twice.

    Example: FOOTAGE_DATABASE_URL=postgresql+psycopg://me@db/footage footage worker -q render
    """
    queues = _known_queues(queues)
    health_at = _address(metrics)
    setup_logging(verbose, log_format)
    with open_catalog(catalog_settings()) as catalog:
        listening, storages_served = _serving(catalog, queues)
        stdout().print(f"Worker on queues {', '.join(listening)} (Ctrl-C to stop)")
        with _health(catalog, health_at, storages_served):
            run_worker(
                worker_app(catalog, stall_timeout),
                queues=listening,
                concurrency=concurrency,
                index_concurrency=index_concurrency or files_at_once(),
                name=socket.gethostname(),
                stall_timeout_s=stall_timeout,
                catalog=catalog,
                host=catalog.mounts.host,
            )
    stdout().print("Stopped.")
