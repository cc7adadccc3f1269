"""``footage search`` and ``footage show``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.results import KINDS, FamilyHit, SearchFilters, SearchOptions
from cli.client import ask, service_url
from cli.export import check_export_path, export_hits, proxy_path
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
        evidence = f"\n  words: {', '.join(hit.words)}" + (" (named)" if hit.named else "") if hit.words else ""
        notes = [a for a in hit.annotations if a.kind == "note"][:2]
        tags = [a.text for a in hit.annotations if a.kind == "tag"]
        evidence += "".join(f"\n  note: {a.text} ({a.author})" for a in notes)
        evidence += f"\n  tags: {', '.join(dict.fromkeys(tags))}" if tags else ""
        score = f"{hit.score:.3f}" if hit.picture_score is not None else "words"
        found.add_row(str(hit.rank), score, f"{what}{evidence}\n{moments}", res, codec, state)
        for what, res, codec, state in rows[1:]:
            found.add_row("", "", what, res, codec, state)
    stdout().print(found)


def search(
    text: Annotated[
        str | None,
        typer.Argument(
            help="What the shot shows, or what it is called: a clip or folder name, a note, a tag. "
            "name:, note:, tag: and meta: restrict a word."
        ),
    ] = None,
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
    words_only: Annotated[
        bool, typer.Option("--words-only", help="Match names, metadata, notes and tags only (loads no model).")
    ] = False,
    picture_only: Annotated[
        bool, typer.Option("--picture-only", help="Match what the picture shows only, not the words.")
    ] = False,
    within: Annotated[str | None, typer.Option("--in", help="Search only inside this selection.")] = None,
    select_into: Annotated[
        str | None, typer.Option("--select", help="Add each result's best moment to this selection (made if new).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Also write the moments found as an edit list: FILE.edl (CMX 3600), FILE.otio or FILE.csv.",
        ),
    ] = None,
    proxies: Annotated[
        bool,
        typer.Option(
            "--proxies",
            help="With --export: point the edit list at each version's proxy (where made) instead of the "
            "original, for editors offline; OTIO files carry both either way.",
        ),
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
      footage search "interview, two people" --moments 5 --export selects.edl
      footage search "harbour at dusk" --export offline.edl --proxies
      footage search A003C012                      (a clip by name, first)
      footage search "sc12 tk3 close-up" --select "scene 12"
      footage search 'note:"client liked" aerial' --in "opening sequence"
    """
    if export is not None:
        check_export_path(export)
    elif proxies:
        raise typer.BadParameter("--proxies goes with --export FILE")
    if words_only and picture_only:
        raise typer.BadParameter("give --words-only or --picture-only, not both")
    sides = "words" if words_only else "picture" if picture_only else "both"
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
            selection=within,
        ),
        sides=sides,
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
    if select_into is not None:
        _select(select_into, hits)
    if export is not None:
        written = export_hits(hits, export, proxies)
        stderr().print(f"Exported {written} moments to {export}", markup=False, highlight=False)
        if proxies and (without := sum(proxy_path(h, m) is None for h in hits for m in h.moments)):
            stderr().print(
                f"{without} of them have no proxy yet and point at their original (footage proxy --missing)",
                markup=False,
                highlight=False,
            )
    if as_json:
        print_json(answer)
        return
    _print_hits(hits)
    if answer["hint"]:
        stderr().print(f"Hint: {answer['hint']}", markup=False, highlight=False, soft_wrap=True)


def _select(name: str, hits: list[FamilyHit]) -> None:
    from catalog import open_catalog
    from catalog.selections import add_to_selection
    from cli.settings import author

    items = [(hit.moments[0].asset_id, hit.moments[0].frame_s) for hit in hits if hit.moments]
    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        added = add_to_selection(session, name, items, author())
    stderr().print(f"Added {added} moments to selection {name!r}", markup=False, highlight=False)


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
        "sides": options.sides,
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
    from catalog.annotations import annotations_of
    from catalog.families import asset_details
    from cli import payloads

    with open_catalog(catalog_settings()) as catalog:
        if as_json:
            print_json(payloads.show(catalog, asset))
            return
        with catalog.session() as session:
            details = asset_details(session, asset)
            annotations = annotations_of(session, [int(details.facts["id"])])[int(details.facts["id"])]
    print_fields(f"Asset {details.facts['id']}", {k: v for k, v in details.facts.items() if v not in (None, [], {})})
    print_table(
        "Moments",
        ("embedding model", "moments", "vectors"),
        [
            (model, len(details.moments_by_model.get(model, [])), n)
            for model, n in sorted(details.segments_by_model.items())
        ],
    )
    if annotations:
        print_table(
            "Notes and tags",
            ("", "at", "text", "by", "when"),
            [
                (
                    a.kind,
                    "whole" if a.at_s is None else f"{a.at_s:g} s",
                    a.text,
                    a.author,
                    a.created_at.strftime("%Y-%m-%d %H:%M"),
                )
                for a in annotations
            ],
        )
    print_table("Family", ("version", "resolution", "codec", "status"), family_rows(details.family, proxies=True))
    for version in details.family.renditions:
        if version.rendition and version.rendition.provenance:
            print_fields(f"Provenance of rendition {version.rendition.rendition_id}", version.rendition.provenance)
