"""Which files in a folder are candidate footage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Containers video teams keep footage in. Files with other endings are left
# alone when a folder is scanned (sidecars, project files, stills); a file
# named explicitly is always tried.
VIDEO_SUFFIXES = frozenset(
    [
        ".mov",
        ".mp4",
        ".m4v",
        ".mkv",
        ".mxf",
        ".avi",
        ".webm",
        ".mts",
        ".m2ts",
        ".ts",
        ".mpg",
        ".mpeg",
        ".vob",
        ".dv",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".y4m",
    ]
)
# Downloads and copies in progress, editors' temporaries.
PARTIAL_SUFFIXES = frozenset(
    [".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".filepart", ".!qb", ".opdownload"]
)


def is_candidate(path: Path) -> bool:
    """A visible, finished video file by its name (content is checked when indexed)."""
    name = path.name
    if name.startswith(".") or name.startswith("~") or name.endswith("~"):
        return False
    suffixes = [s.lower() for s in path.suffixes]
    if any(s in PARTIAL_SUFFIXES for s in suffixes):
        return False
    return path.suffix.lower() in VIDEO_SUFFIXES


def walk(root: Path, exclude: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Candidate files under ``root``, skipping hidden folders and ``exclude``d ones, sorted."""
    excluded = {os.path.abspath(p) for p in exclude}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(folder, d) not in excluded)
        for name in sorted(files):
            path = Path(folder) / name
            if is_candidate(path) and path.is_file():
                yield path
