"""Rendition records: requests, progress, completion, links and pairs.

Every change of a rendition's status happens here, through ``_move``, which
checks it against ``_NEXT``; no other module writes ``Rendition.status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from catalog.assets import database_now, upsert_asset
from catalog.errors import FootageError, NotFoundError, UnsafePathError
from catalog.families import families, family_master_id, resolve_asset
from catalog.names import rendition_name
from catalog.results import Family
from catalog.storages import RENDITIONS, StorageUnavailableError, add_storage, mounts_of
from catalog.tables import Asset, Rendition, RenditionStatus, Storage

S = RenditionStatus
# Statuses in which a request counts as made: asking again returns it.
ACTIVE = (S.QUEUED, S.RUNNING, S.DONE)
# Statuses a rendition never leaves (``--again`` makes a new one).
ENDED = (S.DONE, S.FAILED, S.CANCELLED)
# Which status may follow which. RUNNING may start again: a stalled worker's
# job is handed to another worker, which starts the render over.
_NEXT: dict[RenditionStatus, frozenset[RenditionStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.RUNNING, S.QUEUED, S.DONE, S.FAILED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
# A running render's progress stops short of 1: only a finished, verified
# rendition reads as complete (the done_has_file constraint ties 1 to done).
_RUNNING_PROGRESS_CAP = 0.999
CANCELLED_BY_USER = "cancelled by a user"


class RenditionStateError(FootageError):
    """A change of status the life of a rendition does not allow (say, done -> running)."""


class LeaseLostError(FootageError):
    """Another render holds the rendition now: this one may record nothing and publish no file."""


@dataclass(frozen=True)
class Lease:
    """A render's hold on its rendition: ``epoch`` is its turn; every later start gets a higher one."""

    rendition_id: int
    epoch: int
    seconds: float


def _move(rendition: Rendition, to: RenditionStatus) -> None:
    now = RenditionStatus(rendition.status)
    if to not in _NEXT[now]:
        raise RenditionStateError(f"rendition {rendition.id} is {now}; it cannot become {to}")
    rendition.status = to.value
    if to != S.RUNNING:
        rendition.lease_expires_at = None  # nobody renders it now


def _expiry(seconds: float) -> sa.ColumnElement[datetime]:
    # The database's clock, the one every worker's lease is measured against.
    return sa.func.now() + timedelta(seconds=seconds)


def rendition_path(folder: Path, master_stem: str, label: str, model: str, codec: str, suffix: str) -> Path:
    """``rendition_name`` in ``folder``, checked to lie directly in it."""
    base = folder.resolve()
    return ensure_inside(base, base / rendition_name(master_stem, label, model, codec, suffix))


def ensure_inside(folder: Path, path: Path) -> Path:
    """``path`` if it resolves to a file directly inside ``folder``; ``UnsafePathError`` otherwise."""
    resolved = path.resolve()
    if resolved.parent != folder.resolve() or resolved.name.startswith("."):
        raise UnsafePathError(f"refusing rendition path {path}: it must lie directly in {folder}")
    return resolved


@dataclass(frozen=True)
class RenditionSpec:
    """What makes two requests the same rendition."""

    master_id: int
    label: str
    width: int
    height: int
    model_name: str
    model_sha256: str | None
    parameters: dict[str, Any]


def find_same(session: Session, spec: RenditionSpec) -> Rendition | None:
    """An existing queued, running or finished rendition of ``spec`` (newest first)."""
    return session.scalar(
        sa.select(Rendition)
        .where(
            Rendition.master_id == spec.master_id,
            Rendition.target_width == spec.width,
            Rendition.target_height == spec.height,
            Rendition.model_name == spec.model_name,
            Rendition.model_sha256 == spec.model_sha256,
            Rendition.parameters == sa.cast(spec.parameters, Rendition.parameters.type),
            Rendition.status.in_(ACTIVE),
        )
        .order_by(Rendition.id.desc())
        .limit(1)
    )


def create(session: Session, spec: RenditionSpec, storage: Storage, name: str) -> Rendition:
    rendition = Rendition(
        master_id=spec.master_id,
        label=spec.label,
        target_width=spec.width,
        target_height=spec.height,
        model_name=spec.model_name,
        model_sha256=spec.model_sha256,
        parameters=spec.parameters,
        status=S.QUEUED,
        output_storage_id=storage.id,
        output_rel_path=name,
    )
    session.add(rendition)
    session.flush()
    return rendition


