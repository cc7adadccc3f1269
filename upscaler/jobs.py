"""The upscaler's job glue: requesting renditions and the render task workers run.

With ``upscaler.backfill`` (signing older renditions), the only upscaler modules that
touch the catalog. A finished rendition is indexed by deferring the indexer's job by
name; the indexer is never imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import procrastinate
import sqlalchemy as sa
from procrastinate import exceptions as procrastinate_errors
from sqlalchemy.orm import Session

from catalog import Asset, Catalog, FootageError, Rendition, UnsafePathError
from catalog import renditions as records
from catalog.families import resolve_asset
from catalog.jobs import (
    DATABASE_LOST,
    RENDER_QUEUE,
    RENDER_TASK,
    STALLED_WORKER_TIMEOUT_S,
    defer_index,
    defer_render,
    index_work,
)
from catalog.media import Picture, content_hash
from catalog.metrics import FRAMES_RENDERED, RENDER_FPS
from catalog.renditions import Lease, LeaseLostError
from catalog.storages import Mounts, StorageUnavailableError, mounts_of
from catalog.tables import RenditionStatus, Storage
from upscaler.encode import CODECS, DEFAULT_CODEC
from upscaler.errors import DownloadError, PlanError, RenderError
from upscaler.files import remove_partials
from upscaler.geometry import Plan, plan
from upscaler.identity import SigningSettings
from upscaler.lease import LeaseKeeper
from upscaler.registry import ModelChoice, ResolvedModel, resolve_model
from upscaler.render import RenderProgress, RenderRequest, RenderResult, render
from upscaler.temporal import DEFAULT_STRENGTH, TemporalSettings

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRYABLE: tuple[type[Exception], ...] = (RenderError, DownloadError, OSError)
_PROGRESS_EVERY_S = 1.0
# How often a job whose rendition another worker holds looks again.
_HELD_POLL_S = 1.0


@dataclass(frozen=True)
class UpscaleSettings:
    """Where renditions and weights live, and which device renders."""

    renditions_dir: Path
    models_dir: Path
    device: str | None = None
    # A render's lease on its rendition: another worker may take it over once this
    # long has passed without a renewal (renewed three times a lease while rendering).
    lease_s: float = STALLED_WORKER_TIMEOUT_S
    # Who signs the renditions' Content Credentials (None: unsigned, for tests of other parts).
    signing: SigningSettings | None = None


@dataclass(frozen=True)
class UpscaleRequest:
    asset: str
    target: str = "4k"
    model: ModelChoice = ModelChoice()
    codec: str = DEFAULT_CODEC
    force: bool = False
    again: bool = False
    temporal: TemporalSettings = TemporalSettings()


@dataclass(frozen=True)
class Requested:
    rendition_id: int
    job_id: int | None
    plan: Plan
    output_path: Path
    existing: bool
    status: str


def request_upscale(
    catalog: Catalog, app: procrastinate.App, request: UpscaleRequest, settings: UpscaleSettings
) -> Requested:
    """Validate, plan and record a rendition, and queue its render (or return the same one)."""
    if request.codec not in CODECS:
        raise PlanError(f"unknown codec {request.codec!r}; choose one of {', '.join(CODECS)}")
    model = resolve_model(request.model)
    if model.file is not None:
        _check_loads(request.model, settings)  # found now, not by a worker later
    model_sha = model.weights_sha256()
    with catalog.session() as session:
        master, picture = _upscalable_master(session, request.asset)
        the_plan = plan(picture, request.target, force=request.force)
        spec = records.RenditionSpec(
            master.id,
            the_plan.label,
            the_plan.width,
            the_plan.height,
            model.name,
            model_sha,
            _parameters(request, model),
        )
        mounts = mounts_of(session)
        if not request.again and (same := records.find_same(session, spec)) is not None:
            shown = mounts.shown(same.output_storage_id, same.output_rel_path or "") if same.output_storage_id else ""
            return Requested(same.id, same.job_id, the_plan, Path(shown), True, same.status)
        storage = records.renditions_storage(session, settings.renditions_dir)
        name = _output_name(session, storage, master, the_plan, model.name, request)
        rendition_id = records.create(session, spec, storage, name).id
        output = Path(mounts.shown(storage.id, name))
        master_storage = mounts.storage(master.storage_id)
    job_id = defer_render(app, rendition_id, master_storage)
    with catalog.session() as session:
        records.set_job(session, rendition_id, job_id)
    return Requested(rendition_id, job_id, the_plan, output, False, RenditionStatus.QUEUED)


def _check_loads(choice: ModelChoice, settings: UpscaleSettings) -> None:
    """Load a local model file once on the CPU: it must be a super-resolution model spandrel knows.

    Registry models are known by name and verified by hash when a worker fetches them.
    """
    import torch

    from upscaler.loader import load_model

    load_model(choice, settings.models_dir, torch.device("cpu"))


def _upscalable_master(session: Session, ref: str) -> tuple[Asset, Picture]:
    master = resolve_asset(session, ref)
    mounts = mounts_of(session)
    shown = mounts.shown_file(master)
    if master.kind != "master":
        raise FootageError(f"{shown} is a rendition; upscale its master instead")
    # Asked for on a host that does not serve the master's storage, it is the render host's to open.
    here = mounts.mount(mounts.storage(master.storage_id))
    if master.status != "indexed" or (here.served and not mounts.file(master).exists()):
        if master.status == "error":
            why = f"could not be indexed ({master.error})"
        elif master.status == "pending":
            why = "is not indexed yet"
        else:
            why = "is missing: it is not at that path any more"
        raise FootageError(f"{shown} {why}; only present, indexed masters can be upscaled")
    if (picture := master.picture) is None:
        raise FootageError(f"{shown} has no known picture size")
    return master, picture


def _parameters(request: UpscaleRequest, model: ResolvedModel) -> dict[str, object]:
    """The request's settings that make two renditions differ, beyond target and weights."""
    parameters: dict[str, object] = {"codec": request.codec, "temporal": request.temporal.parameters()}
    if model.file is not None:
        parameters["model_file"] = str(model.file)
    if request.model.denoise is not None:
        parameters["denoise"] = request.model.denoise
    return parameters


