"""Recognising a file: a cheap fingerprint for moves and renames, a full content
hash for provenance (``catalog.media.content_hash``, shared with the upscaler)."""

from __future__ import annotations

import hashlib
from pathlib import Path

SAMPLE = 64 * 1024  # bytes hashed at each of the fingerprint's sample points
_SAMPLE_POINTS = 5


def quick_fingerprint(path: Path) -> str:
    """``size:blake2b`` of a few blocks spread over the file (start, end and between).

    Cheap enough to compute for every file of a scan, stable under rename and
    move, and different for a file that was re-encoded or cut.
    """
    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= SAMPLE * _SAMPLE_POINTS:
            digest.update(f.read())
        else:
            span = size - SAMPLE
            for i in range(_SAMPLE_POINTS):
                f.seek(span * i // (_SAMPLE_POINTS - 1))
                digest.update(f.read(SAMPLE))
    return f"{size}:{digest.hexdigest()}"
