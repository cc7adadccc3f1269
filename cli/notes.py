"""``footage note``, ``tag``, ``untag``, ``select``, ``selections`` and ``selection``: what
people write about shots and the collections they build, shared through the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.export import check_export_path, export_hits
from cli.output import JSON_OPTION, print_json, print_table, stderr, stdout
from cli.settings import author, catalog_settings, embedding_settings

_MOMENT_HELP = "Asset id or path, with @TIME for one moment (seconds or H:MM:SS), e.g. 42@0:01:15."


def _moment(session: Any, ref: str) -> tuple[Any, float | None]:
    """The asset and time of ``ASSET[@TIME]``; a path holding an ``@`` still reads as a path."""
    from catalog.families import resolve_asset
    from indexer.errors import QueryError
    from indexer.query import parse_time

    name, sep, when = ref.rpartition("@")
    if sep and name:
        try:
            at_s = parse_time(when)
        except QueryError:
            pass
        else:
            return resolve_asset(session, name), at_s
    return resolve_asset(session, ref), None


def _where(asset_id: int, at_s: float | None) -> str:
    return f"asset {asset_id}" + (f" at {at_s:g} s" if at_s is not None else "")


def note(
    moment: Annotated[str, typer.Argument(help=_MOMENT_HELP)],
    text: Annotated[str, typer.Argument(help="The note, in quotes.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a note on an asset or a moment; searchable at once (and with note:WORD).

    Example: footage note A003C012_230101_R2AB.mov@0:00:12 "hero shot, client liked this"
    """
    from catalog import open_catalog
    from catalog.annotations import add_note

    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        asset, at_s = _moment(session, moment)
        added = add_note(session, asset, at_s, text, author())
    if as_json:
        print_json(added)
        return
    stdout().print(f"Noted on {_where(added.asset_id, added.at_s)} by {added.author}.", markup=False, highlight=False)


def tag(
    moment: Annotated[str, typer.Argument(help=_MOMENT_HELP)],
    words: Annotated[list[str], typer.Argument(help="One or more tag words.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Tag an asset or a moment with keywords; searchable at once (and with tag:WORD).

    Example: footage tag 42@12.5 hero drone
    """
    from catalog import open_catalog
    from catalog.annotations import add_tags

    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        asset, at_s = _moment(session, moment)
        added = add_tags(session, asset, at_s, words, author())
    if as_json:
        print_json({"asset_id": asset.id, "at_s": at_s, "added": added})
        return
    said = ", ".join(added) if added else "nothing new (it had those tags)"
    stdout().print(f"Tagged {_where(asset.id, at_s)}: {said}.", markup=False, highlight=False)


def untag(
    moment: Annotated[str, typer.Argument(help=_MOMENT_HELP)],
    words: Annotated[list[str], typer.Argument(help="The tag words to take off.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Take tags off an asset or a moment. Exit code 5 when it had none of them."""
    from catalog import NotFoundError, open_catalog
    from catalog.annotations import remove_tags

    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        asset, at_s = _moment(session, moment)
        removed = remove_tags(session, asset, at_s, words)
    if as_json:
        print_json({"asset_id": asset.id, "at_s": at_s, "removed": removed})
    elif removed:
        stdout().print(f"Untagged {_where(asset.id, at_s)}: {', '.join(removed)}.", markup=False, highlight=False)
    if not removed:
        raise NotFoundError(f"{_where(asset.id, at_s)} has no tag {', '.join(words)}")


def select(
    name: Annotated[str, typer.Argument(help="The selection's name (made if new).")],
    moments: Annotated[list[str], typer.Argument(help=_MOMENT_HELP + " Without @TIME, the whole asset.")],
) -> None:
    """Add moments or whole assets to a named selection the team shares, in the order given.

    Example: footage select "opening sequence" 42@0:01:15 43@12 A001_C002.mov
    """
    from catalog import open_catalog
    from catalog.selections import add_to_selection

    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        items = [(asset.id, at_s) for asset, at_s in (_moment(session, m) for m in moments)]
        added = add_to_selection(session, name, items, author())
    stdout().print(
        f"Added {added} of {len(items)} to selection {name!r}"
        + ("" if added == len(items) else " (the others were in it already)")
        + ".",
        markup=False,
        highlight=False,
    )


def selections(as_json: bool = JSON_OPTION) -> None:
    """List the team's selections, most recently changed first."""
    from catalog import open_catalog
    from catalog.selections import summaries

    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        found = summaries(session)
    if as_json:
        print_json({"selections": found})
        return
    if not found:
        stdout().print(
            'No selections yet: `footage select NAME ASSET@TIME...` or `footage search "..." --select NAME`.'
        )
        return
    print_table(
        "Selections",
        ("name", "entries", "made by", "changed"),
        [(s.name, s.entries, s.author, s.updated_at.strftime("%Y-%m-%d %H:%M")) for s in found],
    )


def selection(
    name: Annotated[str, typer.Argument(help="The selection's name.")],
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write it as an edit list, in its order: FILE.edl, FILE.otio or FILE.csv."),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a selection in its order, or export it for an editor.

    Example: footage selection "opening sequence" --export opening.otio
    """
    from catalog import open_catalog
    from catalog.selections import entries, selection_hits

    if export is not None:
        check_export_path(export)
    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        listed = entries(session, name)
        hits = selection_hits(session, name, embedding_settings().identity) if export is not None else []
    if export is not None:
        written = export_hits(hits, export)
        stderr().print(f"Exported {written} entries of {name!r} to {export}", markup=False, highlight=False)
    if as_json:
        print_json({"name": name, "entries": listed})
        return
    print_table(
        f"Selection {name!r}",
        ("#", "asset", "at", "file", "status", "added by"),
        [
            (e.position + 1, e.asset_id, "whole" if e.at_s is None else f"{e.at_s:g} s", e.path, e.status, e.author)
            for e in listed
        ],
    )
