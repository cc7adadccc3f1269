"""How search requests and answers cross HTTP between ``footage serve`` and the CLI:
filters as query parameters (named as the CLI's options), and JSON answers read back
into the values the terminal views print. Light on purpose: no database, no numpy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.results import (
    KINDS,
    SIDES,
    Annotation,
    Family,
    FamilyHit,
    MomentHit,
    ProxyInfo,
    RenditionInfo,
    SearchFilters,
    SearchOptions,
    Version,
)
from indexer.errors import QueryError


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
        if self.options.sides not in SIDES:
            raise QueryError(f"unknown search side {self.options.sides!r}; known: {', '.join(SIDES)}")
        if self.options.filters.kind not in KINDS:
            raise QueryError(f"unknown --kind {self.options.filters.kind!r}; known: {', '.join(KINDS)}")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def version_from_json(data: dict[str, Any]) -> Version:
    fields = dict(data)
    if fields.get("rendition"):
        r = dict(fields["rendition"])
        r["requested_at"] = _when(r["requested_at"])
        r["finished_at"] = _when(r.get("finished_at"))
        fields["rendition"] = RenditionInfo(**r)
    if fields.get("proxy"):
        fields["proxy"] = ProxyInfo(**fields["proxy"])
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
            picture_score=hit.get("evidence", {}).get("picture_score", hit["score"]),
            words=tuple(hit.get("evidence", {}).get("words", ())),
            named=bool(hit.get("evidence", {}).get("named", False)),
            annotations=tuple(
                Annotation(**{**a, "created_at": datetime.fromisoformat(a["created_at"])})
                for a in hit.get("annotations", ())
            ),
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
        selection=params.get("in") or None,
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
    if filters.selection is not None:
        params["in"] = filters.selection
    return params
