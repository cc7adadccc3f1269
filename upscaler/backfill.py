"""Signing renditions made before footage signed them (``footage credentials --missing``).

Each file is signed where it lies: its signed copy takes its name atomically, and its
content is otherwise unchanged. The catalog records the file's new hash, keeping the old
one in the provenance, and the JSON sidecar says the same. A file that is gone or changed
since it was catalogued is left alone and reported, never signed as something it is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from catalog import Asset, Catalog, FootageError, Rendition
from catalog import renditions as records
from catalog.media import content_hash, quick_fingerprint
from catalog.storages import Mounts, StorageUnavailableError, mounts_of
from upscaler.credentials import sign_rendition, write_sidecar_store
from upscaler.identity import Identity, SigningSettings, load_identity
from upscaler.provenance import write_sidecar


@dataclass(frozen=True)
class Backfilled:
    rendition_id: int
    path: str
    outcome: str  # signed or skipped
    reason: str | None
    seconds: float
    size_bytes: int


def unsigned_count(catalog: Catalog) -> int:
    with catalog.session() as session:
        return len(records.unsigned(session))


def sign_missing(
    catalog: Catalog, signing: SigningSettings, on_each: Callable[[Backfilled], None] | None = None
) -> list[Backfilled]:
    """Sign every done rendition footage made that carries no Content Credentials yet."""
    identity = load_identity(signing)
    with catalog.session() as session:
        waiting = records.unsigned(session)
    done = []
    for rendition_id in waiting:
        outcome = _sign_one(catalog, identity, rendition_id)
        done.append(outcome)
        if on_each is not None:
            on_each(outcome)
    return done


def _sign_one(catalog: Catalog, identity: Identity, rendition_id: int) -> Backfilled:
    started = time.perf_counter()

    def skipped(path: str, reason: str) -> Backfilled:
        return Backfilled(rendition_id, path, "skipped", reason, time.perf_counter() - started, 0)

    # The rendition's row stays locked while its file is signed: two backfills at once sign
    # each file once (the second skips what the first holds).
    with catalog.session() as session:
        query = sa.select(Rendition).where(Rendition.id == rendition_id).with_for_update(skip_locked=True)
        rendition = session.scalar(query)
        if rendition is None:
            return skipped("", "another process is signing it")
        file = session.get(Asset, rendition.rendition_asset_id)
        mounts = mounts_of(session)
        if file is None or "credentials" in rendition.provenance:
            return skipped(mounts.shown_file(file) if file else "", "already signed")
        shown = mounts.shown_file(file)
        try:
            path = mounts.file(file)
        except StorageUnavailableError as exc:
            return skipped(shown, str(exc))
        if not path.is_file():
            return skipped(shown, "the file is not there (moved, deleted or its storage unmounted)")
        if file.fingerprint is not None and quick_fingerprint(path) != file.fingerprint:
            return skipped(shown, "the file changed since it was catalogued; index it again first")
        master = session.get(Asset, rendition.master_id)
        try:
            signed = sign_rendition(path, path.name, _unchanged(master, mounts), rendition.provenance, identity)
        except FootageError as exc:
            return skipped(shown, str(exc))
        if signed.sidecar_bytes is not None:
            write_sidecar_store(path, signed.sidecar_bytes)
        stat = path.stat()
        values = {
            "content_hash": content_hash(path),
            "size_bytes": stat.st_size,
            "fingerprint": quick_fingerprint(path),
            "mtime": datetime.fromtimestamp(stat.st_mtime, UTC),
        }
        records.record_signed(rendition, file, values, signed.record())
        write_sidecar(path, rendition.provenance)
        return Backfilled(rendition_id, shown, "signed", None, time.perf_counter() - started, stat.st_size)


def _unchanged(master: Asset | None, mounts: Mounts) -> Path | None:
    """The master's file, when it is still the one the rendition was made from (by its
    fingerprint); ``None`` describes it from the provenance alone."""
    if master is None:
        return None
    try:
        path = mounts.file(master)
    except StorageUnavailableError:
        return None
    if not path.is_file():
        return None
    if master.fingerprint is not None and quick_fingerprint(path) != master.fingerprint:
        return None
    return path
