"""Indexing speed against decoding alone, and where each indexed frame's time goes, per stage.

Generates three files (1080p H.264 8-bit, 2160p HEVC 10-bit, 1080p ProRes 422 HQ 10-bit),
then for each: decode-only throughput (the ceiling; full decode and keyframes only), and
a full index (`index_file`, the code `footage index` runs) in both modes with every stage
timed by wrapping the functions that do it: the 48x27 shrink for shot detection, the fade
rule, TransNetV2, the picture grid (frames shrunk for CLIP), the CLIP image tower,
thumbnails, content hash, probe, catalog writes. Shot detection runs in a thread of its
own beside decoding, so stage times (summed over threads) can add up to more than the
wall time; "decode and the rest" is the wall time the decoding
thread spent outside every stage: decoding, waiting on the other threads, bookkeeping.

With ``--at-once 1 2 4``, the 1080p H.264 file is also indexed that many times at once,
each in a thread of one process as a worker's ``--index-concurrency`` runs them, against the
same number of decode-only passes at once: what a watch host gains from indexing several
files together.

    python bench/index_speed.py [--seconds 8] [--files h264 hevc10 prores] [--at-once 1 2] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402

import catalog.thumbnails  # noqa: E402
import indexer.embed  # noqa: E402
import indexer.index  # noqa: E402
import indexer.sampling  # noqa: E402
import indexer.shots  # noqa: E402
from bench.common import hardware, scratch_catalog, write_footage  # noqa: E402
from indexer.embed import ClipEmbedder  # noqa: E402
from indexer.index import IndexOptions, index_file  # noqa: E402
from indexer.probe import probe  # noqa: E402
from indexer.sampling import SamplingOptions  # noqa: E402
from indexer.settings import EmbeddingSettings  # noqa: E402

FILES = {
    "h264": ("1080p.mp4", 1920, 1080, "libx264", "yuv420p", {"preset": "ultrafast"}),
    "hevc10": ("2160p.hevc.mov", 3840, 2160, "libx265", "yuv420p10le", {"preset": "ultrafast"}),
    "prores": ("1080p.prores.mov", 1920, 1080, "prores_ks", "yuv422p10le", {"profile": "3"}),
}
MAIN_THREAD = "(decoding thread)"
# (stage, owner, attribute): the functions whose time is the stage's.
STAGES: tuple[tuple[str, Any, str], ...] = (
    ("probe", indexer.index, "probe"),
    ("shrink 48x27", indexer.shots.ShotFrame, "small"),
    ("fade rule", indexer.shots.FadeShots, "push"),
    ("fade rule", indexer.shots.FadeShots, "finish"),
    ("TransNetV2", indexer.shots.TransNetShots, "push"),
    ("TransNetV2", indexer.shots.TransNetShots, "finish"),
    ("picture grid", indexer.sampling, "_picture"),
    ("CLIP image tower", indexer.embed.ClipEmbedder, "embed_images"),
    ("thumbnails", catalog.thumbnails.ThumbnailSet, "add"),
    ("content hash", indexer.index, "content_hash"),
    ("catalog writes", indexer.index, "upsert_asset"),
    ("catalog writes", indexer.index, "replace_moment_views"),
)


def _decode_only(path: Path, keyframes: bool) -> tuple[int, float]:
    """Frames decoded and seconds taken, threads as the indexer sets them."""
    start = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if keyframes:
            stream.codec_context.skip_frame = "NONKEY"
        for _ in container.decode(stream):
            frames += 1
    return frames, time.perf_counter() - start


@contextmanager
def _timed_stages() -> Iterator[dict[str, float]]:
    """Seconds spent in each stage while the block runs, exclusive of the stages it calls
    (the 48x27 shrink is made in its own thread, or inside whichever detector asks first), summed over
    threads; under ``MAIN_THREAD`` the decoding thread's share of all stages."""
    spent: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    local = threading.local()  # per thread, per open call: the time its nested stages took
    main = threading.get_ident()
    originals: list[tuple[Any, str, Any]] = []

    def wrap(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            inner = local.__dict__.setdefault("inner", [])
            inner.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                nested = inner.pop()
                with lock:
                    spent[stage] += took - nested
                    if threading.get_ident() == main and not inner:
                        spent[MAIN_THREAD] += took
                if inner:
                    inner[-1] += took

        return timed

    for stage, owner, name in STAGES:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        originals.append((owner, name, original))
        if isinstance(original, functools.cached_property) and isinstance(owner, type):
            replaced = functools.cached_property(wrap(stage, original.func))
            replaced.__set_name__(owner, name)
            setattr(owner, name, replaced)
        else:
            setattr(owner, name, wrap(stage, original))
    try:
        yield spent
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def _measure(catalog: Any, embedder: ClipEmbedder, path: Path) -> list[dict[str, Any]]:
    info = probe(path)
    seconds = info.duration_s or 0.0
    rows = []
    for mode, keyframes in (("full", False), ("keyframes", True)):
        frames, decode_s = _decode_only(path, keyframes)
        with _timed_stages() as spent:
            start = time.perf_counter()
            result = index_file(
                catalog, embedder, path, IndexOptions(sampling=SamplingOptions(keyframes_only=keyframes), force=True)
            )
            wall = time.perf_counter() - start
        assert result.outcome == "indexed", result.message
        in_main = spent.pop(MAIN_THREAD, 0.0)
        stages = {stage: round(s / frames * 1000, 3) for stage, s in spent.items()}
        stages["decode and the rest"] = round((wall - in_main) / frames * 1000, 3)
        # On a GPU this is the GPU's share of the wall time (both models wait for their results).
        model_s = spent.get("TransNetV2", 0.0) + spent.get("CLIP image tower", 0.0)
        rows.append(
            {
                "file": path.name,
                "mode": mode,
                "frames": frames,
                "decode_only_fps": round(frames / decode_s, 1),
                "index_fps": round(frames / wall, 1),
                "index_over_decode": round(decode_s / wall, 3),
                "index_real_time": round(seconds / wall, 2),
                "model_share": round(model_s / wall, 3),
                "ms_per_frame": stages,
            }
        )
    return rows


def _at_once(catalog: Any, embedder: ClipEmbedder, path: Path, copies: int) -> dict[str, Any]:
    """``copies`` full-decode indexes of ``path`` at once (under names of their own), and as
    many decode-only passes at once: frames a second over all of them."""
    names = []
    for i in range(copies):
        name = path.with_name(f"{path.stem}.{copies}.{i}{path.suffix}")
        if not name.exists():
            name.symlink_to(path)
        names.append(name)
    with concurrent.futures.ThreadPoolExecutor(copies) as pool:
        start = time.perf_counter()
        frames = sum(n for n, _ in pool.map(lambda n: _decode_only(n, False), names))
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        options = IndexOptions(force=True)
        results = list(pool.map(lambda n: index_file(catalog, embedder, n, options), names))
        wall = time.perf_counter() - start
    assert all(r.outcome == "indexed" for r in results), [r.message for r in results]
    seconds = sum(r.media_seconds for r in results)
    return {
        "file": path.name,
        "at_once": copies,
        "decode_only_fps": round(frames / decode_s, 1),
        "index_fps": round(frames / wall, 1),
        "index_over_decode": round(decode_s / wall, 3),
        "index_real_time": round(seconds / wall, 2),
    }


def _warm_up(catalog: Any, embedder: ClipEmbedder, folder: Path) -> None:
    """One short index first, so no measured file pays for kernels built on first use
    (oneDNN's, cuDNN's autotuning)."""
    path = write_footage(folder / "warm-up.mp4", 640, 360, 4.0)
    index_file(catalog, embedder, path, IndexOptions(force=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--files", nargs="+", choices=list(FILES), default=list(FILES))
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--at-once", type=int, nargs="*", default=[], help="files indexed at once (1080p H.264)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args()
    embedder = ClipEmbedder(EmbeddingSettings(model=args.model, pretrained=None))  # real compute, random weights
    indexer.shots.make_detector(str(embedder.device))  # TransNetV2 loaded outside the timing
    header = {"hardware": hardware(), "model": f"{args.model} (random weights) on {embedder.device}"}
    if not args.json:
        print("  ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, scratch_catalog() as catalog:
        _warm_up(catalog, embedder, Path(tmp))
        for key in args.files:
            name, width, height, codec, pix_fmt, options = FILES[key]
            path = write_footage(
                Path(tmp) / name, width, height, args.seconds, codec=codec, pix_fmt=pix_fmt, options=options
            )
            for row in _measure(catalog, embedder, path):
                rows.append(row)
                if not args.json:
                    print("  ".join(f"{k}={v}" for k, v in row.items() if k != "ms_per_frame"), flush=True)
                    print("    ms/frame: " + "  ".join(f"{k}={v}" for k, v in row["ms_per_frame"].items()), flush=True)
        if args.at_once:
            name, width, height, codec, pix_fmt, options = FILES["h264"]
            path = Path(tmp) / name
            if not path.exists():
                write_footage(path, width, height, args.seconds, codec=codec, pix_fmt=pix_fmt, options=options)
            for copies in args.at_once:
                row = _at_once(catalog, embedder, path, copies)
                rows.append(row)
                if not args.json:
                    print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.json:
        print(json.dumps({**header, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
