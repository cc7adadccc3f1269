"""index(path): probe -> fingerprint -> sample -> embed -> one transaction.

Idempotent: an unchanged file costs a fingerprint and one query. A file whose
fingerprint matches an asset whose path has gone is a move: the asset keeps
its id, moments and renditions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from catalog import Asset, Catalog, NotFoundError
from catalog.assets import (
    MomentViewRow,
    asset_by_path,
    assets_with_fingerprint,
    database_now,
    indexed_since,
    mark_present,
    moment_view_count,
    move_asset,
    replace_moment_views,
    upsert_asset,
)
from catalog.media import content_hash, quick_fingerprint
from catalog.storages import StorageUnavailableError
from catalog.thumbnails import ThumbnailSet
from catalog.words import meta_words
from indexer.discover import walk
from indexer.embed import ClipEmbedder, square_views
from indexer.errors import UNREADABLE, MediaError
from indexer.probe import MediaInfo, probe
from indexer.sampling import Moment, SamplingOptions, sample_moments

OUTCOMES = ("indexed", "unchanged", "moved", "failed", "skipped")


@dataclass(frozen=True)
class IndexOptions:
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    kind: str = "master"
    root_id: int | None = None
    # Index even when the file is unchanged (e.g. ``footage reindex``).
    force: bool = False


@dataclass(frozen=True)
class IndexResult:
    """What happened to one file. ``message`` says why for failed and skipped files."""

    path: str
    outcome: str
    asset_id: int | None = None
    segments: int = 0
    media_seconds: float = 0.0
    message: str | None = None
    # False when the file could not even be opened here: nothing was learnt about it.
    readable: bool = True


def media_facts(info: MediaInfo) -> dict[str, Any]:
    """The asset columns that come from probing."""
    return {
        "container": info.container,
        "video_codec": info.video_codec,
        "width": info.width,
        "height": info.height,
        "sar_num": info.sample_aspect_ratio.numerator,
        "sar_den": info.sample_aspect_ratio.denominator,
        "dar_num": info.display_aspect_ratio.numerator,
        "dar_den": info.display_aspect_ratio.denominator,
        "frame_rate_num": info.frame_rate.numerator if info.frame_rate else None,
        "frame_rate_den": info.frame_rate.denominator if info.frame_rate else None,
        "variable_frame_rate": info.variable_frame_rate,
        "duration_s": info.duration_s,
        "start_time_s": info.start_time_s,
        "pixel_format": info.pixel_format,
        "bit_depth": info.bit_depth,
        "color_primaries": info.color_primaries,
        "color_transfer": info.color_transfer,
        "color_matrix": info.color_matrix,
        "color_range": info.color_range,
        "field_order": info.field_order,
        "rotation": info.rotation,
        "timecode": info.timecode,
        "audio_streams": [
            {
                "index": a.index,
                "codec": a.codec,
                "channels": a.channels,
                "sample_rate": a.sample_rate,
                "language": a.language,
            }
            for a in info.audio_streams
        ],
    }


def _file_facts(path: Path) -> tuple[int, datetime]:
    st = os.stat(path)
    return st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)


def _embed_moments(embedder: ClipEmbedder, moments: list[Moment]) -> list[MomentViewRow]:
    views: list[tuple[Moment, int, Any]] = []
    for moment in moments:
        views.extend((moment, i, view) for i, view in enumerate(square_views(moment.image)))
    vectors = embedder.embed_images([v for _, _, v in views])
    return [
        MomentViewRow(m.start_s, m.end_s, m.frame_s, i, vector)
        for (m, i, _), vector in zip(views, vectors, strict=True)
    ]


def _moment_views(
    path: Path,
    info: MediaInfo,
    embedder: ClipEmbedder,
    options: SamplingOptions,
    done: Callable[[float], None],
    thumbnails: ThumbnailSet | None,
) -> list[MomentViewRow]:
    """Every moment's embedded views; ``done`` hears the seconds of footage decoded so far."""
    rows: list[MomentViewRow] = []
    pending: list[Moment] = []
    # Embed in batches as frames arrive, so only one batch of pictures is held.
    for moment in sample_moments(path, info, options, device=str(embedder.device)):
        pending.append(moment)
        if thumbnails is not None:
            thumbnails.add(moment.frame_s, moment.image)
        done(moment.end_s)
        if len(pending) >= embedder.settings.batch_size:
            rows.extend(_embed_moments(embedder, pending))
            pending = []
    if pending:
        rows.extend(_embed_moments(embedder, pending))
    return rows


