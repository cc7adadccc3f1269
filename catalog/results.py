"""What searches and family listings return: plain values, without the database.

Separate from the queries that make them (catalog/search.py, catalog/families.py)
so that a client reading a ``footage serve`` answer back into them starts
without SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("any", "master", "rendition")
# Which evidence a text search weighs: the words (names, metadata, notes, tags), the
# picture (CLIP), or both fused.
SIDES = ("both", "words", "picture")


@dataclass(frozen=True)
class RenditionInfo:
    """How a rendition was (or is being) made."""

    rendition_id: int
    label: str
    target_width: int
    target_height: int
    model_name: str
    model_sha256: str | None
    parameters: dict[str, Any]
    status: str
    progress: float
    error: str | None
    requested_at: datetime
    finished_at: datetime | None
    provenance: dict[str, Any]
    # Content Credentials as recorded when the file was signed: "signed", "signed (self-made)",
    # "unsigned" (made before footage signed renditions); None when not footage's to sign.
    # `footage verify` and the page's link read the file itself.
    credentials: str | None = None


@dataclass(frozen=True)
class ProxyInfo:
    """A version's proxy: the small H.264 file a browser or editor plays in its place."""

    proxy_id: int
    status: str
    path: str | None
    width: int | None
    height: int | None
    video_codec: str | None
    size_bytes: int | None
    error: str | None
    # Made from a rendition: the proxy shows a model's detail too.
    ai_processed: bool
    kind: str = "proxy"


@dataclass(frozen=True)
class Version:
    """One file of a family as users see it. ``asset_id`` is ``None`` for a rendition not yet written."""

    asset_id: int | None
    kind: str
    path: str | None
    status: str
    width: int | None
    height: int | None
    display_aspect_ratio: str | None
    video_codec: str | None
    frame_rate: str | None
    duration_s: float | None
    size_bytes: int | None
    rendition: RenditionInfo | None = None
    proxy: ProxyInfo | None = None
    # Whether Chromium and the other tested browsers decode the file itself (catalog.proxies).
    browser_plays: bool | None = None
    timecode: str | None = None  # of the first frame, as the file says


@dataclass(frozen=True)
class Family:
    master: Version
    renditions: tuple[Version, ...]


@dataclass(frozen=True)
class SearchFilters:
    """Which versions may match. Heights are pixels; ``path_prefix`` a folder or path start."""

    kind: str = "any"
    min_height: int | None = None
    max_height: int | None = None
    path_prefix: str | None = None
    has_rendition: bool | None = None
    indexed_since: datetime | None = None
    selection: str | None = None  # only families with a moment or asset in this selection


@dataclass(frozen=True)
class SearchOptions:
    limit: int = 10
    moments: int = 1
    filters: SearchFilters = field(default_factory=SearchFilters)
    exact: bool = False
    sides: str = "both"


@dataclass(frozen=True)
class MomentHit:
    """A matching moment of one version; times in seconds from its first frame."""

    asset_id: int
    path: str
    start_s: float
    end_s: float
    frame_s: float
    score: float
    timecode: str | None  # of the representative frame
    # The moment's source in and out points (the asset's own timecode applied) and the
    # frame rate they count in, for edit lists; None without a frame rate.
    start_timecode: str | None = None
    end_timecode: str | None = None
    rate: str | None = None
    thumbnail: str | None = None  # the representative frame as a small JPEG, once written


@dataclass(frozen=True)
class Annotation:
    """A note (``kind`` "note", ``text`` its words) or a tag (``text`` the word) on an asset
    or, with ``at_s``, on its moment at that time."""

    kind: str
    id: int
    asset_id: int
    at_s: float | None
    text: str
    author: str
    created_at: datetime


@dataclass(frozen=True)
class FamilyHit:
    """A family found, with its evidence: ``score`` is the picture's cosine similarity (0 when
    the words alone found it), ``picture_score`` the same or None, ``words`` the query terms
    its names, metadata, notes or tags matched, ``named`` whether a name holds a query word
    exactly (such files rank first)."""

    rank: int
    score: float
    family: Family
    moments: tuple[MomentHit, ...]
    picture_score: float | None = None
    words: tuple[str, ...] = ()
    named: bool = False
    annotations: tuple[Annotation, ...] = ()  # the master's notes and tags, oldest first
