"""``footage index``: index files or folders once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from catalog import Catalog, open_catalog
from catalog.assets import assets_needing_model
from cli.output import JSON_OPTION, print_json, print_table, stderr, stdout
from cli.progress import file_progress
from cli.settings import catalog_settings, embedding_settings
from indexer.embed import ClipEmbedder
from indexer.index import OUTCOMES, IndexOptions, IndexProgress, IndexResult, collect_files, index_file
from indexer.sampling import DEFAULT_MAX_GAP_S, SamplingOptions

KEYFRAMES_OPTION = typer.Option("--keyframes", help="Decode keyframes only: several times faster, coarser moments.")
MAX_GAP_OPTION = typer.Option("--max-gap", min=0.1, help="Longest stretch of a shot without a moment, in seconds.")


def print_results(results: list[IndexResult], as_json: bool) -> None:
    counts = Counter(r.outcome for r in results)
    if as_json:
        print_json({"counts": {o: counts.get(o, 0) for o in OUTCOMES}, "files": results})
        return
    if not results:
        return  # the caller says there was nothing to do, instead of an empty table
    print_table("Indexed", ("outcome", "files"), [(o, counts[o]) for o in OUTCOMES if counts.get(o)])
    # Files that need a word: what went wrong, or where a moved file came from.
    told = [r for r in results if r.outcome in ("failed", "skipped", "moved")]
    if told:
        print_table(None, ("file", "outcome", "reason"), [(r.path, r.outcome, r.message) for r in told])


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders are searched recursively).")],
    keyframes: Annotated[bool, KEYFRAMES_OPTION] = False,
    max_gap: Annotated[float, MAX_GAP_OPTION] = DEFAULT_MAX_GAP_S,
    as_json: bool = JSON_OPTION,
) -> None:
    """Index video files once: probe, sample moments, embed them with CLIP.

    Unchanged files are skipped; bad files are recorded with their reason and
    the rest carry on. Exits 1 when any file failed.

    Example: footage index /media/rushes /media/extra/clip.mov
    """
    files = collect_files(paths)
    options = IndexOptions(sampling=SamplingOptions(max_gap_s=max_gap, keyframes_only=keyframes))
    with open_catalog(catalog_settings()) as catalog:
        results = _index_all(catalog, ClipEmbedder(embedding_settings()), files, options)
    _finish(results, as_json, "No video files found.")


def _finish(results: list[IndexResult], as_json: bool, nothing: str) -> None:
    print_results(results, as_json)
    if not as_json and not results:
        stdout().print(nothing)
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


def _index_all(catalog: Catalog, embedder: ClipEmbedder, files: list[Path], options: IndexOptions) -> list[IndexResult]:
    results: list[IndexResult] = []
    with file_progress() as progress:
        task = progress.add_task("Indexing", total=len(files))
        # Within a file: seconds of footage done, so a long master shows its rate and ETA.
        within = progress.add_task("", total=None, visible=False)
        for path in files:
            progress.update(task, description=f"Indexing {escape(path.name)}")

            def show(p: IndexProgress) -> None:
                progress.update(
                    within, description=f"  {p.stage} (s)", completed=p.done_s, total=p.total_s, visible=True
                )

            progress.reset(within, total=None, visible=False)
            results.append(index_file(catalog, embedder, path, options, show))
            progress.advance(task)
        progress.update(within, visible=False)
        progress.update(task, description="Indexed")
    return results


def reindex(
    everything: Annotated[
        bool, typer.Option("--all", help="Re-embed every asset, not only those the current model has not seen.")
    ] = False,
    keyframes: Annotated[bool, KEYFRAMES_OPTION] = False,
    max_gap: Annotated[float, MAX_GAP_OPTION] = DEFAULT_MAX_GAP_S,
    as_json: bool = JSON_OPTION,
) -> None:
    """Embed catalogued assets with the current CLIP model (FOOTAGE_CLIP_MODEL).

    Search only uses vectors of the current model, so after changing models run
    this once; vectors of other models are kept, never mixed in.

    Example: FOOTAGE_CLIP_MODEL=ViT-L-14 FOOTAGE_CLIP_PRETRAINED=laion2b_s32b_b82k footage reindex
    """
    settings = embedding_settings()
    options = IndexOptions(sampling=SamplingOptions(max_gap_s=max_gap, keyframes_only=keyframes), force=True)
    with open_catalog(catalog_settings()) as catalog:
        with catalog.session() as session:
            needing = assets_needing_model(session, settings.identity, everything)
        # Files on storages this host does not serve are another host's to reindex.
        served = {m.storage.id for m in catalog.mounts.mounts() if m.served}
        files = [catalog.mounts.file(a) for a in needing if a.storage_id in served]
        if len(files) < len(needing):
            stderr().print(
                f"{len(needing) - len(files)} assets lie on storages this host does not serve"
                " (`footage storage list`): reindex them on a host that does"
            )
        embedder = ClipEmbedder(settings)
        results = _index_all(catalog, embedder, files, options)
    _finish(results, as_json, f"Every asset already has vectors from {settings.identity}.")