def renditions_storage(session: Session, default_folder: Path | None) -> Storage:
    """The storage renditions are written to; made at ``default_folder`` (and mapped on this
    host) the first time a rendition is asked for, so one machine needs no set-up."""
    mounts = mounts_of(session)
    storage = mounts.by_name(RENDITIONS)
    if storage is not None:
        return storage
    if default_folder is None:
        raise StorageUnavailableError(
            f"no storage {RENDITIONS!r} yet: add it with `footage storage add {RENDITIONS} PATH` "
            "on a share every host mounts"
        )
    default_folder.mkdir(parents=True, exist_ok=True)
    storage = add_storage(session, RENDITIONS, default_folder, adopt=True)
    mounts.map_here(RENDITIONS, default_folder)
    mounts.remember(storage)
    return storage


def get(session: Session, rendition_id: int, *, lock: bool = False) -> Rendition:
    query = sa.select(Rendition).where(Rendition.id == rendition_id)
    rendition = session.scalar(query.with_for_update() if lock else query)
    if rendition is None:
        raise NotFoundError(f"no rendition {rendition_id}")
    return rendition


def set_job(session: Session, rendition_id: int, job_id: int | None) -> None:
    """Remember which queued job renders the rendition."""
    get(session, rendition_id).job_id = job_id


def start(rendition: Rendition, worker: str, lease_s: float = 60.0) -> Lease:
    """A worker begins (or, after a stalled worker, begins again) to render; progress restarts.

    The worker takes the rendition's lease for ``lease_s`` seconds, to be renewed while it renders.
    """
    _move(rendition, S.RUNNING)
    rendition.worker, rendition.error = worker, None
    rendition.attempts += 1
    rendition.started_at = datetime.now(UTC)
    rendition.frames_done, rendition.progress = 0, 0.0
    rendition.lease_epoch = (rendition.lease_epoch or 0) + 1
    rendition.lease_expires_at = _expiry(lease_s)  # evaluated by the database at flush
    return Lease(rendition.id, rendition.lease_epoch, lease_s)


def lease_holder(session: Session, rendition: Rendition) -> str | None:
    """The worker whose lease on the running ``rendition`` has not expired; ``None`` when nobody holds it."""
    expires = rendition.lease_expires_at
    if rendition.status != S.RUNNING or expires is None:
        return None
    return rendition.worker if database_now(session) < expires else None


def renew(session: Session, lease: Lease) -> bool:
    """Extend ``lease`` by its length; False when it is no longer held (taken over, or the rendition ended)."""
    renewed = session.execute(
        sa.update(Rendition)
        .where(Rendition.id == lease.rendition_id, Rendition.lease_epoch == lease.epoch, Rendition.status == S.RUNNING)
        .values(lease_expires_at=_expiry(lease.seconds))
    )
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


def holding(session: Session, lease: Lease) -> Rendition:
    """The rendition, locked, for the holder of ``lease`` to record an outcome; LeaseLostError otherwise."""
    rendition = get(session, lease.rendition_id, lock=True)
    if rendition.lease_epoch != lease.epoch:
        raise LeaseLostError(
            f"rendition {lease.rendition_id} was taken over by {rendition.worker or 'another worker'}; "
            "this render's output was discarded"
        )
    return rendition


def record_progress(session: Session, lease: Lease, frames_done: int, frames_total: int | None, fps: float) -> None:
    """Frames rendered so far; ignored unless the rendition is running under ``lease`` (a late update
    never revives it, and a render that lost its lease never writes over its successor's progress)."""
    total = frames_total if frames_total and frames_total >= frames_done else None
    progress = min(_RUNNING_PROGRESS_CAP, frames_done / total) if total else 0.0
    session.execute(
        sa.update(Rendition)
        .where(Rendition.id == lease.rendition_id, Rendition.status == S.RUNNING, Rendition.lease_epoch == lease.epoch)
        .values(frames_done=frames_done, frames_total=total, fps=fps, progress=progress)
    )


