"""Work nobody will do is found and queued again: renditions and pending files without a job."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from catalog import Catalog
from catalog import renditions as records
from catalog.assets import upsert_asset
from catalog.jobs import INDEX_TASK, RENDER_TASK, defer_index, job_app
from catalog.orphans import requeue_orphans
from catalog.renditions import RenditionSpec
from catalog.storages import mounts_of


def _jobs(catalog: Catalog) -> list[tuple[str, dict]]:
    with catalog.session() as s:
        return [(t, a) for t, a in s.execute(sa.text("SELECT task_name, args FROM procrastinate_jobs ORDER BY id"))]


def test_orphans_are_queued_again_once(catalog: Catalog, tmp_path: Path) -> None:
    with catalog.session() as s:
        master = upsert_asset(s, "/media/a.mov", {"kind": "master", "status": "indexed"})

        def rendition(label: str) -> int:
            spec = RenditionSpec(master, label, 640, 360, "tiny", "a" * 64, {"codec": "hevc"})
            return records.create(s, spec, *mounts_of(s).place(f"/renditions/a.{label}.mov")).id

        lost, recent, rendering = rendition("lost"), rendition("recent"), rendition("rendering")
        records.start(records.get(s, rendering), "host:1", lease_s=60)  # alive: its lease is renewed
        s.execute(
            sa.text("UPDATE renditions SET requested_at = now() - interval '2 minutes' WHERE id IN (:a, :b)"),
            {"a": lost, "b": rendering},
        )
        upsert_asset(s, "/renditions/a.lost-file.mov", {"kind": "rendition", "status": "pending"})
        upsert_asset(s, "/media/waiting.mov", {"kind": "master", "status": "pending"})
        s.execute(sa.text("UPDATE assets SET updated_at = now() - interval '2 minutes' WHERE status = 'pending'"))
    with job_app(catalog, asynchronous=False).open() as app:
        defer_index(app, *catalog.mounts.place("/media/waiting.mov"))  # this one has its job
        assert requeue_orphans(catalog, app) == (1, 1)
        assert requeue_orphans(catalog, app) == (0, 0)  # queued once, not at every check
    jobs = _jobs(catalog)
    assert (RENDER_TASK, {"rendition_id": lost}) in jobs
    assert [a["rel_path"] for t, a in jobs if t == INDEX_TASK] == ["media/waiting.mov", "renditions/a.lost-file.mov"]
    assert not any(a.get("rendition_id") in (recent, rendering) for _, a in jobs)
    with catalog.session() as s:
        assert records.get(s, lost).job_id is not None