def record_failure(
    catalog: Catalog, path: Path, message: str, kind: str, root_id: int | None, *, status: str = "error"
) -> int:
    """Keep a bad file in the catalog with its reason, so users see it and it is not retried blindly.

    ``status="pending"`` records a good file that waits for something else (the
    CLIP model): a later scan queues it again.
    """
    values: dict[str, Any] = {"kind": kind, "status": status, "error": message}
    if root_id is not None:
        values["root_id"] = root_id
    try:
        values["size_bytes"], values["mtime"] = _file_facts(path)
        values["fingerprint"] = quick_fingerprint(path)
    except OSError:
        pass
    with catalog.session() as session:
        return upsert_asset(session, str(path), values)


@dataclass(frozen=True)
class _Seen:
    """A file as found before indexing: where, how big, when written, and its fingerprint."""

    path: Path
    size: int
    mtime: datetime
    fingerprint: str


@dataclass(frozen=True)
class IndexProgress:
    """Where indexing one file stands: its stage, and seconds of footage done of ``total_s``."""

    stage: str
    done_s: float = 0.0
    total_s: float | None = None


def _no_progress(_: IndexProgress) -> None:
    pass


def index_file(
    catalog: Catalog,
    embedder: ClipEmbedder,
    path: Path,
    options: IndexOptions = IndexOptions(),
    on_progress: Callable[[IndexProgress], None] | None = None,
) -> IndexResult:
    """Index one file. Never raises for bad media: the result says what happened."""
    path = Path(os.path.abspath(path))
    try:
        size, mtime = _file_facts(path)
        seen = _Seen(path, size, mtime, quick_fingerprint(path))
    except OSError as exc:
        message = f"{path}{UNREADABLE}{exc.strerror}"
        # Recorded, so people see it and a later scan tries again once it can be read.
        asset_id = record_failure(catalog, path, message, options.kind, options.root_id) if path.exists() else None
        return IndexResult(str(path), "failed", asset_id, message=message, readable=False)
    with catalog.session() as session:
        existing = asset_by_path(session, str(path))
        if existing is not None and _unchanged(session, existing, seen, embedder.identity, options):
            mark_present(session, existing.id)  # a file marked missing may have come back
            return IndexResult(str(path), "unchanged", existing.id, media_seconds=existing.duration_s or 0.0)
        known_kind = existing.kind if existing is not None else None
    if known_kind is None and (moved := _try_move(catalog, seen, embedder, options.root_id)) is not None:
        return moved
    return _index_content(catalog, embedder, seen, known_kind or options.kind, options, on_progress or _no_progress)


def _unchanged(session: Session, asset: Asset, seen: _Seen, embedding_model: str, options: IndexOptions) -> bool:
    """Whether ``asset`` already holds this very file, embedded by ``embedding_model``."""
    return (
        not options.force
        and asset.fingerprint == seen.fingerprint
        and asset.status in ("indexed", "missing")
        and moment_view_count(session, asset.id, embedding_model) > 0
    )


def _try_move(catalog: Catalog, seen: _Seen, embedder: ClipEmbedder, root_id: int | None) -> IndexResult | None:
    """The same file under a new name: the asset follows it, keeping id, moments and renditions."""
    mounts = catalog.mounts
    with catalog.session() as session:
        for candidate in assets_with_fingerprint(session, seen.fingerprint):
            try:
                old_path = str(mounts.file(candidate))
            except StorageUnavailableError:
                continue  # whether it is still there cannot be seen from here: not taken for moved
            if old_path == str(seen.path) or os.path.exists(old_path):
                continue
            move_asset(session, candidate.id, str(seen.path), root_id if root_id is not None else candidate.root_id)
            mark_present(session, candidate.id)
            if moment_view_count(session, candidate.id, embedder.identity) == 0:
                return None  # same file, but never embedded with this model: index it
            return IndexResult(
                str(seen.path),
                "moved",
                candidate.id,
                media_seconds=candidate.duration_s or 0.0,
                message=f"moved from {old_path}",
            )
    return None


