"""The documented JSON answers of search, show, pairs and jobs: one builder each, used by
the CLI's ``--json`` and by ``footage serve``, so both always give the same shapes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog import Catalog
from catalog import renditions as records
from catalog.families import Family, RenditionInfo, Version, asset_details
from catalog.search import KINDS, FamilyHit, MomentHit, SearchFilters, SearchOptions, why_nothing
from cli.settings import models_dir
from indexer import text_tower
from indexer.embed import ClipEmbedder, EmbeddingSettings
from indexer.errors import QueryError
from indexer.query import TextEncoder, search_image, search_like, search_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchRequest:
    """One search as a user asks it: exactly one of text, image and like."""

    text: str | None = None
    image: Path | None = None
    like: str | None = None
    options: SearchOptions = SearchOptions()

    def __post_init__(self) -> None:
        if sum(q is not None for q in (self.text, self.image, self.like)) != 1:
            raise QueryError("give exactly one of: search text, --image FILE or --like ASSET@TIME")
        if self.options.filters.kind not in KINDS:
            raise QueryError(f"unknown --kind {self.options.filters.kind!r}; known: {', '.join(KINDS)}")


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
    return {
        "asset": details.facts,
        "segments_by_model": details.segments_by_model,
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


# Reading answers back (from a running service) into the values the terminal views print.


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def version_from_json(data: dict[str, Any]) -> Version:
    fields = dict(data)
    if fields.get("rendition"):
        r = dict(fields["rendition"])
        r["requested_at"] = _when(r["requested_at"])
        r["finished_at"] = _when(r.get("finished_at"))
        fields["rendition"] = RenditionInfo(**r)
    return Version(**fields)


def family_from_json(data: dict[str, Any]) -> Family:
    return Family(
        master=version_from_json(data["master"]),
        renditions=tuple(version_from_json(v) for v in data["renditions"]),
    )


def hits_from_json(answer: dict[str, Any]) -> list[FamilyHit]:
    return [
        FamilyHit(
            rank=hit["rank"],
            score=hit["score"],
            family=family_from_json(hit),
            moments=tuple(MomentHit(**moment) for moment in hit["moments"]),
        )
        for hit in answer["results"]
    ]


def filters_from_query(params: dict[str, str]) -> SearchFilters:
    """The service's query parameters (named as the CLI's options) as search filters."""

    def number(name: str) -> int | None:
        return int(params[name]) if params.get(name) else None

    has = params.get("has_rendition")
    return SearchFilters(
        kind=params.get("kind", "any"),
        min_height=number("min_height"),
        max_height=number("max_height"),
        path_prefix=params.get("under") or None,
        has_rendition=None if has in (None, "") else has == "true",
        indexed_since=datetime.fromisoformat(params["since"]) if params.get("since") else None,
    )


def query_from_filters(filters: SearchFilters) -> dict[str, str]:
    """The inverse of ``filters_from_query``: what a client sends."""
    params = {"kind": filters.kind}
    if filters.min_height is not None:
        params["min_height"] = str(filters.min_height)
    if filters.max_height is not None:
        params["max_height"] = str(filters.max_height)
    if filters.path_prefix:
        params["under"] = filters.path_prefix
    if filters.has_rendition is not None:
        params["has_rendition"] = "true" if filters.has_rendition else "false"
    if filters.indexed_since is not None:
        params["since"] = filters.indexed_since.isoformat()
    return params
