"""Queries and writes on assets and their moments, shared by every package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from catalog.storages import mounts_of
from catalog.tables import Asset, MomentView, Root
from catalog.words import refresh_words


@dataclass(frozen=True)
class MomentViewRow:
    """One embedded view of a moment; times in seconds from the asset's first frame."""

    start_s: float
    end_s: float
    frame_s: float
    view: int
    embedding: np.ndarray


def _at(session: Session, path: str | Path) -> sa.ColumnElement[bool]:
    """The condition that an asset is the file at this host's ``path``."""
    storage, rel = mounts_of(session).place(path)
    return sa.and_(Asset.storage_id == storage.id, Asset.rel_path == rel)


def asset_by_path(session: Session, path: str | Path) -> Asset | None:
    return session.scalar(sa.select(Asset).where(_at(session, path)))


def assets_with_fingerprint(session: Session, fingerprint: str) -> list[Asset]:
    return list(session.scalars(sa.select(Asset).where(Asset.fingerprint == fingerprint).order_by(Asset.id)))


def moment_view_count(session: Session, asset_id: int, embedding_model: str) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(MomentView)
            .where(MomentView.asset_id == asset_id, MomentView.embedding_model == embedding_model)
        )
        or 0
    )


def upsert_asset(
    session: Session, path: str | Path, values: dict[str, Any], meta_words: Sequence[str] | None = None
) -> int:
    """Insert or update the asset at ``path`` and return its id, holding its row lock; its
    searched words follow (``meta_words``: its metadata's, when freshly probed).

    ``INSERT ... ON CONFLICT`` keeps two workers that index the same path at
    once from both inserting; the row lock then serialises their writes of moments.
    """
    storage, rel = mounts_of(session).place(path)
    values = {**values, "storage_id": storage.id, "rel_path": rel, "updated_at": datetime.now(UTC)}
    statement = insert(Asset).values(**values)
    upsert = statement.on_conflict_do_update(
        index_elements=[Asset.storage_id, Asset.rel_path],
        set_={k: statement.excluded[k] for k in values if k not in ("storage_id", "rel_path")},
    ).returning(Asset.id)
    asset_id = int(session.execute(upsert).scalar_one())
    refresh_words(session, [asset_id], meta_words)
    return asset_id


def database_now(session: Session) -> datetime:
    """The database's clock: the one every host's index and render times are compared on."""
    now: datetime = session.execute(sa.select(sa.func.now())).scalar_one()
    return now


def indexed_since(session: Session, path: str | Path, since: datetime) -> bool:
    """Whether the file at ``path`` was indexed after ``since`` (the database's clock), locking its
    row for the caller's write: an index that began before that one finished must not replace it."""
    indexed_at = session.scalar(sa.select(Asset.indexed_at).where(_at(session, path)).with_for_update())
    return indexed_at is not None and indexed_at > since


def replace_moment_views(session: Session, asset_id: int, embedding_model: str, rows: Sequence[MomentViewRow]) -> None:
    """Make ``rows`` the asset's moment views for ``embedding_model``; other models' stay."""
    session.execute(
        sa.delete(MomentView).where(MomentView.asset_id == asset_id, MomentView.embedding_model == embedding_model)
    )
    if rows:
        session.execute(
            sa.insert(MomentView),
            [
                {
                    "asset_id": asset_id,
                    "start_s": r.start_s,
                    "end_s": r.end_s,
                    "frame_s": r.frame_s,
                    "view": r.view,
                    "embedding": r.embedding,
                    "embedding_model": embedding_model,
                    "embedding_dim": int(r.embedding.shape[0]),
                }
                for r in rows
            ],
        )


def mark_missing(session: Session, path: str | Path) -> bool:
    """Record that the file at ``path`` is gone; its rows and history stay. False if unknown."""
    changed = session.scalars(
        sa.update(Asset)
        .where(_at(session, path), Asset.status != "missing")
        .values(status="missing", error=None, updated_at=sa.func.now())
        .returning(Asset.id)
    ).all()
    return bool(changed)


