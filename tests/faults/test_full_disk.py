"""Fault injection: the renditions folder on a volume too small for the render (a tmpfs).

The promise: the render fails with "no space left on <folder>", its partial
file is removed, the worker goes on serving, and once space is freed the same
request renders.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    folder = tmp_path / "renditions"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _status(catalog: Catalog, rendition_id: int) -> tuple[str, str | None]:
    with catalog.session() as s:
        row = s.execute(sa.text("SELECT status, error FROM renditions WHERE id = :id"), {"id": rendition_id}).one()
    return row.status, row.error


def test_a_full_renditions_volume_fails_the_render_not_the_worker(
    catalog: Catalog, tiny_clip: str, tmp_path: Path, small_volume: Path
) -> None:
    env = catalog_env(
        catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip, FOOTAGE_RENDITIONS_DIR=str(small_volume)
    )
    master = write_clip(tmp_path / "master.mov", Clip(width=320, height=180, shots=(2.0, 2.0)))
    model = write_tiny_compact(tmp_path / "tiny.pth")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(master)], env=env).exit_code == 0

    def request() -> int:
        # Frame by frame: the output (750 KB) still overflows the volume, in a third of the time.
        queued = runner.invoke(
            app, ["upscale", str(master), "--to", "4x", "-m", str(model), "--temporal", "off", "--json"], env=env
        )
        assert queued.exit_code == 0, queued.output
        return int(json.loads(queued.stdout)["rendition_id"])

    worker = start(env, tmp_path / "logs", "worker", "-q", "render")
    try:
        full = request()
        wait_for(lambda: _status(catalog, full)[0] == "failed", timeout=240, interval=0.2)
        _, error = _status(catalog, full)
        leftovers = os.listdir(small_volume)
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_volume)], check=True)  # space freed
        fits = request()
        wait_for(lambda: _status(catalog, fits)[0] in ("done", "failed"), timeout=240, interval=0.2)
        final = _status(catalog, fits)
    finally:
        code, _, err = worker.stop()
    assert error is not None and error.startswith(f"no space left on {small_volume}"), error
    assert leftovers == [".footage-storage"]  # the storage's marker, no partial file
    assert fits != full and final == ("done", None), final
    assert code == 0 and "Traceback" not in err, err  # the worker went on serving
    said = " ".join(err.split())  # the console wraps long lines
    assert f"rendition_id={full}) ended with status: Error, lasted" in said and "s: no space left on" in said, err
    print(f"faults: renditions volume full mid-render: '{error[:30]}...', partial files=0, next render done")
