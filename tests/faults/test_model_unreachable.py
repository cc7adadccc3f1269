"""Fault injection: the default CLIP model cannot be downloaded (no network, proxy, hub down).

The promise: commands fail in seconds with one line that says what to do;
the watch service records files as waiting and carries on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start

from catalog import Asset, Catalog


def _env(catalog: Catalog, tmp_path: Path) -> dict[str, str]:
    return catalog_env(
        catalog,
        tmp_path / "home",
        FOOTAGE_CLIP_MODEL="ViT-B-32",
        FOOTAGE_CLIP_PRETRAINED="laion2b_s34b_b79k",
        HF_HOME=str(tmp_path / "hf-cache"),  # nothing cached
        HF_ENDPOINT="http://127.0.0.1:9",  # a hub that refuses every connection
    )


def test_search_fails_fast_with_what_to_do(catalog: Catalog, tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "search", "a harbour"],
        env=_env(catalog, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: cannot download CLIP model 'ViT-B-32/laion2b_s34b_b79k': 127.0.0.1 is out of reach")
    assert "FOOTAGE_CLIP_MODEL=local-dir:" in line and "FOOTAGE_CLIP_PRETRAINED=" in line
    assert took < 20, took
    print(f"faults: CLIP hub unreachable: search failed in {took:.1f}s with one line")


def test_watch_records_files_as_waiting_and_carries_on(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    root.mkdir()
    write_clip(root / "a.mp4", Clip())
    write_clip(root / "b.mp4", Clip(shots=(0.5, 0.5)))
    service = start(_env(catalog, tmp_path), tmp_path / "logs", "watch", str(root), "--settle", "0.3")

    def waiting() -> dict[str, str | None]:
        with catalog.session() as s:
            return {
                Path(a.rel_path).name: a.error for a in s.scalars(sa.select(Asset).where(Asset.status == "pending"))
            }

    try:
        wait_for(lambda: set(waiting()) == {"a.mp4", "b.mp4"}, timeout=60, interval=0.3)
        assert service.process.poll() is None  # still running
    finally:
        code, _, err = service.stop()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert all((e or "").startswith("waiting for the CLIP model: cannot download") for e in waiting().values())
    # Each is asked for again a minute later, so it is indexed once the model loads.
    with catalog.session() as s:
        again = s.execute(
            sa.text(
                "SELECT args->>'rel_path', scheduled_at > now() + interval '30 seconds' FROM procrastinate_jobs"
                " WHERE status = 'todo' AND task_name = 'footage.index_file'"
            )
        ).all()
    assert sorted((Path(p).name, later) for p, later in again) == [("a.mp4", True), ("b.mp4", True)]
    assert err.count("cannot download CLIP model") == 1, err  # one warning, not one per file
    print("faults: CLIP hub unreachable under watch: files=2 recorded waiting, service kept running, lost: 0")