def _output_name(
    session: Session, storage: Storage, master: Asset, the_plan: Plan, model_name: str, request: UpscaleRequest
) -> str:
    """``<stem>.<target>[-variant].<model>.<codec><suffix>`` in the renditions storage, the variant
    saying what sets this request apart from the default one (``2160p-frame-by-frame``,
    ``2160p-temporal0.5``, ``2160p-denoise0.3``); when that name is taken (another version of
    the same request, ``--again``), the label gets the first free number: ``4k-2``, ``4k-3``.
    Files there count as taken where this host has the storage; the catalog's names always do."""
    mount = mounts_of(session).mount(storage)
    folder = mount.folder if mount.served else None
    stem, suffix = PurePosixPath(master.rel_path).stem, CODECS[request.codec].suffix
    named = "-".join([the_plan.label, *_variant(request)])
    label, number = named, 1
    while True:
        name = records.rendition_name(stem, label, model_name, request.codec, suffix)
        if not ((folder is not None and (folder / name).exists()) or _name_taken(session, storage, name)):
            return name
        number += 1
        label = f"{named}-{number}"


def _variant(request: UpscaleRequest) -> list[str]:
    """The parts of a rendition's name for the settings it does not share with a default request."""
    parts: list[str] = []
    if not request.temporal.enabled:
        parts.append("frame-by-frame")
    elif request.temporal.strength != DEFAULT_STRENGTH:
        parts.append(f"temporal{request.temporal.strength:g}")
    if request.model.denoise is not None:
        parts.append(f"denoise{request.model.denoise:g}")
    return parts


def _name_taken(session: Session, storage: Storage, name: str) -> bool:
    taken_by_asset = session.scalar(
        sa.select(Asset.id).where(Asset.storage_id == storage.id, Asset.rel_path == name).limit(1)
    )
    taken_by_request = session.scalar(
        sa.select(Rendition.id)
        .where(Rendition.output_storage_id == storage.id, Rendition.output_rel_path == name)
        .limit(1)
    )
    return bool(taken_by_asset or taken_by_request)


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


def unservable_here(catalog: Catalog, rendition_id: int) -> str | None:
    """Why this host cannot render a rendition (its master's or its output's storage is not
    served here), or None."""
    with catalog.session() as session:
        rendition = records.get(session, rendition_id)
        master = session.get(Asset, rendition.master_id)
    assert master is not None
    mounts = catalog.mounts
    needed = [master.storage_id, rendition.output_storage_id]
    problems = [mounts.mount(mounts.storage(s)).problem for s in needed if s is not None]
    return next((p for p in problems if p is not None), None)


