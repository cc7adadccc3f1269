"""``footage serve``: a resident HTTP service that keeps the CLIP text tower loaded and
answers search, show, pairs and jobs as the CLI's ``--json`` does (cli/payloads.py).

Starlette + uvicorn. Bound to 127.0.0.1 by default; bound anywhere else it needs a
token, and a client that is not on this machine must send it
(``Authorization: Bearer TOKEN``). A running service announces itself in
``FOOTAGE_HOME/server.json`` so ``footage search`` finds it.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from catalog import Asset, Catalog, ConfigurationError, FootageError, NotFoundError
from catalog.metrics import SEARCH_SECONDS, collect_queue, metrics_text, readiness
from catalog.results import FamilyHit, SearchOptions
from cli import payloads, served_files, wire
from cli.answers import answer, error_answer
from cli.client import ANNOUNCE_FILE, DEFAULT_PORT
from cli.export import export_hits
from cli.settings import author
from indexer.embed import ClipEmbedder
from indexer.settings import EmbeddingSettings

# The browser page: plain HTML, CSS and JavaScript, no build step.
WEB = Path(__file__).parent / "web"
_MAX_PICTURE_BYTES = 50 * 1024 * 1024
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None

    def check(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ConfigurationError(
                f"binding to {self.host} lets other machines in: give a token (--token or FOOTAGE_SERVER_TOKEN)"
            )


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def make_app(
    catalog: Catalog, settings: EmbeddingSettings, service: ServiceSettings, announce: Path | None = None
) -> Starlette:
    """The ASGI app. The text tower loads once, when the service starts; then the service
    is announced in ``announce`` (for clients to find) until it stops."""
    searcher = _Searcher(catalog, settings)
    collect_queue(catalog)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        searcher.load()
        if announce is not None:
            host = "127.0.0.1" if service.host in ("0.0.0.0", "::") else service.host
            announce.parent.mkdir(parents=True, exist_ok=True)
            announce.write_text(json.dumps({"url": f"http://{host}:{service.port}", "pid": os.getpid()}))
        try:
            yield
        finally:
            if announce is not None:
                announce.unlink(missing_ok=True)

    def search(request: Request) -> Response:
        params = dict(request.query_params)
        if params.get("model", settings.identity) != settings.identity:
            return answer({"error": f"this service searches with {settings.identity}", "exit_code": 2}, 409)
        return answer(searcher.run(params)[1])

    def show(request: Request) -> Response:
        return answer(payloads.show(catalog, request.path_params["asset"]))

    def pairs(request: Request) -> Response:
        return answer(payloads.pairs(catalog, request.query_params.get("asset")))

    def jobs(request: Request) -> Response:
        return answer(payloads.jobs(catalog, int(request.query_params.get("limit", 50))))

    def health(request: Request) -> Response:
        return answer({"footage": "ok", "model": settings.identity, "pid": os.getpid()})

    def ready(request: Request) -> Response:
        found = readiness(catalog, {"model": searcher.loaded})
        return answer(found, 200 if found["ready"] else 503)

    def metrics(request: Request) -> Response:
        body, content_type = metrics_text()
        return Response(body, media_type=content_type)

    # Changes (a rendition requested) need a token even from this machine, so that a page of
    # another site open in a local browser cannot make them: the configured one, or one made now.
    write_token = service.token or secrets.token_urlsafe(24)

    def guarded_async(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        return _guarded(service.token, endpoint)

    def guarded(endpoint: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        async def in_thread(request: Request) -> Response:
            return await run_in_threadpool(endpoint, request)

        return _guarded(service.token, in_thread)

    routes = [
        Route("/", _signed_in(service.token, guarded(functools.partial(_page, write_token)))),
        Route(
            "/api/renditions", _writing(write_token, functools.partial(_request_rendition, catalog)), methods=["POST"]
        ),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
        Route(
            "/api/thumbnails/{asset_id:int}/{frame_ms:int}", guarded(functools.partial(served_files.thumbnail, catalog))
        ),
        Route("/api/frames/{asset_id:int}/{frame_ms:int}", guarded(functools.partial(served_files.frame, catalog))),
        Route("/api/media/{asset_id:int}", guarded(functools.partial(served_files.media, catalog))),
        Route("/api/proxies/{asset_id:int}", guarded(functools.partial(served_files.proxy, catalog))),
        Route("/api/proxies", _writing(write_token, functools.partial(_request_proxy, catalog)), methods=["POST"]),
        Route("/api/credentials/{asset_id:int}", guarded(functools.partial(served_files.credentials, catalog))),
        Route("/api/health", guarded(health)),
        Route("/health/live", guarded(health)),
        Route("/health/ready", guarded(ready)),
        Route("/metrics", guarded(metrics)),
        Route("/api/search/image", guarded_async(_search_image(searcher)), methods=["POST"]),
        Route("/api/export", guarded(functools.partial(_export, searcher))),
        Route("/api/search", guarded(search)),
        Route("/api/assets/{asset:path}", guarded(show)),
        Route("/api/pairs", guarded(pairs)),
        Route("/api/annotations", _writing(write_token, functools.partial(_annotate, catalog)), methods=["POST"]),
        Route("/api/selections", guarded(functools.partial(_selections, catalog)), methods=["GET"]),
        Route("/api/selections", _writing(write_token, functools.partial(_select, catalog)), methods=["POST"]),
        Route("/api/selections/{name:path}", guarded(functools.partial(_selection, searcher))),
        Route("/api/jobs", guarded(jobs)),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _guarded(
    token: str | None, endpoint: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """Another machine must send the token; footage's errors become one-line JSON answers."""

    async def handle(request: Request) -> Response:
        client = request.client.host if request.client else None
        if not is_loopback(client) and not _token_ok(request, token):
            return answer({"error": "a token is needed from another machine", "exit_code": 2}, 401)
        return await _answering(endpoint, request)

    return handle


