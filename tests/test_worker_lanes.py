"""A worker indexes several files at once (``--index-concurrency``) while it still renders
one rendition at a time (``--concurrency``, 1): the two kinds of job run in lanes of their own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog
from catalog.jobs import defer_index, job_app
from cli.main import app


def _spans(catalog: Catalog) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each finished job's (started, ended), by kind: masters indexed, renders."""
    with catalog.session() as s:
        rows = s.execute(
            sa.text(
                "SELECT j.task_name, j.queue_name, min(e.at) FILTER (WHERE e.type = 'started') AS began,"
                " max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed')) AS ended"
                " FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id"
                " WHERE j.status IN ('succeeded', 'failed') GROUP BY j.id"
            )
        ).all()
    spans: dict[str, list[tuple[datetime, datetime]]] = {"index": [], "render": []}
    for task, queue, began, ended in rows:
        if task == "footage.render":
            spans["render"].append((began, ended))
        elif task == "footage.index_file" and queue.startswith("index"):
            spans["index"].append((began, ended))
    return spans


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_files_are_indexed_together_and_renders_one_at_a_time(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip, FOOTAGE_PROXIES="none")
    runner = CliRunner()
    master = write_clip(tmp_path / "master.mov", Clip(width=160, height=90, shots=(1.0,)))
    model = write_tiny_compact(tmp_path / "tiny.pth")
    assert runner.invoke(app, ["index", str(master)], env=env).exit_code == 0
    for scale in ("2x", "3x"):
        queued = runner.invoke(
            app, ["upscale", str(master), "--to", scale, "-m", str(model), "--temporal", "off"], env=env
        )
        assert queued.exit_code == 0, queued.output
    # Two masters of their own content (their fingerprints differ), 4 s each.
    clips = [
        write_clip(tmp_path / f"clip{i}.mp4", Clip(width=320, height=180, shots=shots))
        for i, shots in enumerate([(2.0, 2.0), (1.5, 2.5)])
    ]
    with job_app(catalog, asynchronous=False).open() as jobs:
        for clip in clips:
            defer_index(jobs, *catalog.mounts.place(clip))
    worker = start(env, tmp_path / "logs", "worker", "--index-concurrency", "2")
    try:
        wait_for(lambda: [len(v) for v in _spans(catalog).values()] == [2, 2], timeout=240, interval=0.2)
    finally:
        code, _, err = worker.stop()
    assert code == 0 and "Traceback" not in err, err
    spans = _spans(catalog)
    assert _overlap(*spans["index"]), spans  # the two files were indexed at once
    assert not _overlap(*spans["render"]), spans  # the renders one after the other
    with catalog.session() as s:
        statuses = s.scalars(sa.text("SELECT status FROM assets WHERE kind = 'master' ORDER BY id")).all()
    assert statuses == ["indexed"] * 3, statuses