def render_here(catalog: Catalog, settings: UpscaleSettings, rendition_id: int) -> Path | None:
    """Render a recorded rendition in this process, with the attempts a worker would give it.

    For ``upscale --wait`` when no worker runs: its queued job has been withdrawn,
    so nobody else renders it, and the caller indexes the file (no index job is
    queued for it). Returns the rendition file, or ``None`` when it failed or was
    already ended (the catalog says why).
    """
    for _ in range(MAX_ATTEMPTS):
        try:
            return run_render_job(catalog, None, settings, rendition_id)
        except RETRYABLE as exc:
            logger.warning("rendition %s: %s", rendition_id, exc, extra={"rendition_id": rendition_id})
            with catalog.session() as session:
                if records.get(session, rendition_id).status in records.ENDED:
                    return None
        except Exception as exc:  # recorded as the rendition's error by run_render_job
            logger.warning("rendition %s: %s", rendition_id, exc, extra={"rendition_id": rendition_id})
            return None
    return None


def run_render_job(
    catalog: Catalog,
    app: procrastinate.App | None,
    settings: UpscaleSettings,
    rendition_id: int,
    context: procrastinate.JobContext | None = None,
) -> Path | None:
    """Render a recorded rendition: start it, render, then record the outcome and queue its
    indexing on ``app`` (``None``: the caller indexes it).

    Returns the rendition file, or ``None`` when there was nothing to do.
    """
    started = _start(catalog, settings, rendition_id, context)
    if started is None:
        return None
    request, lease, attempt = started
    remove_partials(request.output)
    cancel = threading.Event()
    with LeaseKeeper(catalog, lease, cancel) as keeper:
        try:
            result = render(request, _progress_recorder(catalog, lease, context, cancel), cancel, keeper.confirm)
        except Exception as exc:
            RENDER_FPS.set(0)
            if keeper.lost.is_set():
                logger.warning(
                    "rendition %s: another worker holds it now; this render recorded nothing",
                    rendition_id,
                    extra={"rendition_id": rendition_id},
                )
                return None
            if isinstance(exc, DATABASE_LOST):  # the lease could not be confirmed: nothing was published
                logger.warning(
                    "rendition %s: the catalog database is unreachable; this render's output was discarded",
                    rendition_id,
                )
                raise RenderError("the catalog database went away before the render could be recorded") from exc
            _unless_database_lost(_record_failure, catalog, lease, exc, cancelled=cancel.is_set(), attempt=attempt)
            if cancel.is_set():
                raise procrastinate_errors.JobAborted() from exc
            raise
        RENDER_FPS.set(0)
        try:
            _unless_database_lost(_record_success, catalog, lease, result)
        except LeaseLostError as exc:
            logger.warning("%s", exc)
            return None
    if app is not None:
        storage, rel = catalog.mounts.place(result.output)
        defer_index(app, storage, rel, kind="rendition", work=index_work("rendition"))
    logger.info("rendition %s done: %s", rendition_id, result.output, extra={"rendition_id": rendition_id})
    return result.output


