"""Renditions on demand: request -> queue -> worker -> file -> link -> index, and the failure modes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Asset, Catalog, MomentView, Rendition, UnsafePathError, open_catalog
from catalog.assets import asset_by_path
from catalog.media import content_hash
from catalog.renditions import ensure_inside, rendition_path
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import index_file

runner = CliRunner()


@pytest.fixture
def setup(catalog: Catalog, embedder: ClipEmbedder, tiny_clip: str, tmp_path: Path) -> dict[str, object]:
    media = tmp_path / "media"
    media.mkdir()
    master = write_clip(media / "harbour.mov", Clip(width=64, height=36, audio=True, shots=(0.5, 0.5)))
    master_id = index_file(catalog, embedder, master).asset_id
    env = {
        "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_CLIP_MODEL": tiny_clip,
        "FOOTAGE_HOME": str(tmp_path / "home"),
        "FOOTAGE_RENDITIONS_DIR": str(tmp_path / "renditions"),
        "FOOTAGE_MODELS_DIR": str(tmp_path / "models"),
    }
    model = write_tiny_compact(tmp_path / "tiny-sr.pth")
    return {"env": env, "master": master, "master_id": master_id, "model": model, "tmp": tmp_path}


def _invoke(env: dict[str, str], *args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _render_queue_once(catalog: Catalog, env: dict[str, str]) -> None:
    """Work through the render queues in this process, as `footage worker -q render` would
    (a host of its own: ``env``'s home, renditions folder and storages)."""
    from catalog.jobs import served_queues
    from catalog.workers import run_worker
    from cli.service import worker_app
    from cli.settings import catalog_settings

    os.environ.update(env)  # worker_app reads its settings like the CLI does
    try:
        with open_catalog(catalog_settings()) as host:
            served = [m.storage for m in host.mounts.mounts() if m.served]
            run_worker(worker_app(host), queues=served_queues(["render"], served), wait=False)
    finally:
        for key in env:
            os.environ.pop(key, None)


def _rendition(catalog: Catalog, rendition_id: int) -> Rendition:
    with catalog.session() as s:
        row = s.get(Rendition, rendition_id)
        assert row is not None
        return row


def test_temporal_setting_makes_a_different_rendition(setup: dict, catalog: Catalog) -> None:
    env, master, model = setup["env"], str(setup["master"]), str(setup["model"])
    stable = _invoke(env, "upscale", master, "--to", "2x", "-m", model)
    plain = _invoke(env, "upscale", master, "--to", "2x", "-m", model, "--temporal", "off")
    softer = _invoke(env, "upscale", master, "--to", "2x", "-m", model, "--temporal-strength", "0.5")
    assert len({stable["rendition_id"], plain["rendition_id"], softer["rendition_id"]}) == 3
    assert len({stable["output"], plain["output"], softer["output"]}) == 3  # never one file for two renditions
    # Each name says what sets it apart; only a copy of the very same request (--again) is numbered.
    labels = [Path(r["output"]).name.removeprefix("harbour.").split(".tiny-sr.")[0] for r in (stable, plain, softer)]
    assert labels == ["2x", "2x-frame-by-frame", "2x-temporal0.5"]
    assert not any(r["existing"] for r in (stable, plain, softer))
    again = _invoke(env, "upscale", master, "--to", "2x", "-m", model, "--temporal", "off")
    assert again["existing"] and again["rendition_id"] == plain["rendition_id"]
    assert _rendition(catalog, plain["rendition_id"]).parameters["temporal"] == {"enabled": False}
    assert _rendition(catalog, softer["rendition_id"]).parameters["temporal"] == {"enabled": True, "strength": 0.5}


def test_request_to_linked_indexed_rendition(setup: dict, catalog: Catalog) -> None:
    env, master, model = setup["env"], setup["master"], setup["model"]
    done = _invoke(env, "upscale", str(master), "--to", "2x", "-m", str(model), "--wait")
    assert done["status"] == "done" and (done["width"], done["height"]) == (128, 72)
    output = Path(done["output"])
    assert output.parent == setup["tmp"] / "renditions" and output.name == "harbour.2x.tiny-sr.hevc.mov"
    assert output.exists() and Path(str(output) + ".json").exists()
    sidecar = json.loads(Path(str(output) + ".json").read_text())
    assert sidecar["output"]["label"] == "2x"  # what was asked, as `footage render` says it too
    # The CUDA version is named only where CUDA ran, not torch's build on a CPU-only machine.
    assert (sidecar["software"]["cuda"] is not None) == sidecar["processing"]["device"].startswith("cuda")
    shown = runner.invoke(app, ["pairs"], env=env).stdout
    (line,) = [line for line in shown.splitlines() if output.name in line]
    cells = [cell.strip() for cell in line.split("│")]
    # The rendition's state, not its file's, and its Content Credentials.
    assert "done, signed (self-made)" in cells and "indexed" not in cells

    row = _rendition(catalog, done["rendition_id"])
    assert row.status == "done" and row.progress == 1.0 and row.rendition_asset_id is not None
    assert row.provenance["model"]["sha256"] == row.model_sha256
    assert row.provenance["master"]["content_hash"].startswith("sha256:")
    assert row.provenance["software"]["torch"] and row.timings["fps"] > 0
    with catalog.session() as s:
        file = s.get(Asset, row.rendition_asset_id)
        assert file is not None and (file.kind, file.status, file.width) == ("rendition", "indexed", 128)
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(MomentView).where(MomentView.asset_id == file.id)) or 0
        ) > 0

    pairs = _invoke(env, "pairs")["pairs"]
    assert len(pairs) == 1 and pairs[0]["master"]["path"] == str(master)
    assert pairs[0]["renditions"][0]["path"] == str(output)
    assert pairs[0]["renditions"][0]["rendition"]["model_name"] == "tiny-sr"

    found = _invoke(env, "search", "a harbour", "--kind", "rendition")["results"]
    assert found[0]["master"]["asset_id"] == setup["master_id"]
    assert found[0]["moments"][0]["path"] == str(output)

    again = _invoke(env, "upscale", str(master), "--to", "2x", "-m", str(model))
    assert again["existing"] is True and again["rendition_id"] == done["rendition_id"]
    fresh = _invoke(env, "upscale", str(master), "--to", "2x", "-m", str(model), "--again")
    assert fresh["existing"] is False and fresh["output"] != done["output"]
    third = _invoke(env, "upscale", str(master), "--to", "2x", "-m", str(model), "--again")  # the same second
    assert third["output"] not in (done["output"], fresh["output"])
    assert Path(third["output"]).name == f"{master.stem}.2x-3.{Path(model).stem}.hevc.mov"

    jobs = _invoke(env, "jobs")["jobs"]
    # The render done here by --wait left no job behind (none cancelled, no index job for a
    # worker to repeat): only the two renders queued since wait for a worker.
    assert [(j["task"], j["status"]) for j in jobs] == [("footage.render", "queued")] * 2
    assert {j["rendition_id"] for j in jobs} == {fresh["rendition_id"], third["rendition_id"]}
    # In footage's words (the README's), not procrastinate's todo/doing/succeeded.
    assert {j["status"] for j in jobs} <= {"queued", "running", "done", "failed", "cancelled", "aborted"}
    assert all(j["eta_s"] is None for j in jobs if j["status"] != "running")