def finish(rendition: Rendition, asset_id: int, frames: int, provenance: dict[str, Any]) -> None:
    """The rendition file is written, verified and registered as ``asset_id``."""
    _move(rendition, S.DONE)
    rendition.rendition_asset_id = asset_id
    rendition.progress, rendition.frames_done, rendition.frames_total = 1.0, frames, frames
    rendition.finished_at = datetime.now(UTC)
    rendition.timings = provenance.get("timings", {})
    rendition.provenance = provenance


def fail(rendition: Rendition, error: str) -> None:
    """The rendition cannot be made; ``error`` says why."""
    _move(rendition, S.FAILED)
    rendition.error = error
    rendition.finished_at = datetime.now(UTC)


def retry(rendition: Rendition, error: str) -> None:
    """A failure that may pass: the rendition waits for the job's next attempt."""
    _move(rendition, S.QUEUED)
    rendition.error = error
    rendition.finished_at = None


def cancel(rendition: Rendition, reason: str = CANCELLED_BY_USER) -> None:
    _move(rendition, S.CANCELLED)
    rendition.error = reason
    rendition.finished_at = datetime.now(UTC)


def cancel_waiting(session: Session, job_id: int) -> None:
    """After ``job_id`` was cancelled: its rendition, if it had not started, is cancelled.

    A running one is cancelled by its worker, which sees the abort request.
    """
    rendition = session.scalar(sa.select(Rendition).where(Rendition.job_id == job_id).with_for_update())
    if rendition is not None and rendition.status == S.QUEUED:
        cancel(rendition)


def unsigned(session: Session) -> list[int]:
    """Done renditions that footage rendered (their provenance names a model) and that carry
    no Content Credentials yet: made before renditions were signed."""
    query = (
        sa.select(Rendition.id)
        .where(
            Rendition.status == S.DONE,
            Rendition.rendition_asset_id.is_not(None),
            Rendition.provenance.has_key("model"),
            sa.not_(Rendition.provenance.has_key("credentials")),
        )
        .order_by(Rendition.id)
    )
    return list(session.scalars(query))


def record_signed(rendition: Rendition, file: Asset, values: dict[str, Any], credentials: dict[str, Any]) -> None:
    """A rendition signed after it was made: its file's new facts (``values``: content hash,
    size, fingerprint, mtime), and the credentials in its provenance beside the hash the
    file had before."""
    credentials = {**credentials, "unsigned_content_hash": file.content_hash}
    for key, value in values.items():
        setattr(file, key, value)
    rendition.provenance = {**rendition.provenance, "credentials": credentials}


def register_file(session: Session, path: Path, values: dict[str, Any]) -> int:
    """The rendition file as an asset of kind rendition (facts filled in by indexing)."""
    return upsert_asset(session, path, {**values, "kind": "rendition", "status": "pending"})


def pairs(session: Session, ref: str | None = None) -> list[Family]:
    """Families with at least one rendition (or the family of ``ref``), masters by path."""
    if ref is not None:
        master_id = family_master_id(session, resolve_asset(session, ref).id)
        return [families(session, [master_id])[master_id]]
    ids = session.scalars(sa.select(Rendition.master_id).distinct()).all()
    found = families(session, ids)
    return sorted(found.values(), key=lambda f: f.master.path or "")


def link(session: Session, rendition_ref: str, master_ref: str) -> Rendition:
    """Declare an indexed file a rendition of a master (made by another tool)."""
    file = resolve_asset(session, rendition_ref)
    master = resolve_asset(session, master_ref)
    if file.id == master.id:
        raise FootageError("a file cannot be a rendition of itself")
    if master.kind != "master":
        raise FootageError(f"{mounts_of(session).shown_file(master)} is itself a rendition; link to its master")
    if session.scalar(sa.select(Rendition.id).where(Rendition.rendition_asset_id == file.id)):
        raise FootageError(f"{mounts_of(session).shown_file(file)} is already linked as a rendition")
    if session.scalar(sa.select(Rendition.id).where(Rendition.master_id == file.id)):
        raise FootageError(f"{mounts_of(session).shown_file(file)} has renditions of its own; it stays a master")
    file.kind = "rendition"
    session.flush()
    now = datetime.now(UTC)
    rendition = Rendition(
        master_id=master.id,
        rendition_asset_id=file.id,
        label=f"{file.width}x{file.height}",
        target_width=file.width or 1,
        target_height=file.height or 1,
        model_name="external",
        model_sha256=None,
        parameters={},
        status=S.DONE,
        progress=1.0,
        finished_at=now,
        output_storage_id=file.storage_id,
        output_rel_path=file.rel_path,
        provenance={
            "linked_by": "footage link",
            "linked_at": now.isoformat(),
            "note": "made outside footage; how it was made is unknown",
        },
    )
    session.add(rendition)
    session.flush()
    return rendition


