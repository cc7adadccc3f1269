"""Fault injection: a watched folder full of things that are not footage, beside footage.

The promise: each bad file gets a status and a one-line reason, the service
keeps running, and the good files beside them are indexed.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import sqlalchemy as sa
from media import Clip, truncate, write_clip
from PIL import Image
from polling import wait_for
from services import catalog_env, start

from catalog import Asset, Catalog

GOOD = ("good.mp4", "new\nline.mp4", "ünïcødé 日本.mov")


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(20):
            samples = np.zeros((2, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1024, Fraction(1, 48000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _corpus(root: Path) -> dict[str, str]:
    """Write the bad files; return each one's name and a word its reason must contain."""
    (root / "empty.mov").write_bytes(b"")
    truncate(write_clip(root / "cut-short.mp4", Clip(shots=(1.0, 1.0))), keep_fraction=0.3)
    (root / "notes.mov").write_text("call the client about the harbour shots\n")
    Image.new("RGB", (64, 48), "red").save(root / "still.png")
    (root / "still.png").rename(root / "still.mkv")
    _audio_only(root / "voice-over.mov")
    os.symlink(root / "loop.mov", root / "loop.mov")  # a link to itself
    return {
        "empty.mov": "empty",
        "cut-short.mp4": "",
        "notes.mov": "not a video",
        "still.mkv": "a still image (png), not video",
        "voice-over.mov": "no video stream",
        "loop.mov": "",
    }


def test_bad_files_get_a_reason_and_good_ones_are_indexed(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    root.mkdir()
    bad = _corpus(root)
    for name in GOOD:
        write_clip(root / name, Clip(shots=(0.5, 0.5)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    service = start(env, tmp_path / "logs", "watch", str(root), "--settle", "0.3")

    def assets() -> dict[str, Asset]:
        with catalog.session() as s:
            return {Path(a.rel_path).name: a for a in s.scalars(sa.select(Asset))}

    failure: AssertionError | None = None
    try:
        wait_for(lambda: all(assets().get(n) is not None and assets()[n].status == "indexed" for n in GOOD), 120)
        wait_for(lambda: all(n in assets() for n in bad if n != "loop.mov"), 60)
        write_clip(root / "after.mp4", Clip(shots=(0.5, 0.5)))  # still running, still indexing
        wait_for(lambda: assets().get("after.mp4") is not None and assets()["after.mp4"].status == "indexed", 60)
    except AssertionError as exc:
        failure = exc
    finally:
        code, _, err = service.stop()
    found = assets()
    assert failure is None, f"{failure}: {sorted(found)}\n{err}"
    assert code == 0, err
    assert "Traceback" not in err, err
    for name, word in bad.items():
        if name == "loop.mov":
            continue  # never a file: nothing to record, nothing to stop the service
        asset = found[name]
        assert asset.status == "error" and asset.error, (name, asset.status)
        assert "\n" not in asset.error and word in asset.error, (name, asset.error)
    print(f"faults: bad-input corpus: runs=1 bad files={len(bad)} good files={len(GOOD) + 1} indexed=4 lost: 0")
