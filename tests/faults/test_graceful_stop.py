"""Fault injection: a render worker stopped gracefully (SIGTERM) mid-render while another
worker, quick to call workers dead (``--stall-timeout 1``), serves the same catalog;
and a render worker paused (SIGSTOP) for longer than its lease.

The promise: every rendition is rendered once by one owner. A stopping worker
finishes its render and stays alive to the queue until it has; the other never
takes the job over. A paused worker's rendition is taken over once its lease
runs out, and when it wakes it stops, records nothing and leaves no file.
"""

from __future__ import annotations

import json
import os
import signal
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import Service, catalog_env, start
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog
from catalog.media import content_hash
from cli.main import app


def _requested(env: dict[str, str], tmp_path: Path, seconds: float, temporal: str = "off") -> tuple[int, Path, Path]:
    """An indexed master and a queued 2x rendition of it (640x360; frame by frame unless asked,
    as the faults are the worker's, not the temporal stage's): (rendition id, output, master)."""
    master = write_clip(tmp_path / "master.mov", Clip(width=320, height=180, shots=(seconds / 2, seconds / 2)))
    model = write_tiny_compact(tmp_path / "tiny.pth")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(master)], env=env).exit_code == 0
    queued = runner.invoke(
        app, ["upscale", str(master), "--to", "2x", "-m", str(model), "--temporal", temporal, "--json"], env=env
    )
    assert queued.exit_code == 0, queued.output
    answer = json.loads(queued.stdout)
    return answer["rendition_id"], Path(answer["output"]), master


def _rendition(catalog: Catalog, rendition_id: int) -> sa.Row:
    with catalog.session() as s:
        return s.execute(
            sa.text("SELECT status, progress, attempts, worker, lease_epoch, error FROM renditions WHERE id = :id"),
            {"id": rendition_id},
        ).one()


def _last_worker(catalog: Catalog) -> int:
    """The id of the worker that registered last (0: none yet)."""
    with catalog.session() as s:
        return int(s.scalar(sa.text("SELECT coalesce(max(id), 0) FROM procrastinate_workers")))


def _render_job(catalog: Catalog) -> str:
    with catalog.session() as s:
        return str(s.scalar(sa.text("SELECT status::text FROM procrastinate_jobs WHERE task_name = 'footage.render'")))


def _worker(env: dict[str, str], logs: Path, *options: str) -> Service:
    return start(env, logs, "worker", "-q", "render", *options)


# The two edges of a render: its first frames and its last quarter (a stop in the middle,
# tried before, adds nothing either edge does not, for 75 s of the suite). Progress is
# recorded once a second, a tenth of this render or more on a fast machine: waiting for 95%
# found it done once (CI), so the late stop waits for 75%.
@pytest.mark.parametrize("stop_at", [0.05, 0.75], ids=["first-frames", "last-frames"])
def test_a_gracefully_stopped_worker_renders_once(
    stop_at: float, catalog: Catalog, tiny_clip: str, tmp_path: Path
) -> None:
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    # Stopped near the end, the render must still be running when looked at: the temporal
    # stage's slower frames leave that moment long enough; frame by frame it was missed.
    rendition_id, output, master = _requested(env, tmp_path, 8.0, temporal="on" if stop_at > 0.5 else "off")
    before = content_hash(master)
    logs = tmp_path / "logs"
    first = _worker(env, logs)
    second: Service | None = None
    try:
        wait_for(lambda: _rendition(catalog, rendition_id).status == "running", timeout=120, interval=0.05)
        # Held still while the second worker starts, so the stop lands at the chosen point with
        # it watching; meanwhile the first one's heartbeat ages far past the second's stall timeout.
        os.kill(first.process.pid, signal.SIGSTOP)
        registered = _last_worker(catalog)
        second = _worker(env, logs, "--stall-timeout", "1")
        wait_for(lambda: _last_worker(catalog) > registered, timeout=120, interval=0.1)
        os.kill(first.process.pid, signal.SIGCONT)
        wait_for(lambda: _rendition(catalog, rendition_id).progress >= stop_at, timeout=240, interval=0.05)
        at_stop = _rendition(catalog, rendition_id)
        first.process.send_signal(signal.SIGTERM)
        first_code = first.process.wait(timeout=240)  # it ends once its render has
        final = _rendition(catalog, rendition_id)
    finally:
        if first.process.poll() is None:
            os.kill(first.process.pid, signal.SIGCONT)
            first.kill()
        second_code, _, second_err = second.stop() if second is not None else (None, "", "")
    first_err = first.err.read_text()
    assert at_stop.status == "running" and at_stop.progress < 1.0, at_stop  # the stop landed mid-render
    assert first_code == 0, first_err
    assert (final.status, final.attempts, final.lease_epoch) == ("done", 1, 1), final  # rendered once
    assert final.worker.endswith(f":{first.process.pid}"), final  # by the worker that was stopped
    assert _render_job(catalog) == "succeeded"
    for err in (first_err, second_err):
        assert "Traceback" not in err and "ERROR" not in err, err
    assert "taken over" not in second_err and "stopped responding" not in second_err, second_err
    assert second_code == 0, second_err
    assert output.exists() and not list(output.parent.glob(".*partial*"))
    assert content_hash(master) == before
    print(
        f"faults: SIGTERM render worker at {at_stop.progress:.0%} of its render "
        f"beside a worker with --stall-timeout 1: renders=1 attempts={final.attempts} "
        f"owner=the stopped worker errors=0 lost: 0"
    )


