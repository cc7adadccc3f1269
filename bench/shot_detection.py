"""Shot detection: precision and recall of each detector on edits with known boundaries.

Writes edited H.264 footage (tests/edits.py: hard cuts between shots of equal
brightness, dissolves, fades through black, a fade in from black, flashes,
fast pans and handheld shots that must not be cut), decodes each file once,
feeds every frame to every detector, and scores boundaries against the truth:
a boundary is found when a detection falls inside its span (two frames'
tolerance); a detection that matches no boundary is a false cut. Prints a table
(and --json) with the time each detector took per frame. "footage" is the
detector the indexer uses (PySceneDetect's fades merged with TransNetV2 at 0.4).

    python bench/shot_detection.py [--edits 6] [--shots 14] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edits import FPS, Truth, random_edit, write_edit  # noqa: E402

from bench.common import hardware  # noqa: E402
from indexer.shots import FadeShots, ShotDetector, ShotFrame, TransNetShots, make_detector  # noqa: E402

_BOUNDARY_KINDS = ("cut", "dissolve", "fade", "fade-in")
TOLERANCE = 2  # frames either side of a boundary's span


def score(found: list[int], truth: Truth) -> dict[str, int]:
    """Matches one to one, in order: each boundary takes the first unmatched detection in its span."""
    unmatched = sorted(set(found))
    hits: dict[str, int] = {}
    for boundary in truth.boundaries:
        inside = [f for f in unmatched if boundary.first - TOLERANCE <= f <= boundary.last + TOLERANCE]
        if inside:
            unmatched.remove(inside[0])
            hits[boundary.kind] = hits.get(boundary.kind, 0) + 1
    near = sum(
        1 for f in unmatched if any(b.first - 15 <= f <= b.last + 15 for b in truth.boundaries)
    )  # a second detection of a boundary: a sliver moment, harmless to search
    false_in = {span.kind: sum(1 for f in unmatched if span.first <= f <= span.last) for span in truth.keep_whole}
    kinds = [b.kind for b in truth.boundaries] + [s.kind for s in truth.keep_whole]
    return {
        **{f"of_{k}": kinds.count(k) for k in set(kinds)},
        "true": sum(hits.values()),
        "false": len(unmatched),
        "false_near": near,
        "boundaries": len(truth.boundaries),
        **{f"found_{k}": v for k, v in hits.items()},
        **{f"cut_{k}": v for k, v in false_in.items() if v},
    }


class ThresholdShots:
    """footage's detector before this bench: mean difference of 32x18 grey thumbnails above 30."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    settled = 0.0  # not used by the bench

    def push(self, t: float, shot: ShotFrame) -> list[float]:
        assert shot.frame is not None
        thumb = shot.frame.reformat(width=32, height=18, format="gray", interpolation="AREA").to_ndarray().astype(float)
        cut = self._previous is not None and float(np.abs(thumb - self._previous).mean()) > 30.0
        self._previous = thumb
        return [t] if cut else []

    def finish(self) -> list[float]:
        return []


class SceneDetectShots:
    """A PySceneDetect detector fed our frames (BGR, 256 wide, its own working size), for comparison.

    PySceneDetect is not a footage dependency (see indexer/shots.py); install it
    with ``pip install --no-deps scenedetect`` to get these rows.
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    settled = 0.0  # not used by the bench

    def push(self, t: float, shot: ShotFrame) -> list[float]:
        from scenedetect import FrameTimecode

        frame = shot.frame
        assert frame is not None
        height = round(frame.height * 256 / frame.width)
        image = frame.reformat(width=256, height=height, format="bgr24", interpolation="AREA").to_ndarray()
        found = self._detector.process_frame(FrameTimecode(round(t * FPS), Fraction(FPS)), image)
        return [float(c.seconds) for c in found]

    def finish(self) -> list[float]:
        return []


def _scenedetect() -> bool:
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        return False
    return True


def _make(name: str) -> ShotDetector:
    if name.startswith("transnetv2@"):
        return TransNetShots("cpu", threshold=float(name.split("@")[1]))
    if name.startswith("PySceneDetect"):
        from scenedetect import detectors

        return SceneDetectShots(getattr(detectors, name.split()[1])())
    makers: dict[str, Callable[[], ShotDetector]] = {
        "threshold 30": ThresholdShots,
        "fades": FadeShots,
        "footage": lambda: make_detector("cpu"),
    }
    return makers[name]()


def run(path: Path, names: list[str]) -> tuple[dict[str, list[int]], dict[str, float], int]:
    detectors: dict[str, ShotDetector] = {n: _make(n) for n in names}
    found: dict[str, list[float]] = {n: [] for n in names}
    spent = dict.fromkeys(names, 0.0)
    frames = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            for name, detector in detectors.items():
                start = time.perf_counter()
                # A ShotFrame each: every detector pays for its own small copy in its time.
                found[name].extend(detector.push(float(frame.time), ShotFrame(frame)))
                spent[name] += time.perf_counter() - start
            frames += 1
    for name, detector in detectors.items():
        found[name].extend(detector.finish())
    return {n: [round(t * FPS) for t in ts] for n, ts in found.items()}, spent, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=6)
    parser.add_argument("--shots", type=int, default=14)
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[0.5, 0.4, 0.3], help="TransNetV2 thresholds to try"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = [
        "threshold 30",
        *(f"PySceneDetect {d}" for d in ("ContentDetector", "AdaptiveDetector", "ThresholdDetector") if _scenedetect()),
        "fades",
        *(f"transnetv2@{t}" for t in args.thresholds),
        "footage",
    ]
    totals: dict[str, dict[str, int]] = {}
    spent_all = dict.fromkeys(names, 0.0)
    frames_all = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.edits):
            edit = random_edit(seed, args.shots)
            path = Path(tmp) / f"edit{seed}.mp4"
            truth = write_edit(path, edit)
            found, spent, frames = run(path, names)
            frames_all += frames
            for n in names:
                spent_all[n] += spent[n]
            for name, cuts in found.items():
                total = totals.setdefault(name, {})
                for key, value in score(cuts, truth).items():
                    total[key] = total.get(key, 0) + value
    rows = []
    for name, t in totals.items():
        precision = t["true"] / max(1, t["true"] + t["false"])
        recall = t["true"] / max(1, t["boundaries"])
        ms = spent_all[name] / max(1, frames_all) * 1000
        rows.append({"detector": name, "precision": precision, "recall": recall, "ms_per_frame": ms, **t})
    if args.json:
        print(json.dumps({"hardware": hardware(), "edits": args.edits, "frames": frames_all, "rows": rows}))
        return
    print(f"hardware: {hardware()}")
    print(f"edits: {args.edits} x {args.shots} shots, 480x270 H.264 at {FPS} fps, {frames_all} frames")
    print(f"{'detector':<32} {'precision':>9} {'recall':>7} {'ms/frame':>8}  found / missed by kind, false cuts")
    for row in rows:
        kinds = [k[3:] for k in row if k.startswith("of_")]
        found_by_kind = " ".join(
            f"{k} {row.get('found_' + k, 0)}/{row['of_' + k]}"
            for k in kinds
            if "found_" + k in row or k in _BOUNDARY_KINDS
        )
        cut = " ".join(f"{k} {row['cut_' + k]}" for k in kinds if "cut_" + k in row)
        print(
            f"{row['detector']:<32} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['ms_per_frame']:>8.2f}  "
            f"{found_by_kind}; false {row['false']}, {row['false_near']} of them beside a boundary"
            + (f" (in {cut})" if cut else "")
        )


if __name__ == "__main__":
    main()
