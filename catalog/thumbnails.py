"""Small JPEGs of each moment's representative frame, kept beside the catalog.

One folder per asset under ``FOOTAGE_HOME/thumbnails``, one file per frame
time. The indexer writes an asset's set into a staging folder and swaps it in
once its moments are committed, so a set always matches the moments in the
catalog and a reindex replaces it whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from catalog.results import FamilyHit, MomentHit

# About what a results grid shows per hit; twice that on a HiDPI screen would be 640.
THUMBNAIL_WIDTH = 320
_QUALITY = 85


def thumbnails_root(home: Path) -> Path:
    return home / "thumbnails"


def _name(frame_s: float) -> str:
    return f"{round(frame_s * 1000):010d}.jpg"


def thumbnail_path(home: Path, asset_id: int, frame_s: float) -> Path:
    return thumbnails_root(home) / str(asset_id) / _name(frame_s)


def written_thumbnail(home: Path, asset_id: int, frame_s: float) -> str | None:
    """The thumbnail's path where this machine has written one, else None."""
    path = thumbnail_path(home, asset_id, frame_s)
    return str(path) if path.is_file() else None


class ThumbnailSet:
    """An asset's thumbnails being written: ``add`` each moment's picture, then ``keep``
    under the asset's id once its moments are committed, or ``discard``."""

    def __init__(self, home: Path) -> None:
        root = thumbnails_root(home)
        root.mkdir(parents=True, exist_ok=True)
        self._home = home
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
        final = thumbnails_root(self._home) / str(asset_id)
        old = final.with_name(f".old-{asset_id}-{os.getpid()}")
        if final.exists():
            final.rename(old)
        self._staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def with_thumbnails(hits: list[FamilyHit], home: Path) -> list[FamilyHit]:
    """``hits`` with each moment's thumbnail path, where this machine has written one."""

    def found(moment: MomentHit) -> MomentHit:
        return replace(moment, thumbnail=written_thumbnail(home, moment.asset_id, moment.frame_s))

    return [replace(hit, moments=tuple(found(m) for m in hit.moments)) for hit in hits]