def test_a_paused_worker_loses_its_rendition_and_records_nothing(
    catalog: Catalog, tiny_clip: str, tmp_path: Path
) -> None:
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    rendition_id, output, _ = _requested(env, tmp_path, seconds=8.0)
    logs = tmp_path / "logs"
    first = _worker(env, logs, "--stall-timeout", "2")
    second: Service | None = None
    try:
        wait_for(lambda: _rendition(catalog, rendition_id).progress > 0.05, timeout=120, interval=0.05)
        os.kill(first.process.pid, signal.SIGSTOP)  # paused: no heartbeat, no lease renewal
        second = _worker(env, logs, "--stall-timeout", "2")
        wait_for(lambda: _rendition(catalog, rendition_id).lease_epoch == 2, timeout=120, interval=0.1)
        os.kill(first.process.pid, signal.SIGCONT)
        wait_for(lambda: _rendition(catalog, rendition_id).status == "done", timeout=240, interval=0.2)
        final = _rendition(catalog, rendition_id)
        wait_for(lambda: "lost its lease" in first.err.read_text(), timeout=60, interval=0.2)
    finally:
        if first.process.poll() is None:
            os.kill(first.process.pid, signal.SIGCONT)
        first_code, _, first_err = first.stop()
        second_code, _, second_err = second.stop() if second is not None else (None, "", "")
    assert (final.status, final.lease_epoch) == ("done", 2), final
    assert second is not None and final.worker.endswith(f":{second.process.pid}"), final  # the successor's
    assert first_code == 0 and second_code == 0, first_err + second_err
    assert "Traceback" not in second_err and "ERROR" not in second_err, second_err
    assert "recorded nothing" in first_err and "its outcome here is dropped" in first_err, first_err
    assert "Traceback" not in first_err, first_err
    assert output.exists() and not list(output.parent.glob(".*partial*"))  # no file of the paused render
    print(
        "faults: SIGSTOP render worker past its lease: taken over at epoch 2, finished by the successor, "
        "the paused worker recorded nothing and left no file; lost: 0"
    )


def _registered_beyond(catalog: Catalog, worker_id: int) -> bool:
    return _last_worker(catalog) > worker_id


def _index_job(catalog: Catalog) -> tuple[str, int | None] | None:
    with catalog.session() as s:
        row = s.execute(
            sa.text("SELECT status::text, worker_id FROM procrastinate_jobs WHERE task_name = 'footage.index_file'")
        ).one_or_none()
    return None if row is None else (row[0], row[1])


def test_a_gracefully_stopped_worker_indexes_once(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    """Index jobs have no lease: the stopping worker's own heartbeat keeps its job its own."""
    from catalog.jobs import defer_index, job_app

    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    clip = write_clip(tmp_path / "long.mp4", Clip(width=320, height=180, shots=(10.0, 10.0)))
    logs = tmp_path / "logs"
    workers: dict[int, Service] = {}
    try:
        for _ in range(2):  # both quick to call others dead
            # Index jobs only: one procrastinate worker a process (a process serving renders
            # too runs a second, for its render lane), so a new id is a new process.
            service = start(env, logs, "worker", "-q", "index", "--stall-timeout", "1")
            wait_for(partial(_registered_beyond, catalog, max(workers, default=0)), timeout=120, interval=0.1)
            workers[_last_worker(catalog)] = service
        with job_app(catalog, asynchronous=False).open() as jobs:
            defer_index(jobs, *catalog.mounts.place(clip))
        wait_for(lambda: (_index_job(catalog) or ("", None))[0] == "doing", timeout=60, interval=0.05)
        taken = _index_job(catalog)
        assert taken is not None and taken[1] in workers
        stopped, other = workers[taken[1]], next(w for i, w in workers.items() if i != taken[1])
        stopped.process.send_signal(signal.SIGTERM)  # mid-index: it finishes the file, then stops
        stopped_code = stopped.process.wait(timeout=120)
        final = _index_job(catalog)
    finally:
        for service in workers.values():
            if service.process.poll() is None:
                service.stop()
    stopped_err, other_err = stopped.err.read_text(), other.err.read_text()
    assert final is not None and final[0] == "succeeded", final  # one job, done once, never handed on
    assert stopped_code == 0 and "indexed" in stopped_err and "Traceback" not in stopped_err, stopped_err
    assert "stopped responding" not in other_err and "indexed" not in other_err, other_err
    print("faults: SIGTERM index worker mid-index beside a worker with --stall-timeout 1: indexed once, handed on: 0")
