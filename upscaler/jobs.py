"""The upscaler's job glue: requesting renditions and the render task workers run.

The only upscaler module that touches the catalog. A finished rendition is
indexed by deferring the indexer's job by name; the indexer is never imported.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import procrastinate
import sqlalchemy as sa
from procrastinate import exceptions as procrastinate_errors

from catalog import Asset, Catalog, FootageError, Rendition, UnsafePathError
from catalog import renditions as records
from catalog.families import resolve_asset
from catalog.jobs import RENDER_QUEUE, RENDER_TASK, defer_index, defer_render
from upscaler.encode import CODECS
from upscaler.errors import DownloadError, PlanError, RenderError
from upscaler.geometry import Plan, Source, plan
from upscaler.registry import ModelChoice, known_model
from upscaler.render import RenderProgress, RenderRequest, render, sha256_of
from upscaler.weights import file_sha256

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRYABLE: tuple[type[Exception], ...] = (RenderError, DownloadError, OSError)
_PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class UpscaleSettings:
    """Where renditions and weights live, and which device renders."""

    renditions_dir: Path
    models_dir: Path
    device: str | None = None


@dataclass(frozen=True)
class UpscaleRequest:
    asset: str
    target: str = "4k"
    model: ModelChoice = ModelChoice()
    codec: str = "hevc"
    force: bool = False
    again: bool = False


@dataclass(frozen=True)
class Requested:
    rendition_id: int
    job_id: int | None
    plan: Plan
    output_path: Path
    existing: bool
    status: str


def _model_identity(choice: ModelChoice) -> tuple[str, str]:
    """(name, sha256) without loading the model, so a request is instant."""
    path = Path(choice.name).expanduser()
    if path.is_file():
        return path.stem, (choice.sha256 or file_sha256(path)).lower()
    known = known_model(choice.name)
    return known.name, (choice.sha256 or known.sha256).lower()


def request_upscale(
    catalog: Catalog, app: procrastinate.App, request: UpscaleRequest, settings: UpscaleSettings
) -> Requested:
    """Validate, plan and record a rendition, and queue its render (or return the same one)."""
    if request.codec not in CODECS:
        raise PlanError(f"unknown codec {request.codec!r}; choose one of {', '.join(CODECS)}")
    model_name, model_sha = _model_identity(request.model)
    with catalog.session() as session:
        master = resolve_asset(session, request.asset)
        if master.kind != "master":
            raise FootageError(f"{master.path} is a rendition; upscale its master instead")
        if master.status != "indexed" or not os.path.exists(master.path):
            raise FootageError(
                f"{master.path} is {master.status if master.status != 'indexed' else 'missing'}; "
                "only present, indexed masters can be upscaled"
            )
        if not master.width or not master.height:
            raise FootageError(f"{master.path} has no known picture size")
        sar = Fraction(master.sar_num or 1, master.sar_den or 1)
        the_plan = plan(
            Source(master.width, master.height, sar, master.rotation or 0), request.target, force=request.force
        )
        parameters: dict[str, object] = {"codec": request.codec}
        if Path(request.model.name).expanduser().is_file():
            parameters["model_file"] = str(Path(request.model.name).expanduser().resolve())
        if request.model.denoise is not None:
            parameters["denoise"] = request.model.denoise
        spec = records.RenditionSpec(
            master.id, the_plan.label, the_plan.width, the_plan.height, model_name, model_sha, parameters
        )
        if not request.again and (same := records.find_same(session, spec)) is not None:
            return Requested(same.id, same.job_id, the_plan, Path(same.output_path or ""), True, same.status)
        folder = settings.renditions_dir
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(master.path).stem
        output = records.rendition_path(folder, stem, the_plan.label, model_name, CODECS[request.codec].suffix)
        if request.again or output.exists() or _path_taken(session, output):
            output = records.rendition_path(
                folder, stem, f"{the_plan.label}-{int(time.time())}", model_name, CODECS[request.codec].suffix
            )
        rendition = records.create(session, spec, output)
        rendition_id = rendition.id
    job_id = defer_render(app, rendition_id)
    with catalog.session() as session:
        records.get(session, rendition_id).job_id = job_id
    return Requested(rendition_id, job_id, the_plan, output, False, "queued")


def _path_taken(session: sa.orm.Session, path: Path) -> bool:
    taken_by_asset = session.scalar(sa.select(Asset.id).where(Asset.path == str(path)))
    taken_by_request = session.scalar(sa.select(Rendition.id).where(Rendition.output_path == str(path)))
    return bool(taken_by_asset or taken_by_request)


def _remove_stale_partials(output: Path) -> None:
    # A worker killed mid-render leaves its temporary file; it is never visible
    # under the final name, and the next attempt clears it away.
    for leftover in glob.glob(str(output.with_name(f".{glob.escape(output.stem)}.partial-*{output.suffix}"))):
        Path(leftover).unlink(missing_ok=True)


def register_render_task(app: procrastinate.App, catalog: Catalog, settings: UpscaleSettings) -> None:
    """Make ``app``'s workers able to render."""

    # Only failures that may pass are retried (a cut download, an encoder or
    # I/O hiccup); a bad request fails at once with its reason.
    @app.task(
        name=RENDER_TASK,
        queue=RENDER_QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS - 1, wait=10, retry_exceptions=RETRYABLE),
    )
    def render_job(context: procrastinate.JobContext, rendition_id: int) -> None:
        run_render_job(catalog, app, settings, rendition_id, context)