def _unless_database_lost(record: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Record an outcome; without a database to record it in, the job is retried (a render
    failure that may pass), so the rendition never stays "running" with nobody on it."""
    try:
        record(*args, **kwargs)
    except DATABASE_LOST as exc:
        raise RenderError("the catalog database went away before the outcome was recorded") from exc


def _start(
    catalog: Catalog, settings: UpscaleSettings, rendition_id: int, context: procrastinate.JobContext | None
) -> tuple[RenderRequest, Lease, int] | None:
    """Take the rendition's lease, mark it running and say what to render; ``None`` when there is
    nothing to do.

    While another worker holds a live lease (a worker that stopped taking jobs but
    finishes its render, or one the queue took for dead too early) this waits: until
    that render ends (nothing to do) or its lease runs out (this one takes over).
    """
    waiting_for: str | None = None
    while True:
        with catalog.session() as session:
            rendition = records.get(session, rendition_id, lock=True)
            if rendition.status in records.ENDED:
                if waiting_for is not None:
                    logger.info(
                        "rendition %s was finished by %s: nothing to do",
                        rendition_id,
                        waiting_for,
                        extra={"rendition_id": rendition_id},
                    )
                return None
            holder = records.lease_holder(session, rendition)
            if holder is None:
                taken = _take(session, settings, rendition)
                break
        if waiting_for != holder:
            logger.info(
                "rendition %s is being rendered by %s; waiting for it to end",
                rendition_id,
                holder,
                extra={"rendition_id": rendition_id},
            )
            waiting_for = holder
        if context is not None and context.should_abort():
            raise procrastinate_errors.JobAborted()
        time.sleep(_HELD_POLL_S)
    if isinstance(taken, FootageError):
        raise taken  # recorded as the rendition's failure; the job fails with it too
    return taken


def _take(
    session: Session, settings: UpscaleSettings, rendition: Rendition
) -> tuple[RenderRequest, Lease, int] | FootageError:
    """Start the render under a new lease, or fail the rendition (returning why) when its
    output path is not one this worker may write."""
    master = session.get(Asset, rendition.master_id)
    assert master is not None  # the foreign key keeps masters while renditions point at them
    mounts = mounts_of(session)
    try:
        master_file = mounts.file(master)
        output = _safe_output(mounts, rendition, master_file)
    except StorageUnavailableError as exc:
        # Not this host's to do (a share that went away since the worker started): tried again.
        raise RenderError(f"{exc} (on {socket.gethostname()})") from exc
    except FootageError as exc:
        records.fail(rendition, str(exc))
        return exc
    lease = records.start(rendition, f"{socket.gethostname()}:{os.getpid()}", settings.lease_s)
    return _render_request(rendition, master_file, output, settings, lease), lease, rendition.attempts


def _safe_output(mounts: Mounts, rendition: Rendition, master: Path) -> Path:
    """The output path, which comes from the database and is not trusted: a file directly in its
    storage's folder, and never the master."""
    if rendition.output_storage_id is None or rendition.output_rel_path is None:
        raise UnsafePathError(f"rendition {rendition.id} has no output path")
    folder = mounts.path(rendition.output_storage_id, "")
    output = records.ensure_inside(folder, folder / rendition.output_rel_path)
    if output == master.resolve():
        raise UnsafePathError(f"refusing to write over the master {master}")
    return output


def _render_request(
    rendition: Rendition, master: Path, output: Path, settings: UpscaleSettings, lease: Lease
) -> RenderRequest:
    return RenderRequest(
        master=master,
        output=output,
        cache_dir=settings.models_dir,
        target=f"{rendition.target_width}x{rendition.target_height}",
        label=rendition.label,
        # A local model file travels by path (shared storage); its hash is checked again.
        model=ModelChoice(
            name=rendition.parameters.get("model_file") or rendition.model_name,
            sha256=rendition.model_sha256,
            denoise=rendition.parameters.get("denoise"),
        ),
        codec=rendition.parameters.get("codec", DEFAULT_CODEC),
        force=True,
        device=settings.device,
        overwrite=True,
        temporal=TemporalSettings.from_parameters(rendition.parameters.get("temporal")),
        attempt=f"e{lease.epoch}",
        signing=settings.signing,
    )


def _progress_recorder(
    catalog: Catalog, lease: Lease, context: procrastinate.JobContext | None, cancel: threading.Event
) -> Callable[[RenderProgress], None]:
    """Progress for the catalog at most once per ``_PROGRESS_EVERY_S``; a user's abort sets ``cancel``."""
    last = 0.0
    counted = 0

    def progress(p: RenderProgress) -> None:
        nonlocal last, counted
        FRAMES_RENDERED.inc(max(0, p.frames_done - counted))
        counted = max(counted, p.frames_done)
        RENDER_FPS.set(p.fps)
        if context is not None and context.should_abort():
            cancel.set()
        if time.monotonic() - last >= _PROGRESS_EVERY_S:
            last = time.monotonic()
            # Progress is advisory: a render goes on while the database restarts.
            with contextlib.suppress(*DATABASE_LOST), catalog.session() as session:
                records.record_progress(session, lease, p.frames_done, p.frames_total, p.fps)

    return progress


def _record_failure(catalog: Catalog, lease: Lease, exc: Exception, *, cancelled: bool, attempt: int) -> None:
    with catalog.session() as session:
        rendition = records.holding(session, lease)
        if cancelled:
            records.cancel(rendition)
        elif isinstance(exc, RETRYABLE) and attempt < MAX_ATTEMPTS:
            records.retry(rendition, str(exc))
        else:
            records.fail(rendition, str(exc))


def _record_success(catalog: Catalog, lease: Lease, result: RenderResult) -> None:
    """Register the written file as a rendition asset and link it: the rendition is done."""
    values = {
        "width": result.plan.width,
        "height": result.plan.height,
        "size_bytes": result.output.stat().st_size,
        "content_hash": content_hash(result.output),
        "video_codec": result.provenance["output"]["codec"],
        "duration_s": result.duration_s,
    }
    with catalog.session() as session:
        rendition = records.holding(session, lease)
        asset_id = records.register_file(session, result.output, values)
        records.finish(rendition, asset_id, result.frames, result.provenance)