def test_refusals_and_clear_errors(setup: dict, catalog: Catalog) -> None:
    env, master, model = setup["env"], setup["master"], setup["model"]
    small = runner.invoke(app, ["upscale", str(master), "--to", "32x18", "-m", str(model)], env=env)
    assert small.exit_code == 2 and "is not larger than the master (64x36); add --force" in small.stderr
    unknown = runner.invoke(app, ["upscale", "/no/such.mov", "-m", str(model)], env=env)
    assert (unknown.exit_code, unknown.stderr) == (5, "Error: no asset with id or path '/no/such.mov' in the catalog\n")
    with catalog.session() as s:
        s.execute(sa.update(Asset).where(Asset.id == setup["master_id"]).values(status="missing"))
    gone = runner.invoke(app, ["upscale", str(master), "-m", str(model)], env=env)
    assert gone.exit_code == 1 and "only present, indexed masters can be upscaled" in gone.stderr


def test_bad_requests_are_refused_before_anything_is_queued(setup: dict, catalog: Catalog, tmp_path: Path) -> None:
    env, master, model = setup["env"], str(setup["master"]), str(setup["model"])
    not_a_model = runner.invoke(app, ["upscale", master, "-m", "../../../../../../etc/passwd"], env=env)
    assert not_a_model.exit_code == 2 and "passwd: cannot load as a model" in not_a_model.stderr
    missing = runner.invoke(app, ["upscale", master, "-m", "/nonexistent.pth"], env=env)
    assert (missing.exit_code, missing.stderr) == (2, "Error: model file not found: /nonexistent.pth\n")
    zero = runner.invoke(app, ["upscale", master, "--to", "0x", "-m", model], env=env)
    assert (zero.exit_code, zero.stderr) == (
        2,
        "Error: 0x: a factor must be more than 0 (2x doubles width and height)\n",
    )
    nowhere = runner.invoke(app, ["render", master, "--to", "2x", "-m", model, "-o", "/nonexistent_dir/out.mov"])
    assert (nowhere.exit_code, nowhere.stderr) == (
        2,
        "Error: cannot write out.mov: the folder /nonexistent_dir does not exist\n",
    )
    with catalog.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Rendition)) == 0
        assert s.scalar(sa.text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'footage.render'")) == 0


@pytest.mark.timeout(120)
def test_wait_on_a_failing_render_ends_with_its_reason(setup: dict, catalog: Catalog, tmp_path: Path) -> None:
    env, master = setup["env"], str(setup["master"])
    # Cached registry weights that are not what the registry says: never used, not retried.
    cache = Path(env["FOOTAGE_MODELS_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "realesr-animevideov3.pth").write_text("not the real weights")
    failed = runner.invoke(app, ["upscale", master, "--to", "2x", "-m", "animation", "--wait"], env=env)
    assert failed.exit_code == 1, failed.output
    (line,) = [x for x in failed.stderr.splitlines() if x.startswith("Error:")]
    assert line.startswith("Error: rendition ") and "realesr-animevideov3.pth has sha256" in line
    failed_id = int(line.removeprefix("Error: rendition ").split()[0])
    assert (_rendition(catalog, failed_id).status, _rendition(catalog, failed_id).attempts) == ("failed", 1)

    # The renditions folder is gone (a file took its name): its storage is not served here, said
    # at once; the rendition stays queued for a host that has the storage.
    folder = Path(env["FOOTAGE_RENDITIONS_DIR"])
    again = _invoke(env, "upscale", master, "--to", "2x", "-m", str(setup["model"]), "--codec", "h264")
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
    folder.write_text("not a folder")
    wait = ["upscale", master, "--to", "2x", "-m", str(setup["model"]), "--codec", "h264", "--wait"]
    broken = runner.invoke(app, wait, env=env)
    assert broken.exit_code == 7, broken.output
    said = " ".join(broken.stderr.split())
    assert f"Error: storage renditions: {folder} is not there (unmounted?): rendition {again['rendition_id']}" in said
    assert "stays queued for a worker that serves it" in said
    assert (_rendition(catalog, again["rendition_id"]).status, _rendition(catalog, again["rendition_id"]).attempts) == (
        "queued",
        0,
    )
    # Its job was not taken over: it waits in the queue for a worker that has the storage.
    with catalog.session() as s:
        status = s.scalar(
            sa.text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": again["job_id"]}
        )
    assert status == "todo" and _rendition(catalog, again["rendition_id"]).job_id == again["job_id"]


def test_cancel_a_queued_job(setup: dict, catalog: Catalog) -> None:
    env = setup["env"]
    queued = _invoke(env, "upscale", str(setup["master"]), "--to", "2x", "-m", str(setup["model"]))
    result = runner.invoke(app, ["jobs", "cancel", str(queued["job_id"])], env=env)
    assert result.exit_code == 0, result.output
    assert _rendition(catalog, queued["rendition_id"]).status == "cancelled"
    (job,) = [j for j in _invoke(env, "jobs")["jobs"] if j["job_id"] == queued["job_id"]]
    assert job["status"] == "cancelled"
    twice = runner.invoke(app, ["jobs", "cancel", str(queued["job_id"])], env=env)
    assert (twice.exit_code, twice.stderr) == (
        1,
        f"Error: job {queued['job_id']} has already ended (cancelled); nothing to cancel\n",
    )


def test_rendition_names_keep_the_masters_letters(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Ünïcødé clip (final) [v2]")  # as a Mac writes it
    made = rendition_path(tmp_path, decomposed, "2160p", "RealESRGAN_x4plus", "hevc", ".mov")
    assert made.name == "Ünïcødé_clip_final_v2.2160p.RealESRGAN_x4plus.hevc.mov"
    assert rendition_path(tmp_path, "東京 夜景／ロケ", "4k", "m", "hevc", ".mov").name == "東京_夜景_ロケ.4k.m.hevc.mov"
    long = rendition_path(tmp_path, "ü" * 200, "4k", "m", "hevc", ".mov")
    assert len(long.name.encode()) < 255 and long.name.startswith("ü" * 40 + ".")


def test_path_escapes_are_rejected(tmp_path: Path, setup: dict, catalog: Catalog) -> None:
    folder = tmp_path / "renditions"
    folder.mkdir()
    made = rendition_path(folder, "../../etc/passwd", "../4k", "/bin/sh", "hevc", ".mov")
    assert made.parent == folder.resolve() and "/" not in made.name
    for bad in (folder / ".." / "x.mov", Path("/etc/passwd"), folder / "sub" / "x.mov", folder / ".hidden.mov"):
        with pytest.raises(UnsafePathError):
            ensure_inside(folder, bad)

    # A tampered row pointing outside the folder is refused by the worker, not written.
    env = setup["env"]
    before = content_hash(setup["master"])
    queued = _invoke(env, "upscale", str(setup["master"]), "--to", "2x", "-m", str(setup["model"]))
    with catalog.session() as s:
        master = asset_by_path(s, setup["master"])
        assert master is not None
        s.execute(
            sa.update(Rendition)
            .where(Rendition.id == queued["rendition_id"])
            .values(output_storage_id=master.storage_id, output_rel_path=master.rel_path)
        )
    _render_queue_once(catalog, env)
    row = _rendition(catalog, queued["rendition_id"])
    assert row.status == "failed" and "must lie directly in" in (row.error or "")
    (job,) = [j for j in _invoke(env, "jobs")["jobs"] if j["job_id"] == queued["job_id"]]
    assert job["status"] == "failed"  # the job is the work's outcome, never "done" beside a failed rendition
    assert content_hash(setup["master"]) == before  # the master is untouched, byte for byte


def test_rendition_files_are_never_masters(
    setup: dict, catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    done = _invoke(setup["env"], "upscale", str(setup["master"]), "--to", "2x", "-m", str(setup["model"]), "--wait")
    copy = tmp_path / "media" / "someone-copied-it.mov"
    copy.write_bytes(Path(done["output"]).read_bytes())
    assert index_file(catalog, embedder, copy).outcome == "skipped"


def test_link_a_rendition_made_elsewhere(setup: dict, catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> None:
    other = write_clip(tmp_path / "media" / "harbour_topaz_4k.mov", Clip(width=128, height=72, shots=(0.5, 0.5)))
    index_file(catalog, embedder, other)
    result = runner.invoke(app, ["link", str(other), "--to", str(setup["master"])], env=setup["env"])
    assert result.exit_code == 0, result.output
    (pair,) = _invoke(setup["env"], "pairs", str(other))["pairs"]
    assert pair["master"]["path"] == str(setup["master"])
    assert pair["renditions"][0]["rendition"]["model_name"] == "external"
    again = runner.invoke(app, ["link", str(other), "--to", str(setup["master"])], env=setup["env"])
    assert again.exit_code == 1 and "already linked" in again.stderr


def test_a_render_only_worker_indexes_what_it_renders(setup: dict, catalog: Catalog) -> None:
    """The README's scale-out recipe: GPU hosts run `footage worker -q render` and nobody
    serves `index`; the rendition must still end up searchable, not pending."""
    env = setup["env"]
    queued = _invoke(env, "upscale", str(setup["master"]), "--to", "2x", "-m", str(setup["model"]))
    _render_queue_once(catalog, env)
    row = _rendition(catalog, queued["rendition_id"])
    assert row.status == "done" and row.rendition_asset_id is not None
    with catalog.session() as s:
        made = s.get(Asset, row.rendition_asset_id)
        assert made is not None and made.status == "indexed"
        views = s.scalar(sa.select(sa.func.count()).select_from(MomentView).where(MomentView.asset_id == made.id))
    assert views and views > 0


# -- several processes ---------------------------------------------------------


def _worker(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "-q", "render", "-q", "index", *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def long_master(setup: dict, catalog: Catalog, embedder: ClipEmbedder) -> Path:
    # Long enough that the render is still running when an abort is polled
    # for (procrastinate looks every 5 s when a notification is missed).
    path = write_clip(setup["tmp"] / "media" / "long.mov", Clip(width=160, height=90, shots=(4.0, 4.0, 4.0)))
    index_file(catalog, embedder, path)
    return path


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_killed_worker_leaves_no_file_and_another_finishes(
    setup: dict, catalog: Catalog, long_master: Path, workers: list[subprocess.Popen[str]]
) -> None:
    env = setup["env"]
    queued = _invoke(env, "upscale", str(long_master), "--to", "2x", "-m", str(setup["model"]))
    output = Path(queued["output"])
    first = _worker(env, "--stall-timeout", "3")
    workers.append(first)
    wait_for(lambda: _rendition(catalog, queued["rendition_id"]).frames_done > 0, timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert not output.exists()

    second = _worker(env, "--stall-timeout", "3")
    workers.append(second)
    wait_for(lambda: _rendition(catalog, queued["rendition_id"]).status == "done", timeout=300)
    row = _rendition(catalog, queued["rendition_id"])
    assert row.attempts == 2 and output.exists()
    assert not list(output.parent.glob(".*partial*"))  # the killed worker's leftovers are gone


def test_cancel_a_running_render(
    setup: dict, catalog: Catalog, long_master: Path, workers: list[subprocess.Popen[str]]
) -> None:
    env = setup["env"]
    queued = _invoke(env, "upscale", str(long_master), "--to", "2x", "-m", str(setup["model"]))
    workers.append(_worker(env))
    wait_for(lambda: _rendition(catalog, queued["rendition_id"]).frames_done > 0, timeout=120)
    assert runner.invoke(app, ["jobs", "cancel", str(queued["job_id"])], env=env).exit_code == 0
    wait_for(lambda: _rendition(catalog, queued["rendition_id"]).status != "running", timeout=60)
    assert _rendition(catalog, queued["rendition_id"]).status == "cancelled"
    assert not Path(queued["output"]).exists()
    wait_for(
        lambda: any(j["job_id"] == queued["job_id"] and j["status"] == "aborted" for j in _invoke(env, "jobs")["jobs"]),
        timeout=30,
    )


def test_two_workers_never_render_the_same_job(
    setup: dict, catalog: Catalog, workers: list[subprocess.Popen[str]], embedder: ClipEmbedder
) -> None:
    env = setup["env"]
    ids = []
    for i in range(4):
        path = write_clip(setup["tmp"] / "media" / f"clip{i}.mov", Clip(width=64, height=36, shots=(0.5, 0.5 + i / 10)))
        index_file(catalog, embedder, path)
        ids.append(_invoke(env, "upscale", str(path), "--to", "2x", "-m", str(setup["model"]))["rendition_id"])
    workers.extend([_worker(env), _worker(env)])
    wait_for(lambda: all(_rendition(catalog, i).status == "done" for i in ids), timeout=300)
    assert [_rendition(catalog, i).attempts for i in ids] == [1, 1, 1, 1]
    with catalog.session() as s:
        starts = s.execute(
            sa.text(
                "SELECT j.args->>'rendition_id', count(*) FROM procrastinate_events e JOIN procrastinate_jobs j "
                "ON j.id = e.job_id WHERE e.type = 'started' AND j.task_name = 'footage.render' GROUP BY 1"
            )
        ).all()
        workers_used = s.scalars(sa.select(Rendition.worker).distinct()).all()
    assert sorted(int(r) for r, n in starts if n == 1) == sorted(ids)
    assert len(workers_used) == 2  # both took a share
