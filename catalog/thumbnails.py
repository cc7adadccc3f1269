"""Small JPEGs of each moment's representative frame, on shared storage.

One folder per asset under a thumbnails folder (``Catalog.thumbnail_dirs``: the
renditions storage's ``.footage-thumbnails`` where this host has it, so every
host's page shows every thumbnail; else ``FOOTAGE_HOME/thumbnails``), one file
per frame time. The indexer writes an asset's set into a staging folder and
swaps it in once its moments are committed, so a set always matches the moments
in the catalog and a reindex replaces it whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.results import FamilyHit, MomentHit

# About what a results grid shows per hit; twice that on a HiDPI screen would be 640.
THUMBNAIL_WIDTH = 320
_QUALITY = 85


def _name(frame_s: float) -> str:
    return f"{round(frame_s * 1000):010d}.jpg"


def thumbnail_path(root: Path, asset_id: int, frame_s: float) -> Path:
    return root / str(asset_id) / _name(frame_s)


def written_thumbnail(roots: Sequence[Path], asset_id: int, frame_s: float) -> str | None:
    """The thumbnail's path in the first of ``roots`` that holds it, else None."""
    for root in roots:
        path = thumbnail_path(root, asset_id, frame_s)
        if path.is_file():
            return str(path)
    return None


class ThumbnailSet:
    """An asset's thumbnails being written: ``add`` each moment's picture, then ``keep``
    under the asset's id once its moments are committed, or ``discard``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))

    def add(self, frame_s: float, image: np.ndarray) -> None:
        """``image`` is RGB uint8 as displayed (square pixels, upright)."""
        height, width = image.shape[:2]
        picture = Image.fromarray(image)
        if width > THUMBNAIL_WIDTH:
            size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
            picture = picture.resize(size, Image.Resampling.LANCZOS)
        picture.save(self._staging / _name(frame_s), quality=_QUALITY)

    def keep(self, asset_id: int) -> None:
        final = self._root / str(asset_id)
        old = final.with_name(f".old-{asset_id}-{os.getpid()}")
        if final.exists():
            final.rename(old)
        self._staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def with_thumbnails(hits: list[FamilyHit], roots: Sequence[Path]) -> list[FamilyHit]:
    """``hits`` with each moment's thumbnail path, where one is written in ``roots``."""

    def found(moment: MomentHit) -> MomentHit:
        return replace(moment, thumbnail=written_thumbnail(roots, moment.asset_id, moment.frame_s))

    return [replace(hit, moments=tuple(found(m) for m in hit.moments)) for hit in hits]
