"""The documented JSON answers of search, show, pairs and jobs: one builder each, used by
the CLI's ``--json`` and by ``footage serve``, so both always give the same shapes."""

from __future__ import annotations

import dataclasses
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
        # Which evidence found it: the query terms its words matched (and whether a name
        # holds one exactly), and the picture's similarity (None: the words alone).
        "annotations": list(hit.annotations),
        "evidence": {
            "words": list(hit.words),
            "named": hit.named,
            "picture_score": None if hit.picture_score is None else round(hit.picture_score, 6),
        },
    }


def text_encoder(settings: EmbeddingSettings) -> TextEncoder:
    """The cheapest model that answers a text query: the exported text tower when there is
    one, else the full model, exported for next time."""
    cache = models_dir() / "text-towers"
    tower = text_tower.load(settings, cache)
    if tower is not None:
        return tower
    # Unless a device is named, on the CPU even on a GPU host: one short text needs no CUDA
    # start-up, and only a model on the CPU is exported, so that the next search needs no torch
    # (on the GPU's default device the tower was never exported and every search loaded CLIP).
    full = ClipEmbedder(dataclasses.replace(settings, device=settings.device or "cpu"), text_only=True)
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
        hits = search_text(
            catalog, settings.identity, lambda: embedder or text_encoder(settings), request.text or "", request.options
        )
    hits = with_thumbnails(hits, catalog.thumbnail_dirs())
    hits = with_annotations(catalog, hits)
    hint = None
    if not hits:
        with catalog.session() as session:
            hint = why_nothing(session, settings.identity)
    query = {
        "text": request.text,
        "image": str(request.image) if request.image else None,
        "like": request.like,
        "model": settings.identity,
        "sides": request.options.sides,
        "in": request.options.filters.selection,
    }
    answer = {"query": query, "results": [hit_json(h) for h in hits], "hint": hint, "answered_by": "this command"}
    return hits, answer


def with_annotations(catalog: Catalog, hits: list[FamilyHit]) -> list[FamilyHit]:
    """Each family's master's notes and tags, in one query for the page of results."""
    from catalog.annotations import annotations_of

    ids = [h.family.master.asset_id for h in hits if h.family.master.asset_id is not None]
    if not ids:
        return hits
    with catalog.session() as session:
        found = annotations_of(session, ids)
    return [dataclasses.replace(h, annotations=tuple(found.get(h.family.master.asset_id or 0, ()))) for h in hits]


def show(catalog: Catalog, asset: str) -> dict[str, Any]:
    from catalog.annotations import annotations_of

    with catalog.session() as session:
        details = asset_details(session, asset)
        annotations = annotations_of(session, [int(details.facts["id"])])[int(details.facts["id"])]
    moments: dict[str, list[dict[str, Any]]] = details.moments_by_model
    asset_id, thumbnail_dirs = int(details.facts["id"]), catalog.thumbnail_dirs()
    for listed in moments.values():
        for moment in listed:
            moment["thumbnail"] = written_thumbnail(thumbnail_dirs, asset_id, float(moment["frame_s"]))
    return {
        "asset": details.facts,
        "segments_by_model": details.segments_by_model,
        "moments_by_model": moments,
        "master": details.family.master,
        "renditions": list(details.family.renditions),
        "annotations": annotations,
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


def annotate(catalog: Catalog, body: dict[str, Any], author: str) -> dict[str, Any]:
    """A note, tags added or tags taken off an asset or moment, or a note removed, as the page
    sends them: ``{"asset_id", "at_s"?, "note"?, "tags"?, "untag"?, "unnote"?}``; the asset's
    notes and tags after."""
    from catalog.annotations import add_note, add_tags, annotations_of, remove_note, remove_tags
    from catalog.families import resolve_asset

    at_s = float(body["at_s"]) if body.get("at_s") is not None else None
    with catalog.session() as session:
        asset = resolve_asset(session, str(body["asset_id"]))
        if body.get("note"):
            add_note(session, asset, at_s, str(body["note"]), author)
        if body.get("tags"):
            add_tags(session, asset, at_s, [str(w) for w in body["tags"]], author)
        if body.get("untag"):
            remove_tags(session, asset, at_s, [str(w) for w in body["untag"]])
        if body.get("unnote") is not None:
            remove_note(session, asset.id, int(body["unnote"]))
        return {"asset_id": asset.id, "annotations": annotations_of(session, [asset.id])[asset.id]}


def selections(catalog: Catalog) -> dict[str, Any]:
    from catalog.selections import summaries

    with catalog.session() as session:
        return {"selections": summaries(session)}


def selection(catalog: Catalog, name: str, model: str) -> tuple[list[FamilyHit], dict[str, Any]]:
    """A selection's entries, and the same as results (one moment each, in its order)."""
    from catalog.selections import entries, selection_hits

    with catalog.session() as session:
        listed = entries(session, name)
        hits = selection_hits(session, name, model)
    hits = with_thumbnails(hits, catalog.thumbnail_dirs())
    hits = with_annotations(catalog, hits)
    return hits, {"name": name, "entries": listed, "results": [hit_json(h) for h in hits]}


def select(catalog: Catalog, body: dict[str, Any], author: str) -> dict[str, Any]:
    """Add to a selection (``add``: ["ASSET_ID@FRAME_MS", ...], made if new) or put it in a new
    ``order`` (its positions); answers the selection's entries."""
    from catalog.selections import add_to_selection, entries, reorder

    name = str(body["name"])
    with catalog.session() as session:
        added = 0
        if body.get("add"):
            items = []
            for item in body["add"]:
                asset_id, _, ms = str(item).partition("@")
                items.append((int(asset_id), int(ms) / 1000 if ms else None))
            added = add_to_selection(session, name, items, author)
        if body.get("order") is not None:
            reorder(session, name, [int(p) for p in body["order"]])
        return {"name": name, "added": added, "entries": entries(session, name)}