# procrastinate's job states in the words footage uses everywhere else.
JOB_STATUS_WORDS = {"todo": "queued", "doing": "running", "succeeded": "done"}


def job_rows(session: Session, limit: int = 100, live_within_s: float = 60.0) -> list[dict[str, Any]]:
    """The queue as ``footage jobs`` shows it, newest first, with rendition and proxy progress; a queued
    job no running worker listens for (none serves its storage, or takes its kind of work)
    says what it waits for."""
    rows = (
        session.execute(
            sa.text(
                """
            WITH listened AS (
                SELECT DISTINCT unnest(w.queues) AS queue FROM worker_queues w
                JOIN procrastinate_workers p ON p.id = w.worker_id
                WHERE p.last_heartbeat > now() - make_interval(secs => :live))
            SELECT j.id, j.task_name, j.status::text AS status, j.queue_name, j.attempts,
                   j.args, j.scheduled_at, r.id AS rendition_id, r.status AS rendition_status,
                   coalesce(r.progress, px.progress) AS progress, r.frames_done, r.frames_total, r.fps,
                   r.worker, coalesce(r.error, px.error) AS error,
                   (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS updated_at,
                   j.queue_name NOT IN (SELECT queue FROM listened) AS unserved
            FROM procrastinate_jobs j
            LEFT JOIN renditions r ON r.job_id = j.id
            LEFT JOIN proxies px ON px.id = (j.args->>'proxy_id')::bigint
            WHERE j.task_name LIKE 'footage.%'
            ORDER BY j.id DESC
            LIMIT :limit
            """
            ),
            {"limit": limit, "live": live_within_s},
        )
        .mappings()
        .all()
    )
    mounts = mounts_of(session)
    result = []
    for row in rows:
        running = row["status"] == "doing"
        eta = None
        if running and row["fps"] and row["frames_total"]:  # an ended job has no time left
            eta = max(0.0, (row["frames_total"] - row["frames_done"]) / row["fps"])
        # A render job handed on to another job (its worker stopped responding) is no longer the
        # rendition's job, but its arguments still say which rendition it rendered.
        rendition_id = row["rendition_id"] or row["args"].get("rendition_id")
        args = row["args"]
        if "rel_path" in args and mounts.knows(args.get("storage_id")):
            what = mounts.shown(args["storage_id"], args["rel_path"])
        else:
            what = args.get("path") or (f"rendition {rendition_id}" if rendition_id else "")
            what = what or (f"proxy {args['proxy_id']}" if "proxy_id" in args else "")
        result.append(
            {
                "job_id": row["id"],
                "task": row["task_name"],
                "status": JOB_STATUS_WORDS.get(row["status"], row["status"]),
                "queue": row["queue_name"],
                # procrastinate counts attempts that ended; the one running counts too.
                "attempts": row["attempts"] + (1 if running else 0),
                "what": what,
                "rendition_id": row["rendition_id"],
                "progress": row["progress"],
                "frames_done": row["frames_done"],
                "frames_total": row["frames_total"],
                "fps": row["fps"],
                "eta_s": eta,
                "worker": row["worker"],
                "error": row["error"],
                "updated_at": row["updated_at"],
                "waiting_for": _waiting_for(row["queue_name"]) if row["status"] == "todo" and row["unserved"] else None,
            }
        )
    return result


def _waiting_for(queue: str) -> str:
    kind, _, storage = queue.partition("@")
    if storage:
        return f"a running worker taking {kind} work on storage {storage}"
    return f"a running worker taking {kind} work"
