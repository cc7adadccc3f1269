"""``footage upscale``, ``pairs``, ``link`` and ``jobs``: renditions through the queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from catalog import Catalog, FootageError, NotFoundError, open_catalog
from catalog import renditions as records
from catalog.jobs import STALLED_WORKER_TIMEOUT_S, cancel_job, job_app, job_status, live_workers, take_over
from catalog.results import Family
from catalog.storages import StorageUnavailableError
from catalog.tables import RenditionStatus
from cli import payloads
from cli.errors import FootageGroup
from cli.output import JSON_OPTION, file_size, print_json, print_table, stderr, stdout
from cli.progress import FrameProgress
from cli.service import upscale_settings
from cli.settings import catalog_settings, embedding_settings, proxy_mode, renditions_dir
from cli.upscaling import (
    CODEC_OPTION,
    DENOISE_OPTION,
    MODEL_OPTION,
    SHA_OPTION,
    STRENGTH_OPTION,
    TARGET_OPTION,
    TEMPORAL_OPTION,
    TemporalMode,
    temporal_settings,
)
from cli.views import family_rows, proxy_row
from indexer.embed import ClipEmbedder
from indexer.index import IndexOptions, index_file
from upscaler.encode import DEFAULT_CODEC
from upscaler.registry import DEFAULT_MODEL, ModelChoice
from upscaler.temporal import DEFAULT_STRENGTH


def upscale(
    asset: Annotated[str, typer.Argument(help="Id or path of an indexed master.")],
    to: Annotated[str, TARGET_OPTION] = "4k",
    model: Annotated[str, MODEL_OPTION] = DEFAULT_MODEL,
    codec: Annotated[str, CODEC_OPTION] = DEFAULT_CODEC,
    denoise: Annotated[float | None, DENOISE_OPTION] = None,
    sha256: Annotated[str | None, SHA_OPTION] = None,
    temporal: Annotated[TemporalMode, TEMPORAL_OPTION] = TemporalMode.on,
    strength: Annotated[float, STRENGTH_OPTION] = DEFAULT_STRENGTH,
    force: Annotated[bool, typer.Option("--force", help="Allow a target that is not larger than the master.")] = False,
    again: Annotated[bool, typer.Option("--again", help="Render anew even if the same rendition exists.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the render until done (renders here if no worker runs).")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Request an upscaled rendition of a master: recorded, queued, rendered by a worker.

    Asking again for the same master, target, model and parameters returns the
    existing rendition. With --wait and no worker running, this command
    renders it itself, so one command is enough on one machine.

    Example: footage upscale /media/rushes/A001_C002.mov --to 4k --wait
    """
    from upscaler.jobs import UpscaleRequest, request_upscale

    settings = upscale_settings()
    request = UpscaleRequest(
        asset=asset,
        target=to,
        model=ModelChoice(name=model, sha256=sha256, denoise=denoise),
        codec=codec,
        force=force,
        again=again,
        temporal=temporal_settings(temporal, strength),
    )
    with open_catalog(catalog_settings()) as catalog:
        defer_app = job_app(catalog, asynchronous=False)
        with defer_app.open():
            result = request_upscale(catalog, defer_app, request, settings)
        summary = payloads.upscale_summary(result)
        if not as_json:
            verb = "Already requested" if result.existing else "Queued"
            stdout().print(
                f"{verb}: rendition {result.rendition_id} -> {result.plan.size} "
                f"({result.plan.display_aspect_ratio.numerator}:{result.plan.display_aspect_ratio.denominator}) "
                f"at {result.output_path} ({result.status})"
            )
        if wait and result.status not in records.ENDED:
            summary["status"] = _follow(catalog, result.rendition_id, result.job_id)
    if as_json:
        print_json(summary)
    if summary["status"] == RenditionStatus.FAILED:
        raise typer.Exit(1)