def _index_content(
    catalog: Catalog,
    embedder: ClipEmbedder,
    seen: _Seen,
    kind: str,
    options: IndexOptions,
    report: Callable[[IndexProgress], None],
) -> IndexResult:
    """Probe, sample and embed the file, then write the asset and its moments in one transaction."""
    path = seen.path
    thumbnails: ThumbnailSet | None = None
    with catalog.session() as session:
        began = database_now(session)
    try:
        report(IndexProgress("probing"))
        info = probe(path)
        if info.is_footage_rendition and kind == "master":
            return IndexResult(str(path), "skipped", message=f"{path}: a footage rendition, not a master")
        if info.is_footage_proxy:
            return IndexResult(str(path), "skipped", message=f"{path}: a footage proxy, listed with its source")
        report(IndexProgress("sampling", 0.0, info.duration_s))
        thumbnail_dirs = catalog.thumbnail_dirs()
        thumbnails = ThumbnailSet(thumbnail_dirs[0]) if thumbnail_dirs else None
        rows = _moment_views(
            path,
            info,
            embedder,
            options.sampling,
            lambda s: report(IndexProgress("sampling", s, info.duration_s)),
            thumbnails,
        )
        report(IndexProgress("hashing", info.duration_s or 0.0, info.duration_s))
        digest = content_hash(path)
        if _file_facts(path) != (seen.size, seen.mtime):
            raise MediaError(f"{path}: changed while it was being indexed; it will be indexed again")
    except BaseException as exc:
        if thumbnails is not None:
            thumbnails.discard()
        if isinstance(exc, OSError | MediaError) and not os.path.exists(path):
            # Deleted, moved or unmounted mid-read: not a bad file, so nothing is recorded against it.
            message = f"{path}: vanished while it was being indexed ({exc})"
            return IndexResult(str(path), "failed", None, message=message, readable=False)
        if not isinstance(exc, MediaError):
            raise
        asset_id = record_failure(catalog, path, str(exc), kind, options.root_id)
        return IndexResult(str(path), "failed", asset_id, message=str(exc))
    values: dict[str, Any] = {
        **media_facts(info),
        "kind": kind,
        "status": "indexed",
        "error": info.shortfall,  # indexed, with the reason it holds less than it should
        "fingerprint": seen.fingerprint,
        "content_hash": digest,
        "size_bytes": seen.size,
        "mtime": seen.mtime,
        "indexed_at": sa.func.now(),  # the database's clock, as ``began`` is
    }
    if options.root_id is not None:
        values["root_id"] = options.root_id
    report(IndexProgress("writing", info.duration_s or 0.0, info.duration_s))
    try:
        with catalog.session() as session:
            if indexed_since(session, str(path), began):
                # A newer index of this file (another worker's, after this one was taken for
                # stalled) was written while this one ran: its result stands.
                newer = asset_by_path(session, str(path))
                superseded = IndexResult(
                    str(path),
                    "unchanged",
                    newer.id if newer is not None else None,
                    message=f"{path}: indexed meanwhile by a newer job; this result was dropped",
                )
            else:
                superseded = None
                asset_id = upsert_asset(session, str(path), values, meta_words(info.tags))
                replace_moment_views(session, asset_id, embedder.identity, rows)
    except BaseException:
        if thumbnails is not None:
            thumbnails.discard()
        raise
    if superseded is not None:
        if thumbnails is not None:
            thumbnails.discard()
        return superseded
    if thumbnails is not None:
        thumbnails.keep(asset_id)
    return IndexResult(str(path), "indexed", asset_id, segments=len(rows), media_seconds=info.duration_s or 0.0)


def collect_files(paths: list[Path]) -> list[Path]:
    """Files named directly, plus the candidate footage inside named folders, in order.

    Raises ``NotFoundError`` for a path that does not exist.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(walk(path))
        elif path.exists():
            files.append(path)
        else:
            raise NotFoundError(f"no such file or folder: {path}")
    return files
