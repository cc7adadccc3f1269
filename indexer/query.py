"""Turning what a user searches with (text, a picture, a moment) into catalog results."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from catalog import Catalog, NotFoundError
from catalog.families import resolve_asset
from catalog.fusion import search_fused
from catalog.results import FamilyHit, SearchOptions
from catalog.search import moment_views, search_vector, search_vectors
from catalog.words import parse_query, stop_words
from indexer.embed import ClipEmbedder, square_views
from indexer.errors import MediaError, QueryError
from indexer.settings import EmbeddingSettings

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    """Seconds from ``12.5``, ``1:02.5`` or ``1:02:03``."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _CLOCK.match(text)
    if not match:
        raise QueryError(f"cannot read {text!r} as a time; use seconds (75.5) or H:MM:SS (0:01:15.5)")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return mean / np.linalg.norm(mean)


class TextEncoder(Protocol):
    """What a text query needs of a model: ``ClipEmbedder``, or the exported ``TextTower``."""

    @property
    def identity(self) -> str: ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


def search_text(
    catalog: Catalog, model: str, encoder: Callable[[], TextEncoder], text: str, options: SearchOptions
) -> list[FamilyHit]:
    """Words and picture for one text (``options.sides``); ``encoder`` is called only when
    the picture side has words to embed, so a name search loads no model."""
    if not text.strip():
        raise QueryError("the search text is empty; describe what the shot shows or name the file")
    with catalog.session() as session:
        query = parse_query(text, stop_words(session, text))
        picture_text = query.picture_text.strip() if options.sides != "words" else ""
        vector = encoder().embed_text([picture_text])[0] if picture_text else None
        if options.sides == "picture" and vector is None:
            raise QueryError("--picture-only needs words about the picture, not only name:, note:, tag: or meta:")
        words = query if options.sides != "picture" else None
        return search_fused(session, vector, model, words, options)


def search_image(catalog: Catalog, embedder: ClipEmbedder, image_path: Path, options: SearchOptions) -> list[FamilyHit]:
    """Query by example: a still or a frame grab, seen whole like indexed frames are."""
    if not image_path.is_file():
        raise NotFoundError(f"no such picture: {image_path}")
    try:
        with Image.open(image_path) as image:
            picture = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"{image_path}: cannot read as an image ({exc.__class__.__name__})") from exc
    vector = _normalised(embedder.embed_images(square_views(picture)))
    with catalog.session() as session:
        return search_vector(session, vector, embedder.identity, options)


def search_like(catalog: Catalog, settings: EmbeddingSettings, moment: str, options: SearchOptions) -> list[FamilyHit]:
    """More like ``ASSET@TIME``: uses the stored vectors, so no model is loaded."""
    ref, sep, when = moment.rpartition("@")
    if not sep or not ref:
        raise QueryError(f"--like takes ASSET@TIME (an id or path, then a time), not {moment!r}")
    at_s = parse_time(when)
    with catalog.session() as session:
        asset = resolve_asset(session, ref)
        if asset.duration_s is not None and not 0 <= at_s <= asset.duration_s:
            raise NotFoundError(
                f"asset {asset.id} is {asset.duration_s:.1f} s long; {when} is outside it (0 to {asset.duration_s:.1f})"
            )
        views = moment_views(session, asset.id, settings.identity, at_s)
        if not views:
            raise NotFoundError(
                f"asset {asset.id} has no moments from model {settings.identity}; run `footage reindex`"
            )
        return search_vectors(session, views, settings.identity, options)
