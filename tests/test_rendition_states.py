"""A rendition's life: every change of status goes through catalog.renditions and is checked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from catalog import renditions as records
from catalog.assets import upsert_asset
from catalog.renditions import LeaseLostError, RenditionSpec, RenditionStateError
from catalog.storages import mounts_of
from catalog.tables import Rendition, RenditionStatus, Storage

S = RenditionStatus


@pytest.fixture
def queued(session: Session) -> Rendition:
    master_id = upsert_asset(session, "/media/a.mov", {"kind": "master", "status": "indexed"})
    spec = RenditionSpec(master_id, "4k", 3840, 2160, "RealESRGAN_x4plus", "a" * 64, {"codec": "hevc"})
    return records.create(session, spec, *_place(session, "/renditions/a.4k.RealESRGAN_x4plus.mov"))


def _place(session: Session, path: str) -> tuple[Storage, str]:
    return mounts_of(session).place(path)


def _done(session: Session, rendition: Rendition) -> None:
    records.start(rendition, "host:1")
    file_id = upsert_asset(session, "/renditions/a.4k.mov", {"kind": "rendition", "status": "pending"})
    records.finish(rendition, file_id, 25, {"timings": {"fps": 5.0}})
    session.flush()


def test_a_render_that_works(session: Session, queued: Rendition) -> None:
    assert queued.status == S.QUEUED
    lease = records.start(queued, "host:1")
    assert (queued.status, queued.attempts, queued.worker) == (S.RUNNING, 1, "host:1")
    records.record_progress(session, lease, 10, 25, 5.0)
    session.refresh(queued)
    assert (queued.frames_done, queued.progress) == (10, pytest.approx(0.4))
    _done(session, queued)
    assert (queued.status, queued.progress, queued.frames_total, queued.timings) == (S.DONE, 1.0, 25, {"fps": 5.0})


def test_progress_never_reads_complete_before_done(session: Session, queued: Rendition) -> None:
    lease = records.start(queued, "host:1")
    records.record_progress(session, lease, 25, 25, 5.0)
    session.refresh(queued)
    assert queued.status == S.RUNNING and queued.progress < 1.0


def test_a_late_progress_update_never_revives_an_ended_rendition(session: Session, queued: Rendition) -> None:
    lease = records.start(queued, "host:1")
    records.cancel(queued)
    session.flush()
    records.record_progress(session, lease, 10, 25, 5.0)
    session.refresh(queued)
    assert (queued.status, queued.frames_done) == (S.CANCELLED, 0)


def test_retry_then_a_stalled_worker_starts_over(session: Session, queued: Rendition) -> None:
    records.start(queued, "host:1")
    records.retry(queued, "encoder hiccup")
    assert (queued.status, queued.error, queued.finished_at) == (S.QUEUED, "encoder hiccup", None)
    records.start(queued, "host:2")
    records.start(queued, "host:3")  # host:2 stopped sending heartbeats; its job went to host:3
    assert (queued.status, queued.attempts, queued.worker, queued.error) == (S.RUNNING, 3, "host:3", None)


@pytest.mark.parametrize(
    ("end", "then"),
    [
        (lambda s, r: _done(s, r), lambda r: records.start(r, "host:2")),
        (lambda s, r: records.fail(r, "no such model"), lambda r: records.start(r, "host:2")),
        (lambda s, r: records.cancel(r), lambda r: records.retry(r, "again")),
        (lambda s, r: records.fail(r, "no such model"), lambda r: records.cancel(r)),
    ],
    ids=["done-start", "failed-start", "cancelled-retry", "failed-cancel"],
)
def test_ended_renditions_stay_ended(
    session: Session,
    queued: Rendition,
    end: Callable[[Session, Rendition], None],
    then: Callable[[Rendition], None],
) -> None:
    end(session, queued)
    ended = queued.status
    with pytest.raises(RenditionStateError, match=rf"rendition {queued.id} is {ended}; it cannot become"):
        then(queued)
    assert queued.status == ended


def test_a_queued_rendition_cannot_finish_without_running(session: Session, queued: Rendition) -> None:
    with pytest.raises(RenditionStateError, match="is queued; it cannot become done"):
        records.finish(queued, 1, 1, {})


def test_cancelling_a_job_cancels_only_a_waiting_rendition(session: Session, queued: Rendition) -> None:
    records.set_job(session, queued.id, 41)
    records.cancel_waiting(session, 41)
    assert (queued.status, queued.error) == (S.CANCELLED, records.CANCELLED_BY_USER)
    assert queued.finished_at is not None

    spec = RenditionSpec(queued.master_id, "2x", 3840, 2160, "x", "b" * 64, {})
    running = records.create(session, spec, *_place(session, "/renditions/b.mov"))
    records.set_job(session, running.id, 42)
    records.start(running, "host:1")
    records.cancel_waiting(session, 42)  # its worker cancels it when it sees the abort
    assert running.status == S.RUNNING


def test_statuses_in_the_schema_are_the_enum() -> None:
    table = Rendition.__table__
    assert isinstance(table, sa.Table)
    check = next(c for c in table.constraints if c.name == "ck_renditions_status_known")
    assert isinstance(check, sa.CheckConstraint)
    assert all(f"'{s.value}'" in str(check.sqltext) for s in RenditionStatus)


def test_one_render_holds_a_rendition_at_a_time(session: Session, queued: Rendition) -> None:
    first = records.start(queued, "host:1", lease_s=60)
    session.flush()
    assert records.lease_holder(session, queued) == "host:1"
    assert records.renew(session, first)
    second = records.start(queued, "host:2", lease_s=60)  # host:1 was taken for dead; host:2 took over
    session.flush()
    assert second.epoch == first.epoch + 1
    assert records.lease_holder(session, queued) == "host:2"
    assert not records.renew(session, first) and records.renew(session, second)
    records.record_progress(session, first, 20, 25, 5.0)  # the old render's late progress is ignored
    records.record_progress(session, second, 3, 25, 5.0)
    session.refresh(queued)
    assert queued.frames_done == 3
    with pytest.raises(LeaseLostError, match="taken over by host:2"):
        records.holding(session, first)
    assert records.holding(session, second) is queued


def test_an_expired_or_ended_lease_has_no_holder(session: Session, queued: Rendition) -> None:
    lease = records.start(queued, "host:1", lease_s=0)
    session.flush()
    session.refresh(queued)
    assert queued.lease_expires_at is not None and records.lease_holder(session, queued) is None
    lease = records.start(queued, "host:2", lease_s=60)
    records.retry(queued, "encoder hiccup")
    session.flush()
    assert (queued.lease_expires_at, records.lease_holder(session, queued)) == (None, None)
    assert not records.renew(session, lease)  # a queued rendition is nobody's to renew