async def _answering(endpoint: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    """The endpoint's answer; footage's errors and bad parameters (not a number, not a date,
    a body that is not the JSON asked for) as one-line JSON answers."""
    try:
        return await endpoint(request)
    except FootageError as exc:
        return error_answer(exc)
    except ValueError as exc:
        return answer({"error": f"bad parameter: {exc}", "exit_code": 2}, 400)


class _Searcher:
    """The service's searches, one at a time through the model (torch's CPU kernels already use
    every core). The text tower loads at start; the full model on the first picture query."""

    def __init__(self, catalog: Catalog, settings: EmbeddingSettings) -> None:
        self._catalog, self._settings = catalog, settings
        self._lock = threading.Lock()
        self._text: ClipEmbedder | None = None
        self._full: ClipEmbedder | None = None

    def load(self) -> None:
        self._text = ClipEmbedder(self._settings, text_only=True)
        self._text.embed_text(["warm up"])  # the first call pays for lazy initialisation

    def run(self, params: dict[str, str], image: Path | None = None) -> tuple[list[FamilyHit], dict[str, Any]]:
        """A search given as the API's query parameters (or a picture): the hits and the answer."""
        options = SearchOptions(
            limit=int(params.get("limit", 10)),
            moments=int(params.get("moments", 1)),
            exact=params.get("exact") == "true",
            filters=wire.filters_from_query(params),
            sides=params.get("sides", "both"),
        )
        query = wire.SearchRequest(text=params.get("q"), like=params.get("like"), image=image, options=options)
        with self._lock, SEARCH_SECONDS.time():
            if image is not None and self._full is None:
                self._full = ClipEmbedder(self._settings)
            embedder = self._full if image is not None else self._text
            hits, found = payloads.search(self._catalog, self._settings, query, embedder)
        return hits, {**found, "answered_by": f"footage serve (pid {os.getpid()})"}

    def selection(self, name: str) -> tuple[list[FamilyHit], dict[str, Any]]:
        return payloads.selection(self._catalog, name, self._settings.identity)

    def loaded(self) -> str | None:
        """None when the text tower is loaded (the service answers), else why not."""
        return None if self._text is not None else "the CLIP text tower is not loaded yet"


def _search_image(searcher: _Searcher) -> Callable[[Request], Awaitable[Response]]:
    """Query by example: the picture is the request's body (dropped on the page)."""

    async def handle(request: Request) -> Response:
        body = await request.body()
        if not body or len(body) > _MAX_PICTURE_BYTES:
            return answer({"error": "send one picture of at most 50 MB as the body", "exit_code": 2}, 400)
        with tempfile.TemporaryDirectory(prefix="footage-query-") as folder:
            picture = Path(folder) / "query"
            picture.write_bytes(body)
            found = await run_in_threadpool(searcher.run, dict(request.query_params), picture)
        found[1]["query"]["image"] = "(the picture sent)"
        return answer(found[1])

    return handle


def _export(searcher: _Searcher, request: Request) -> Response:
    """The search's moments as an edit list to download: ``format`` edl, otio or csv; ``only``
    (ASSET_ID@FRAME_MS,...) keeps the moments chosen on the page; ``proxies=1`` points it at
    the proxies."""
    suffix = "." + request.query_params.get("format", "edl")
    if name := request.query_params.get("selection"):
        hits, _ = searcher.selection(name)
    else:
        hits, _ = searcher.run(dict(request.query_params))
    if only := request.query_params.get("only"):
        chosen = {(int(a), int(ms)) for a, _, ms in (item.partition("@") for item in only.split(","))}
        hits = [
            dataclasses.replace(hit, moments=kept)
            for hit in hits
            if (kept := tuple(m for m in hit.moments if (m.asset_id, round(m.frame_s * 1000)) in chosen))
        ]
    folder = Path(tempfile.mkdtemp(prefix="footage-export-"))
    path = folder / f"footage-search{suffix}"
    export_hits(hits, path, proxies=request.query_params.get("proxies") == "1")
    return FileResponse(path, filename=path.name, background=BackgroundTask(shutil.rmtree, folder, True))


def _annotate(catalog: Catalog, body: dict[str, Any]) -> Response:
    return answer(payloads.annotate(catalog, body, _page_author(body)))


def _select(catalog: Catalog, body: dict[str, Any]) -> Response:
    return answer(payloads.select(catalog, body, _page_author(body)))


def _selections(catalog: Catalog, request: Request) -> Response:
    return answer(payloads.selections(catalog))


def _selection(searcher: _Searcher, request: Request) -> Response:
    return answer(searcher.selection(request.path_params["name"])[1])


def _page_author(body: dict[str, Any]) -> str:
    """Who the page says is writing (its name field), else the service's own user."""
    named = str(body.get("author") or "").strip()
    return named[:80] if named else f"{author()} (page)"


def _writing(
    write_token: str, endpoint: Callable[[dict[str, Any]], Response]
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that changes something: the token is needed from any client, this machine's too."""

    async def with_body(request: Request) -> Response:
        return await run_in_threadpool(endpoint, await request.json())

    async def handle(request: Request) -> Response:
        if not _token_ok(request, write_token):
            return answer({"error": "changes need the token", "exit_code": 2}, 401)
        return await _answering(with_body, request)

    return handle


def _page(write_token: str, request: Request) -> Response:
    # The page carries the token that changes need: only a client that may read the page
    # (this machine, or one that sent the token) gets it; another site's script cannot read it.
    return HTMLResponse(_page_html().replace("{{write_token}}", write_token), headers={"Cache-Control": "no-store"})


@functools.cache
def _page_html() -> str:
    return (WEB / "index.html").read_text()


def _request_rendition(catalog: Catalog, body: dict[str, Any]) -> Response:
    """Record and queue a rendition, as ``footage upscale`` does (a worker renders it)."""
    from catalog.jobs import job_app
    from cli.service import upscale_settings
    from upscaler.jobs import UpscaleRequest, request_upscale
    from upscaler.registry import DEFAULT_MODEL, ModelChoice
    from upscaler.temporal import TemporalSettings

    if not isinstance(body, dict) or "asset" not in body:
        raise ValueError('send a JSON object: {"asset": ID, "target", "model", "temporal"}')
    request = UpscaleRequest(
        asset=str(body["asset"]),
        target=str(body.get("target") or "4k"),
        model=ModelChoice(name=str(body.get("model") or DEFAULT_MODEL)),
        temporal=TemporalSettings(enabled=bool(body.get("temporal", True))),
    )
    defer_app = job_app(catalog, asynchronous=False)
    with defer_app.open():
        result = request_upscale(catalog, defer_app, request, upscale_settings())
    return answer(payloads.upscale_summary(result))


def _request_proxy(catalog: Catalog, body: dict[str, Any]) -> Response:
    """Queue a version's proxy, as a worker would after indexing it (a render worker makes it)."""
    from catalog import proxies
    from catalog.jobs import job_app

    if not isinstance(body, dict) or not str(body.get("asset", "")).isdigit():
        raise ValueError('send a JSON object: {"asset": ID}')
    asset_id = int(body["asset"])
    with catalog.session() as session:
        if session.get(Asset, asset_id) is None:
            raise NotFoundError(f"no asset with id {asset_id} in the catalog")
    defer_app = job_app(catalog, asynchronous=False)
    with defer_app.open():
        proxy_id = proxies.ask(catalog, defer_app, asset_id)
    with catalog.session() as session:
        proxy = proxies.of_versions(session, [asset_id])[asset_id]
        return answer({"proxy_id": proxy.id, "status": proxy.status, "queued": proxy_id is not None})


# The cookie a browser on another machine holds once it opened the page with ?token=...
TOKEN_COOKIE = "footage_token"


def _token_ok(request: Request, token: str | None) -> bool:
    """The token, sent as ``Authorization: Bearer`` (clients) or in the page's cookie (browsers)."""
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    given = given or request.cookies.get(TOKEN_COOKIE, "")
    return bool(token) and hmac.compare_digest(given.encode(), (token or "").encode())


def _signed_in(
    token: str | None, page: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """The page, for a browser on another machine: opened once as ``/?token=TOKEN`` it gets the
    token as a cookie (HttpOnly, SameSite=Strict: no other site's page can send it) and is sent
    to ``/``, so the token leaves the address bar and the history."""

    async def handle(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None and token and hmac.compare_digest(given.encode(), token.encode()):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        return await page(request)

    return handle


@dataclass
class RunningService:
    """A service answering on its own thread; ``stop`` ends it (announcement removed)."""

    thread: threading.Thread
    server: Any  # uvicorn.Server

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def start_service(
    catalog: Catalog, settings: EmbeddingSettings, service: ServiceSettings, home: Path
) -> RunningService:
    """Start answering on a thread of its own. uvicorn's signal handling stays off (it only
    installs it on the main thread, and re-raises the signal after its shutdown, which would
    end the process before footage says it stopped): callers own SIGINT/SIGTERM."""
    import uvicorn

    service.check()
    app = make_app(catalog, settings, service, announce=home / ANNOUNCE_FILE)
    server = uvicorn.Server(uvicorn.Config(app, host=service.host, port=service.port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="footage-serve", daemon=True)
    thread.start()
    return RunningService(thread, server)


def serve_until_stopped(running: RunningService) -> None:
    """Wait for SIGINT/SIGTERM (or the service failing to start), then stop it."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not running.thread.is_alive():
            raise FootageError(f"the service stopped by itself (is port {running.server.config.port} taken?)")
    running.stop()