def _follow(catalog: Catalog, rendition_id: int, job_id: int | None) -> str:
    """Show progress until the rendition ends. With no worker alive, this process takes the job
    over and renders (then indexes) this rendition itself, and nothing else of the queue."""
    here = _render_here_if_idle(catalog, rendition_id, job_id)
    bar = FrameProgress(f"Rendition {rendition_id}")
    orphaned_since: float | None = None
    try:
        while True:
            with catalog.session() as session:
                row = records.get(session, rendition_id)
                status, error = row.status, row.error
                if row.frames_done:
                    bar.update(row.frames_done, row.frames_total, row.fps or 0.0)
            rendering_here = here is not None and here.is_alive()
            if status in records.ENDED and not rendering_here:
                break
            if here is not None and not rendering_here:
                raise FootageError(f"rendition {rendition_id} is {status}: the render here stopped; see the log above")
            orphaned_since = _unless_orphaned(catalog, rendition_id, status, here is None, orphaned_since)
            time.sleep(0.5)
    finally:
        bar.close()
    if status == RenditionStatus.FAILED:
        raise FootageError(f"rendition {rendition_id} failed: {error}")
    stderr().print(f"Rendition {rendition_id}: {status}")
    return status


def _render_here_if_idle(catalog: Catalog, rendition_id: int, job_id: int | None) -> threading.Thread | None:
    """With no worker alive, take the job over and render it on a thread of this process."""
    from upscaler.jobs import unservable_here

    if job_id is None or live_workers(catalog) > 0:
        return None
    if (problem := unservable_here(catalog, rendition_id)) is not None:
        raise StorageUnavailableError(
            f"{problem}: rendition {rendition_id} cannot be rendered here; it stays queued for a worker that serves it"
        )
    with job_app(catalog, asynchronous=False).open() as app:
        if not take_over(app, job_id):
            return None  # a worker took it meanwhile: follow that one
    with catalog.session() as session:
        records.set_job(session, rendition_id, None)  # its job is gone: the work is done here
    stderr().print("No worker is running: rendering here.")
    here = threading.Thread(target=_render_and_index, args=(catalog, rendition_id), daemon=True)
    here.start()
    return here


def _unless_orphaned(
    catalog: Catalog, rendition_id: int, status: str, by_a_worker: bool, since: float | None
) -> float | None:
    """When the worker that had the job is gone, waiting past the stall timeout is waiting for
    nobody: say so. Returns since when no worker has been alive (``None`` while one is)."""
    if not by_a_worker or live_workers(catalog) > 0:
        return None
    since = since or time.monotonic()
    if time.monotonic() - since > STALLED_WORKER_TIMEOUT_S:
        raise FootageError(
            f"rendition {rendition_id} is {status} but no worker is running; "
            "start `footage worker`, or run `footage upscale --wait` again"
        )
    return since


def _render_and_index(catalog: Catalog, rendition_id: int) -> None:
    """This request's work only: render the rendition, index the file it made, and make its
    proxy, as a worker's jobs would (the proxy costs about 2% of the render on a CPU:
    bench/proxy_speed.py)."""
    from catalog import proxies
    from upscaler.jobs import render_here
    from upscaler.proxy_jobs import make_recorded_proxy

    output = render_here(catalog, upscale_settings(), rendition_id)
    if output is None:
        return
    indexed = index_file(catalog, ClipEmbedder(embedding_settings()), output, IndexOptions(kind="rendition"))
    if indexed.outcome != "indexed" or indexed.asset_id is None or proxy_mode() == "none":
        return
    with catalog.session() as session:
        proxy = proxies.request(session, indexed.asset_id)
        proxy_id = proxy.id if proxy is not None else None
    if proxy_id is not None:
        make_recorded_proxy(catalog, renditions_dir(), proxy_id)


