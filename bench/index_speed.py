"""Indexing speed as a real-time factor (seconds of footage per wall second).

Generates 1080p H.264 footage, then indexes it end to end (probe, decode,
sample, embed, write) in full-decode and keyframe modes, and times decoding
alone, and decoding with the shot detector, to show where the time goes. Without downloadable weights the model is
the real architecture with random weights: the same compute as the real one.

    python bench/index_speed.py [--seconds 30] [--model ViT-B-32] [--pretrained TAG]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402

from bench.common import hardware, scratch_catalog, write_footage  # noqa: E402
from indexer.embed import ClipEmbedder  # noqa: E402
from indexer.index import IndexOptions, index_file  # noqa: E402
from indexer.probe import probe  # noqa: E402
from indexer.sampling import SamplingOptions, sample_moments  # noqa: E402
from indexer.settings import EmbeddingSettings  # noqa: E402
from indexer.shots import ShotFrame, make_detector  # noqa: E402


def _embedder(model: str, pretrained: str | None) -> tuple[ClipEmbedder, str]:
    if pretrained:
        return ClipEmbedder(EmbeddingSettings(model=model, pretrained=pretrained)), f"{model}/{pretrained}"
    return ClipEmbedder(EmbeddingSettings(model=model, pretrained=None)), f"{model} (random weights)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument(
        "--pretrained", default=None, help="weights tag or file (default: random weights, same compute)"
    )
    args = parser.parse_args()

    print(f"hardware: {hardware()}")
    embedder, label = _embedder(args.model, args.pretrained)
    print(f"model: {label} on {embedder.device}")
    with tempfile.TemporaryDirectory() as tmp, scratch_catalog() as catalog:
        video = write_footage(Path(tmp) / "1080p.mp4", 1920, 1080, args.seconds)
        info = probe(video)
        print(f"footage: 1920x1080 h264 {info.duration_s:.1f} s, {info.frame_rate} fps, GOP 2 s, shots of 4 s")
        for mode, keyframes in (("full", False), ("keyframes", True)):
            sampling = SamplingOptions(keyframes_only=keyframes)
            start = time.perf_counter()
            moments = sum(1 for _ in sample_moments(video, info, sampling))
            decode_s = time.perf_counter() - start

            start = time.perf_counter()
            result = index_file(catalog, embedder, video, IndexOptions(sampling=sampling, force=True))
            total_s = time.perf_counter() - start
            assert result.outcome == "indexed", result.message
            seconds = info.duration_s or 0.0
            print(
                f"index {mode}: {seconds / total_s:.2f}x real time end to end "
                f"({total_s:.2f} s wall, {moments} moments, {result.segments} vectors)"
            )
            print(f"decode+sample {mode}: {seconds / decode_s:.2f}x real time ({decode_s:.2f} s)")
        _shot_detection_cost(video, str(embedder.device))


def _shot_detection_cost(video: Path, device: str) -> None:
    """Decoding alone, then decoding with every frame fed to the shot detector."""
    make_detector(device)  # load the model outside the timing
    timings = {}
    for label in ("decode", "decode+detect"):
        detector = make_detector(device) if label == "decode+detect" else None
        frames = 0
        start = time.perf_counter()
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames += 1
                if detector is not None:
                    detector.push(float(frame.time or 0.0), ShotFrame(frame))
        if detector is not None:
            detector.finish()
        timings[label] = time.perf_counter() - start
    cost = (timings["decode+detect"] - timings["decode"]) / frames * 1000
    print(
        f"shot detection (fades + TransNetV2 on {device}): {cost:.2f} ms/frame on top of "
        f"{timings['decode'] / frames * 1000:.2f} ms/frame decoding ({frames} frames)"
    )


if __name__ == "__main__":
    main()