def run_render_job(
    catalog: Catalog,
    app: procrastinate.App,
    settings: UpscaleSettings,
    rendition_id: int,
    context: procrastinate.JobContext | None = None,
) -> None:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with catalog.session() as session:
        rendition = records.get(session, rendition_id, lock=True)
        if rendition.status in ("done", "cancelled"):
            return
        master = session.get(Asset, rendition.master_id)
        assert master is not None
        try:
            # Paths from the database are not trusted: the output must stay in the renditions folder.
            output = records.ensure_inside(settings.renditions_dir, Path(rendition.output_path or "/"))
            if output == Path(master.path).resolve():
                raise UnsafePathError(f"refusing to write over the master {master.path}")
        except FootageError as exc:
            rendition.status, rendition.error = "failed", str(exc)
            rendition.finished_at = datetime.now(UTC)
            logger.error("rendition %s: %s", rendition_id, exc)
            return
        rendition.status, rendition.worker, rendition.error = "running", worker, None
        rendition.attempts += 1
        rendition.started_at = datetime.now(UTC)
        rendition.frames_done, rendition.progress = 0, 0.0
        request = RenderRequest(
            master=Path(master.path),
            output=output,
            target=f"{rendition.target_width}x{rendition.target_height}",
            # A local model file travels by path (shared storage); its hash is checked again.
            model=ModelChoice(
                name=rendition.parameters.get("model_file") or rendition.model_name,
                sha256=rendition.model_sha256,
                denoise=rendition.parameters.get("denoise"),
            ),
            codec=rendition.parameters.get("codec", "hevc"),
            force=True,
            device=settings.device,
            cache_dir=settings.models_dir,
            overwrite=True,
        )
        attempt = rendition.attempts
    _remove_stale_partials(output)

    cancel = threading.Event()
    last = [0.0]

    def progress(p: RenderProgress) -> None:
        if context is not None and context.should_abort():
            cancel.set()
        if time.monotonic() - last[0] >= _PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            with catalog.session() as session:
                records.record_progress(session, rendition_id, p.frames_done, p.frames_total, p.fps)

    try:
        result = render(request, progress, cancel)
    except Exception as exc:
        cancelled = cancel.is_set()
        retried = isinstance(exc, RETRYABLE) and attempt < MAX_ATTEMPTS
        with catalog.session() as session:
            row = records.get(session, rendition_id)
            row.status = "cancelled" if cancelled else ("queued" if retried else "failed")
            row.error = "cancelled by a user" if cancelled else str(exc)
            row.finished_at = datetime.now(UTC) if row.status != "queued" else None
        if cancelled:
            raise procrastinate_errors.JobAborted() from exc
        raise

    with catalog.session() as session:
        values = {
            "width": result.plan.width,
            "height": result.plan.height,
            "size_bytes": output.stat().st_size,
            "content_hash": sha256_of(output),
            "video_codec": result.provenance["output"]["codec"],
            "duration_s": result.duration_s,
        }
        asset_id = records.register_file(session, output, values)
        row = records.get(session, rendition_id)
        row.rendition_asset_id = asset_id
        row.status, row.progress, row.frames_done = "done", 1.0, result.frames
        row.frames_total = result.frames
        row.finished_at = datetime.now(UTC)
        row.timings = result.provenance["timings"]
        row.provenance = result.provenance
    defer_index(app, str(output), kind="rendition")
    logger.info("rendition %s done: %s", rendition_id, output)