def pairs(
    asset: Annotated[str | None, typer.Argument(help="Only this asset's family (id or path).")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Masters and their renditions side by side: resolution, codec, size, model, status.

    Example: footage pairs --json
    """
    with open_catalog(catalog_settings()) as catalog:
        if as_json:
            print_json(payloads.pairs(catalog, asset))
            return
        with catalog.session() as session:
            found = records.pairs(session, asset)
    if not found:
        stdout().print("No renditions yet. Request one with `footage upscale ASSET --to 4k`.")
        return
    rows: list[tuple[str | Text, ...]] = []
    for family in found:
        duration = f"{family.master.duration_s:.1f}s" if family.master.duration_s else "-"
        for i, version in enumerate((family.master, *family.renditions)):
            what, res, codec, status = family_rows(Family(version, ()))[0]
            when = version.rendition.finished_at or version.rendition.requested_at if version.rendition else None
            stamp = when.strftime("%Y-%m-%d %H:%M") if when else "-"
            rows.append((what, res, codec, duration if i == 0 else file_size(version.size_bytes), status, stamp))
            if (proxy := proxy_row(version)) is not None:
                rows.append((*proxy[:3], file_size(version.proxy.size_bytes if version.proxy else None), proxy[3], "-"))
    print_table("Pairs", ("master / rendition", "resolution", "codec", "duration / size", "status", "date"), rows)


def link(
    rendition: Annotated[str, typer.Argument(help="The rendition file (id or path, already indexed).")],
    to: Annotated[str, typer.Option("--to", help="Its master (id or path).")],
) -> None:
    """Declare a file made by another tool a rendition of a master.

    Example: footage link /media/A001_4k_topaz.mov --to /media/A001.mov
    """
    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        made = records.link(session, rendition, to)
        made_id = made.id
    stdout().print(f"Linked as rendition {made_id}.")


jobs = typer.Typer(cls=FootageGroup, help="The job queue: list and cancel jobs.", invoke_without_command=True)


@jobs.callback()
def jobs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many jobs, newest first.")] = 50,
    as_json: bool = JSON_OPTION,
) -> None:
    """List queued, running and recent jobs with progress, worker and ETA; a queued job that no
    running worker would take says what it waits for (a worker serving its storage).

    Example: footage jobs --json; footage jobs cancel 12
    """
    if ctx.invoked_subcommand is not None:
        return
    with open_catalog(catalog_settings()) as catalog:
        answer = payloads.jobs(catalog, limit)
    if as_json:
        print_json(answer)
        return
    rows = answer["jobs"]
    print_table(
        "Jobs",
        ("id", "task", "status", "what", "progress", "fps", "ETA", "worker", "attempts", "error"),
        [
            (
                r["job_id"],
                r["task"].removeprefix("footage."),
                r["status"],
                Path(r["what"]).name if r["what"] else "-",
                f"{r['progress']:.0%}" if r["progress"] is not None else "-",
                f"{r['fps']:.1f}" if r["fps"] else "-",
                f"{r['eta_s']:.0f}s" if r["eta_s"] is not None else "-",
                r["worker"],
                r["attempts"],
                r["error"] or (f"waiting for {r['waiting_for']}" if r["waiting_for"] else "-"),
            )
            for r in rows
        ],
    )


@jobs.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="The job id (see `footage jobs`).")]) -> None:
    """Cancel a queued job, or abort a running one (its partial file is discarded).

    Example: footage jobs cancel 12
    """
    with open_catalog(catalog_settings()) as catalog:
        app = job_app(catalog, asynchronous=False)
        with app.open():
            cancelled = cancel_job(app, job_id)
            status = job_status(catalog, job_id)
        with catalog.session() as session:
            records.cancel_waiting(session, job_id)
    if not cancelled:
        if status is None:
            raise NotFoundError(f"no job {job_id} in the queue; `footage jobs` lists them")
        raise FootageError(f"job {job_id} has already ended ({status}); nothing to cancel")
    stdout().print(f"Job {job_id}: cancel requested.")
