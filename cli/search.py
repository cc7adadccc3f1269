"""``footage search`` and ``footage show``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from catalog import open_catalog
from catalog.families import asset_details
from catalog.search import KINDS, FamilyHit, SearchFilters, SearchOptions, why_nothing
from cli.output import JSON_OPTION, print_fields, print_json, print_table, stderr, stdout
from cli.settings import catalog_settings, embedding_settings
from cli.views import family_rows
from indexer.embed import ClipEmbedder
from indexer.errors import QueryError
from indexer.query import search_image, search_like, search_text


def _hit_json(hit: FamilyHit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "master": hit.family.master,
        "renditions": list(hit.family.renditions),
        "moments": list(hit.moments),
    }


def _print_hits(hits: list[FamilyHit]) -> None:
    if not hits:
        stdout().print("No matching footage.")
        return
    table = Table(show_lines=True)
    for column in ("#", "score", "footage and moments", "resolution", "codec", "status"):
        table.add_column(column)
    for hit in hits:
        rows = family_rows(hit.family)
        moments = "\n".join(
            f"  {m.timecode or '-'}  {m.frame_s:.1f}s  {m.score:.3f}"
            + ("" if m.path == hit.family.master.path else " (rendition)")
            for m in hit.moments
        )
        what, res, codec, state = rows[0]
        table.add_row(str(hit.rank), f"{hit.score:.3f}", f"{what}\n{moments}", res, codec, state)
        for what, res, codec, state in rows[1:]:
            table.add_row("", "", what, res, codec, state)
    stdout().print(table)


def search(
    text: Annotated[str | None, typer.Argument(help="What the shot shows, in words.")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Find moments that look like this picture.")] = None,
    like: Annotated[
        str | None, typer.Option("--like", help="More like this moment: ASSET@TIME (id or path, seconds or H:MM:SS).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many assets to list.")] = 10,
    moments: Annotated[int, typer.Option("--moments", min=1, max=100, help="Moments to show per asset.")] = 1,
    kind: Annotated[str, typer.Option("--kind", help=f"Which versions may match: {', '.join(KINDS)}.")] = "any",
    min_height: Annotated[
        int | None, typer.Option("--min-height", min=1, help="Only versions at least this tall (pixels).")
    ] = None,
    max_height: Annotated[
        int | None, typer.Option("--max-height", min=1, help="Only versions at most this tall (pixels).")
    ] = None,
    under: Annotated[
        str | None, typer.Option("--under", help="Only files whose path starts with this (a folder or prefix).")
    ] = None,
    has_rendition: Annotated[
        bool | None,
        typer.Option("--has-rendition/--no-rendition", help="Only assets with (or without) a finished rendition."),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="Only footage indexed since this date (YYYY-MM-DD).")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Rank every moment exactly instead of using the index.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Find moments by text, by picture or like another moment.

    Results are grouped per asset family (a master and its renditions): the
    best moment first, with timecode, and every version with its resolution.

    Examples:
      footage search "aerial shot of a harbour at dusk"
      footage search --image still.png --kind master
      footage search --like 42@0:01:15 --moments 3
    """
    given = [q for q in (text, image, like) if q is not None]
    if len(given) != 1:
        raise QueryError("give exactly one of: search text, --image FILE or --like ASSET@TIME")
    if kind not in KINDS:
        raise QueryError(f"unknown --kind {kind!r}; known: {', '.join(KINDS)}")
    options = SearchOptions(
        limit=limit,
        moments=moments,
        exact=exact,
        filters=SearchFilters(
            kind=kind,
            min_height=min_height,
            max_height=max_height,
            path_prefix=str(Path(under).absolute()) if under else None,
            has_rendition=has_rendition,
            indexed_since=since,
        ),
    )
    settings = embedding_settings()
    with open_catalog(catalog_settings()) as catalog:
        if like is not None:
            hits = search_like(catalog, settings, like, options)
        else:
            embedder = ClipEmbedder(settings, text_only=image is None)
            if image is not None:
                hits = search_image(catalog, embedder, image, options)
            else:
                hits = search_text(catalog, embedder, text or "", options)
        hint = None
        if not hits:
            with catalog.session() as session:
                hint = why_nothing(session, settings.identity)
    if as_json:
        query = {"text": text, "image": str(image) if image else None, "like": like, "model": settings.identity}
        print_json({"query": query, "results": [_hit_json(h) for h in hits], "hint": hint})
        return
    _print_hits(hits)
    if hint:
        stderr().print(f"Hint: {hint}", markup=False, highlight=False, soft_wrap=True)


def show(
    asset: Annotated[str, typer.Argument(help="Asset id or path.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show everything known about an asset: media facts, moments, family and provenance.

    Example: footage show /media/rushes/A001_C002.mov
    """
    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        details = asset_details(session, asset)
    if as_json:
        print_json(
            {
                "asset": details.facts,
                "segments_by_model": details.segments_by_model,
                "master": details.family.master,
                "renditions": list(details.family.renditions),
            }
        )
        return
    print_fields(f"Asset {details.facts['id']}", {k: v for k, v in details.facts.items() if v not in (None, [], {})})
    print_table("Moments", ("embedding model", "vectors"), sorted(details.segments_by_model.items()))
    print_table("Family", ("version", "resolution", "codec", "status"), family_rows(details.family))
    for version in details.family.renditions:
        if version.rendition and version.rendition.provenance:
            print_fields(f"Provenance of rendition {version.rendition.rendition_id}", version.rendition.provenance)