def mark_present(session: Session, asset_id: int) -> None:
    """A file marked missing is back where the asset says (or where it moved): indexed again."""
    session.execute(
        sa.update(Asset)
        .where(Asset.id == asset_id, Asset.status == "missing")
        .values(status="indexed", updated_at=sa.func.now())
    )


def move_asset(session: Session, asset_id: int, new_path: str | Path, root_id: int | None) -> None:
    """Point an asset at its new path, keeping its id, moments and renditions."""
    storage, rel = mounts_of(session).place(new_path)
    session.execute(
        sa.update(Asset)
        .where(Asset.id == asset_id)
        .values(storage_id=storage.id, rel_path=rel, root_id=root_id, updated_at=sa.func.now())
    )
    refresh_words(session, [asset_id])  # its name and folders are words; its notes and tags stay


def _under(storage_id: int, rel: str) -> sa.ColumnElement[bool]:
    if not rel:
        return Asset.storage_id == storage_id
    escaped = rel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.and_(Asset.storage_id == storage_id, Asset.rel_path.like(f"{escaped}/%", escape="\\"))


def assets_under(session: Session, prefix: str | Path) -> list[Asset]:
    """Assets whose file lies under this host's folder ``prefix``."""
    storage, rel = mounts_of(session).place(prefix)
    return list(session.scalars(sa.select(Asset).where(_under(storage.id, rel))))


def move_folder(session: Session, old_prefix: str | Path, new_prefix: str | Path) -> int:
    """Re-point every asset under folder ``old_prefix`` to ``new_prefix``; returns how many."""
    mounts = mounts_of(session)
    (old_storage, old), (new_storage, new) = mounts.place(old_prefix), mounts.place(new_prefix)
    moved = list(session.scalars(sa.select(Asset).where(_under(old_storage.id, old))))
    for asset in moved:
        inside = asset.rel_path[len(old) :].lstrip("/") if old else asset.rel_path
        asset.storage_id, asset.rel_path = new_storage.id, f"{new}/{inside}" if new else inside
    session.flush()
    refresh_words(session, [asset.id for asset in moved])
    return len(moved)


def upsert_root(session: Session, path: str | Path, polling: bool) -> int:
    """Register a watched folder (idempotent) and return its id."""
    storage, rel = mounts_of(session).place(path)
    statement = insert(Root).values(storage_id=storage.id, rel_path=rel, polling=polling)
    upsert = statement.on_conflict_do_update(
        index_elements=[Root.storage_id, Root.rel_path], set_={"polling": statement.excluded.polling}
    ).returning(Root.id)
    return int(session.execute(upsert).scalar_one())


def set_root_presence(session: Session, root_id: int, *, there: bool, mount_point: bool) -> tuple[bool, bool]:
    """Record what the filesystem says of a watched folder: whether it is ``there`` and a
    ``mount_point``. A folder seen as a mount point once and now a plain folder is unmounted.

    Returns (online, whether that changed).
    """
    root = session.get(Root, root_id)
    if root is None:
        return there, False
    online = there and (mount_point or not root.mounted)
    changed = (root.offline_since is None) != online
    if online:
        root.offline_since = None
        root.mounted = root.mounted or mount_point
    elif root.offline_since is None:
        root.offline_since = datetime.now(UTC)
    return online, changed


def touch_root_scan(session: Session, root_id: int) -> None:
    session.execute(sa.update(Root).where(Root.id == root_id).values(last_scan_at=sa.func.now()))


def assets_needing_model(session: Session, embedding_model: str, everything: bool = False) -> list[Asset]:
    """Present assets without vectors from ``embedding_model`` (all present ones if ``everything``)."""
    query = sa.select(Asset).where(Asset.status.in_(("indexed", "error"))).order_by(Asset.id)
    if not everything:
        has_vectors = (
            sa.select(MomentView.id)
            .where(MomentView.asset_id == Asset.id, MomentView.embedding_model == embedding_model)
            .exists()
        )
        query = query.where(Asset.status == "indexed", ~has_vectors)
    return list(session.scalars(query))
