"""``footage search`` and ``footage show``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.results import KINDS, FamilyHit, SearchFilters, SearchOptions
from cli.client import ask, service_url
from cli.export import check_export_path, export_hits
from cli.output import JSON_OPTION, add_columns, print_fields, print_json, print_table, stderr, stdout, table
from cli.settings import catalog_settings, embedding_settings, footage_home
from cli.views import family_rows
from cli.wire import SearchRequest, hits_from_json, query_from_filters

# The catalog, the model and the payload builders are imported when a command needs
# them: a search that a running `footage serve` answers starts without them.


def _print_hits(hits: list[FamilyHit]) -> None:
    if not hits:
        stdout().print("No matching footage.")
        return
    found = table(show_lines=True)
    add_columns(found, ("#", "score", "footage and moments", "resolution", "codec", "status"))
    for hit in hits:
        rows = family_rows(hit.family)
        moments = "\n".join(
            f"  {m.timecode or '-'}  {m.frame_s:.1f}s  {m.score:.3f}"
            + ("" if m.path == hit.family.master.path else " (rendition)")
            for m in hit.moments
        )
        what, res, codec, state = rows[0]
        found.add_row(str(hit.rank), f"{hit.score:.3f}", f"{what}\n{moments}", res, codec, state)
        for what, res, codec, state in rows[1:]:
            found.add_row("", "", what, res, codec, state)
    stdout().print(found)


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
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Also write the moments found as an edit list: FILE.edl (CMX 3600), FILE.otio or FILE.csv.",
        ),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Find moments by text, by picture or like another moment.

    Results are grouped per asset family (a master and its renditions): the
    best moment first, with timecode, and every version with its resolution.

    Examples:
      footage search "aerial shot of a harbour at dusk"
      footage search --image still.png --kind master
      footage search --like 42@0:01:15 --moments 3
      footage search "interview, two people" --moments 5 --export selects.edl
    """
    if export is not None:
        check_export_path(export)
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
    request = SearchRequest(text=text, image=image, like=like, options=options)
    settings = embedding_settings()
    answer = _ask_service(request, settings.identity)
    if answer is not None:
        hits = hits_from_json(answer)
    else:
        from catalog import open_catalog
        from cli import payloads

        with open_catalog(catalog_settings()) as catalog:
            hits, answer = payloads.search(catalog, settings, request)
    if export is not None:
        written = export_hits(hits, export)
        stderr().print(f"Exported {written} moments to {export}", markup=False, highlight=False)
    if as_json:
        print_json(answer)
        return
    _print_hits(hits)
    if answer["hint"]:
        stderr().print(f"Hint: {answer['hint']}", markup=False, highlight=False, soft_wrap=True)


def _ask_service(request: SearchRequest, model: str) -> dict[str, Any] | None:
    """The answer of a running ``footage serve`` that searches with the same model, or None.
    A picture query stays in-process: the picture is on this machine."""
    url = service_url(footage_home())
    if url is None or request.image is not None:
        return None
    options = request.options
    params = {
        "model": model,
        "limit": str(options.limit),
        "moments": str(options.moments),
        "exact": "true" if options.exact else "false",
        **query_from_filters(options.filters),
    }
    params.update({"like": request.like} if request.like is not None else {"q": request.text or ""})
    return ask(url, "/api/search", params)


def show(
    asset: Annotated[str, typer.Argument(help="Asset id or path.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show everything known about an asset: media facts, moments, family and provenance.

    Example: footage show /media/rushes/A001_C002.mov
    """
    from catalog import open_catalog
    from catalog.families import asset_details
    from cli import payloads

    with open_catalog(catalog_settings()) as catalog:
        if as_json:
            print_json(payloads.show(catalog, asset))
            return
        with catalog.session() as session:
            details = asset_details(session, asset)
    print_fields(f"Asset {details.facts['id']}", {k: v for k, v in details.facts.items() if v not in (None, [], {})})
    print_table(
        "Moments",
        ("embedding model", "moments", "vectors"),
        [
            (model, len(details.moments_by_model.get(model, [])), n)
            for model, n in sorted(details.segments_by_model.items())
        ],
    )
    print_table("Family", ("version", "resolution", "codec", "status"), family_rows(details.family))
    for version in details.family.renditions:
        if version.rendition and version.rendition.provenance:
            print_fields(f"Provenance of rendition {version.rendition.rendition_id}", version.rendition.provenance)
