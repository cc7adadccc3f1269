"""``footage index``: index files or folders once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from catalog import open_catalog
from cli.output import JSON_OPTION, console, print_json, print_table
from cli.progress import file_progress
from cli.settings import catalog_settings, embedding_settings
from indexer.embed import ClipEmbedder
from indexer.index import OUTCOMES, IndexOptions, IndexResult, collect_files, index_file
from indexer.sampling import DEFAULT_MAX_GAP_S, SamplingOptions

KEYFRAMES_OPTION = typer.Option(
    "--keyframes", help="Decode keyframes only: several times faster, coarser moments."
)
MAX_GAP_OPTION = typer.Option(
    "--max-gap", min=0.1, help="Longest stretch of a shot without a moment, in seconds."
)


def print_results(results: list[IndexResult], as_json: bool) -> None:
    counts = Counter(r.outcome for r in results)
    if as_json:
        print_json({"counts": {o: counts.get(o, 0) for o in OUTCOMES}, "files": results})
        return
    print_table("Indexed", ("outcome", "files"), [(o, counts[o]) for o in OUTCOMES if counts.get(o)])
    problems = [r for r in results if r.outcome in ("failed", "skipped")]
    if problems:
        print_table(None, ("file", "outcome", "reason"), [(r.path, r.outcome, r.message) for r in problems])


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
    results: list[IndexResult] = []
    with open_catalog(catalog_settings()) as catalog:
        embedder = ClipEmbedder(embedding_settings())
        with file_progress() as progress:
            task = progress.add_task("Indexing", total=len(files))
            for path in files:
                progress.update(task, description=f"Indexing {path.name}")
                results.append(index_file(catalog, embedder, path, options))
                progress.advance(task)
            progress.update(task, description="Indexed")
    print_results(results, as_json)
    if not as_json and not files:
        console.print("No video files found.")
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)
