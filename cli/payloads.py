"""The documented JSON answers of search, show, pairs and jobs: one builder each, used by
the CLI's ``--json`` and by ``footage serve``, so both always give the same shapes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from catalog import Catalog
from catalog import renditions as records
from catalog.families import asset_details
from catalog.results import FamilyHit
from catalog.search import why_nothing
from catalog.thumbnails import with_thumbnails, written_thumbnail
from cli.settings import models_dir
from cli.wire import SearchRequest
from indexer import text_tower
from indexer.embed import ClipEmbedder
from indexer.query import TextEncoder, search_image, search_like, search_text
from indexer.settings import EmbeddingSettings

if TYPE_CHECKING:
    from upscaler.jobs import Requested

logger = logging.getLogger(__name__)


def hit_json(hit: FamilyHit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "master": hit.family.master,
        "renditions": list(hit.family.renditions),
        "moments": list(hit.moments),
    }


def text_encoder(settings: EmbeddingSettings) -> TextEncoder:
    """The cheapest model that answers a text query: the exported text tower when there is
    one, else the full model, exported for next time."""
    cache = models_dir() / "text-towers"
    tower = text_tower.load(settings, cache)
    if tower is not None:
        return tower
    full = ClipEmbedder(settings, text_only=True)
    try:
        text_tower.export(full, cache)
    except (RuntimeError, OSError) as exc:  # tracing a model it cannot follow: load in full next time too
        logger.debug("the text tower of %s was not exported: %s", settings.identity, exc)
    return full


def search(
    catalog: Catalog, settings: EmbeddingSettings, request: SearchRequest, embedder: ClipEmbedder | None = None
) -> tuple[list[FamilyHit], dict[str, Any]]:
    """Run ``request``; returns the hits and the ``search --json`` answer. ``embedder`` is
    loaded when the query needs one and none is given (``--like`` needs none)."""
    if request.like is not None:
        hits = search_like(catalog, settings, request.like, request.options)
    elif request.image is not None:
        hits = search_image(catalog, embedder or ClipEmbedder(settings), request.image, request.options)
    else:
        hits = search_text(catalog, embedder or text_encoder(settings), request.text or "", request.options)
    if catalog.home is not None:
        hits = with_thumbnails(hits, catalog.home)
    hint = None
    if not hits:
        with catalog.session() as session:
            hint = why_nothing(session, settings.identity)
    query = {
        "text": request.text,
        "image": str(request.image) if request.image else None,
        "like": request.like,
        "model": settings.identity,
    }
    answer = {"query": query, "results": [hit_json(h) for h in hits], "hint": hint, "answered_by": "this command"}
    return hits, answer


def show(catalog: Catalog, asset: str) -> dict[str, Any]:
    with catalog.session() as session:
        details = asset_details(session, asset)
    moments: dict[str, list[dict[str, Any]]] = details.moments_by_model
    if catalog.home is not None:
        asset_id = int(details.facts["id"])
        for listed in moments.values():
            for moment in listed:
                moment["thumbnail"] = written_thumbnail(catalog.home, asset_id, float(moment["frame_s"]))
    return {
        "asset": details.facts,
        "segments_by_model": details.segments_by_model,
        "moments_by_model": moments,
        "master": details.family.master,
        "renditions": list(details.family.renditions),
    }


def pairs(catalog: Catalog, asset: str | None) -> dict[str, Any]:
    with catalog.session() as session:
        found = records.pairs(session, asset)
    return {"pairs": [{"master": f.master, "renditions": list(f.renditions)} for f in found]}


def jobs(catalog: Catalog, limit: int) -> dict[str, Any]:
    with catalog.session() as session:
        return {"jobs": records.job_rows(session, limit)}


def upscale_summary(result: Requested) -> dict[str, Any]:
    """What ``footage upscale --json`` (and the service, asked for a rendition) answers."""
    return {
        "rendition_id": result.rendition_id,
        "job_id": result.job_id,
        "status": result.status,
        "existing": result.existing,
        "width": result.plan.width,
        "height": result.plan.height,
        "output": str(result.output_path),
    }
