"""Rendering a rendition file from a master: the upscaler's one entry point.

``render`` reads top to bottom: check the request, open and inspect the
master, write down the provenance, run the decode -> model -> encode stages
(``upscaler.pipeline``), then verify the file and only then give it its
final name. The master is opened read-only and its hash must not change.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from catalog import FootageError
from catalog.devices import torch_device
from catalog.media import VideoFacts, content_hash, unreadable_reason, video_facts
from upscaler import planes
from upscaler.bands import band_rows
from upscaler.colour import rgb_format, source_tags
from upscaler.credentials import Signed, sign_rendition, write_sidecar_store
from upscaler.encode import CODECS, DEFAULT_CODEC, EncoderChoice, choose_encoder
from upscaler.errors import PlanError, RenderError, StorageFullError
from upscaler.files import opened_video, partial_path
from upscaler.geometry import Plan, plan
from upscaler.identity import SigningSettings, load_identity
from upscaler.inference import FrameUpscaler
from upscaler.loader import ModelIdentity, load_model
from upscaler.muxing import COPYABLE_AUDIO, open_output, plan_streams, verify_output
from upscaler.pipeline import Picture, PipelineSpec, RenderProgress, Upscale, run_pipeline
from upscaler.provenance import NOTICE, container_tags, now, software, write_sidecar
from upscaler.registry import ModelChoice
from upscaler.stabiliser import TemporalStage
from upscaler.temporal import TemporalSettings

__all__ = ["RenderProgress", "RenderRequest", "RenderResult", "render"]


# Batches beyond this gain nothing measurable and only delay the first frames.
MAX_BATCH = 8
# Chunked encoding (upscaler.chunks): each chunk encoder gets this many threads, which
# one x264/x265 instance still turns into speed at 4K; below twice as many cores one
# encoder's own threads do better: on 2 cores, 1080p -> 2160p pipeline ceiling, two
# chunk encoders of one thread against one encoder: x264 2.17 vs 2.21 fps, x265 1.69
# vs 2.14 (bench/upscale_speed.py --chunks 1 2 --chunk-seconds 0.32 --frames 32).
# The gain on many cores is not measured yet (no such machine was at hand).
THREADS_PER_CHUNK = 4
# A chunk's length: each starts with a keyframe, so shorter chunks cost bits (x264's
# own keyframe interval is 10 s at 25 fps), longer ones memory (up to one chunk of
# frames per encoder waits: 4 s of 4K 4:2:0 8-bit is 1.2 GB).
CHUNK_SECONDS = 4.0


@dataclass(frozen=True)
class RenderRequest:
    """One render. ``cache_dir`` holds registry weights (the CLI passes ``FOOTAGE_MODELS_DIR``);
    ``device`` ``None`` picks CUDA when present."""

    master: Path
    output: Path
    cache_dir: Path
    target: str = "4k"
    model: ModelChoice = field(default_factory=ModelChoice)
    codec: str = DEFAULT_CODEC
    force: bool = False
    tile: int | None = None
    device: str | None = None
    overwrite: bool = False
    temporal: TemporalSettings = field(default_factory=TemporalSettings)
    # Colour conversion on the model's device (planar YUV masters); False keeps swscale on the CPU.
    colour_on_device: bool = True
    # Frames per model call; None chooses from free GPU memory (1 on a CPU).
    batch: int | None = None
    # Chunk encoders at once; None chooses from the cores (1 below 2 x THREADS_PER_CHUNK).
    encode_chunks: int | None = None
    chunk_seconds: float = CHUNK_SECONDS
    # What the user asked for ("4k", "2x"), for the provenance, when ``target`` is the
    # size it was planned to (a queued request renders to its recorded size).
    label: str | None = None
    # Names this attempt's temporary file, unique among the attempts at one output even
    # across hosts (jobs pass the lease's epoch); None: this process's id.
    attempt: str | None = None
    # Who signs the rendition's Content Credentials. Footage's commands and workers always
    # pass one; None leaves the file unsigned (benchmarks and tests of other stages).
    signing: SigningSettings | None = None


@dataclass(frozen=True)
class RenderResult:
    output: Path
    sidecar: Path
    plan: Plan
    frames: int
    duration_s: float
    model: ModelIdentity
    provenance: dict[str, Any]
    credentials: Signed | None = None


@dataclass(frozen=True)
class _Inspected:
    """The master as the render sees it: its facts and what the pipeline will do with it."""

    facts: VideoFacts
    spec: PipelineSpec
    codec_name: str
    pix_fmt: str | None
    duration_s: float | None


def render(
    request: RenderRequest,
    progress: Callable[[RenderProgress], None] | None = None,
    cancel: threading.Event | None = None,
    before_publish: Callable[[], None] | None = None,
) -> RenderResult:
    """Render ``request.master`` to ``request.output``; the master is only ever read.

    ``before_publish`` runs once the file is verified, just before it takes its final
    name; raising there discards it (a render that lost its rendition to another).
    """
    master_path, output = _preflight(request)
    # Loaded first: a key that cannot sign fails the render now, not after it.
    identity = load_identity(request.signing) if request.signing is not None else None
    started = time.perf_counter()
    master_hash = content_hash(master_path)
    timings: dict[str, float] = {"hash_master_s": time.perf_counter() - started}
    device = torch_device(request.device)
    descriptor, model = load_model(request.model, request.cache_dir, device)
    container = _open_master(master_path)
    tmp = partial_path(output, request.attempt or os.getpid())
    try:
        master = _inspect(container, master_path, request, output.suffix)
        picture = master.facts.picture
        upscaler = FrameUpscaler(
            descriptor, device, master.spec.plan.width, master.spec.plan.height, picture.rotation, tile=request.tile
        )
        temporal = _temporal_stage(request.temporal, master)
        provenance = _provenance(master, master_path, master_hash, model, device, output.suffix)
        provenance["processing"]["temporal"] = request.temporal.parameters()
        written = open_output(tmp, output.suffix, master.spec, container, container_tags(provenance, master_path.name))
        device_time = _DeviceTime()
        work = device_time.timed(_frames(upscaler, temporal, master.spec), device)
        batch = _batch_size(request, device, (picture.width, picture.height), descriptor.scale)
        stats = run_pipeline(master.spec, container, written, work, progress, cancel, batch)
        timings.update({"pipeline_s": stats.pipeline_s, "model_s": stats.model_s, "fps": stats.fps})
        timings.update({f"{stage}_busy_s": s for stage, s in stats.stages.items() if stage != "model"})
        if device.type == "cuda":
            timings["device_s"] = device_time.seconds
        duration = _verify(tmp, master, stats.frames)
        if content_hash(master_path) != master_hash:
            raise RenderError(f"{master_path} changed during the render; the rendition was discarded")
        provenance["processing"].update(
            {
                "precision": upscaler.precision,
                "colour": "on the model's device" if master.spec.colour_on_device else "swscale on the CPU",
                "batch": batch,
                "encoding": _encoding(master.spec),
                "tile": upscaler.tile,
                "fallbacks": upscaler.fallbacks,
                "frames": stats.frames,
            }
        )
        if temporal is not None:
            provenance["processing"]["temporal"] = temporal.description()
            timings["temporal_s"] = temporal.stats.seconds
        provenance["timings"] = {k: round(v, 3) for k, v in timings.items()}
        signed = None
        if identity is not None:
            # The last step before the final name: only a verified file is ever signed.
            signing_started = time.perf_counter()
            signed = sign_rendition(tmp, output.name, master_path, provenance, identity)
            provenance["credentials"] = signed.record()
            provenance["timings"]["sign_s"] = round(time.perf_counter() - signing_started, 3)
        if before_publish is not None:
            before_publish()
        sidecar = write_sidecar(output, provenance)
        if signed is not None and signed.sidecar_bytes is not None:
            write_sidecar_store(output, signed.sidecar_bytes)
        os.replace(tmp, output)
        return RenderResult(output, sidecar, master.spec.plan, stats.frames, duration, model, provenance, signed)
    except (OSError, av.error.FFmpegError) as exc:
        failure = _failure(exc, master_path, output)
        if failure is None:
            raise
        raise failure from exc
    finally:
        container.close()
        tmp.unlink(missing_ok=True)


def _failure(exc: Exception, master_path: Path, output: Path) -> FootageError | None:
    """What a failed render tells the user; ``None`` for errors that are not the media's or the storage's."""
    # PyAV's errors from the muxer and encoders are OSErrors too, with the errno of the write.
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StorageFullError(
            f"no space left on {output.parent} (rendering {master_path.name}); the partial file was removed: "
            "free space there and request the rendition again"
        )
    if not master_path.exists():
        return RenderError(f"{master_path} vanished during the render (deleted, moved or its storage unmounted)")
    if isinstance(exc, av.error.FFmpegError):
        return RenderError(f"rendering {master_path.name} failed: {exc}")
    return None


def _temporal_stage(settings: TemporalSettings, master: _Inspected) -> TemporalStage | None:
    if not settings.enabled:
        return None
    spec = master.spec
    frame_pts = float(1 / (spec.rate * spec.time_base)) if spec.rate else None
    return TemporalStage(settings, master.facts.picture.rotation, frame_pts)


@dataclass
class _DeviceTime:
    """Seconds a CUDA device spent on the model stage's batches: CUDA events before and after
    each, so the time between batches (the stage waiting on the decoder or the encoder) is
    left out. With the temporal stage on, a batch's span includes the optical flow the CPU
    computes inside it, so the figure is an upper bound."""

    seconds: float = 0.0

    def timed(self, work: Upscale, device: torch.device) -> Upscale:
        if device.type != "cuda":
            return work

        def run(frames: list[tuple[Picture, int | None]]) -> list[Picture]:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            pictures = work(frames)
            end.record()
            end.synchronize()
            self.seconds += start.elapsed_time(end) / 1000
            return pictures

        return run


def _frames(upscaler: FrameUpscaler, temporal: TemporalStage | None, spec: PipelineSpec) -> Upscale:
    """The model stage's work on a batch: colour in, the model on the whole batch, the temporal
    stage frame by frame in order when it is on (it hands frames back later, the rest when
    called with none at the end), colour out."""
    planar_out = spec.colour_on_device and spec.encoder.pix_fmt in planes.FORMATS
    rgb_like = np.empty(0, np.uint16 if spec.rgb_fmt == "rgb48le" else np.uint8)

    def image(source: Picture) -> torch.Tensor:
        if isinstance(source, planes.Planes):
            return planes.to_rgb(source, spec.tags, upscaler.device)
        return upscaler.image(source)

    def colour_out(outs: list[torch.Tensor]) -> list[Picture]:
        if planar_out:  # one at a time: the temporal stage hands back a window of 4K frames at once
            return [picture for out in outs for picture in planes.from_rgb(out, spec.tags, spec.encoder.pix_fmt)]
        return [upscaler.to_pixels(out, rgb_like) for out in outs]

    def batch(frames: list[tuple[Picture, int | None]]) -> list[Picture]:
        with torch.inference_mode():
            if not frames:
                return colour_out(temporal.finish() if temporal is not None else [])
            images = [image(source) for source, _ in frames]
            # The coded size can change inside a batch: such frames go on their own.
            runs = [_joined(images)] if len({tuple(i.shape) for i in images}) == 1 else images
            if planar_out and temporal is None:
                # Resized and converted band by band, as each band comes (upscaler.bands).
                rows = band_rows(upscaler.device)
                return [
                    picture
                    for run in runs
                    for picture in planes.from_rgb_bands(
                        upscaler.upscale_bands(run, rows), spec.tags, spec.encoder.pix_fmt, upscaler.height
                    )
                ]
            out = _joined([upscaler.upscale_image(run) for run in runs])
            if temporal is None:
                return colour_out([out[i : i + 1] for i in range(len(frames))])
            return colour_out(
                [
                    done
                    for i, (source, pts) in enumerate(frames)
                    for done in temporal.push(source, images[i], out[i : i + 1], pts)
                ]
            )

    return batch


def _joined(pictures: list[torch.Tensor]) -> torch.Tensor:
    """``pictures`` as one batch; one picture (the common case) as it is: a cat would copy
    it, 100 MB for a 4K float frame."""
    return pictures[0] if len(pictures) == 1 else torch.cat(pictures)


def _batch_size(request: RenderRequest, device: torch.device, coded: tuple[int, int], scale: int) -> int:
    """Frames per model call: as asked, else 1 on a CPU (no gain there), else what half the
    free GPU memory holds, reckoning a frame's activations at eight times the model's float
    output (running out anyway, the upscaler halves the batch and carries on)."""
    if request.batch is not None:
        return request.batch
    if device.type != "cuda":
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    output_bytes = coded[0] * coded[1] * scale**2 * 3 * 4
    return max(1, min(MAX_BATCH, int(free * 0.5 // (8 * output_bytes))))


def _preflight(request: RenderRequest) -> tuple[Path, Path]:
    """(master, output) as absolute paths, once the request is one footage will render."""
    master_path = Path(os.path.abspath(request.master))
    output = Path(os.path.abspath(request.output))
    if output == master_path or (output.exists() and output.samefile(master_path)):
        raise PlanError("the output would overwrite the master; choose another --out")
    if output.exists() and not request.overwrite:
        raise PlanError(f"{output} already exists; choose another --out or add --overwrite")
    if output.suffix not in COPYABLE_AUDIO:
        raise PlanError(f"output must be .mov, .mp4 or .mkv, not {output.suffix or 'no suffix'}")
    codec = CODECS.get(request.codec)
    if codec is not None and output.suffix not in codec.containers:
        raise PlanError(
            f"{codec.name} does not go in {output.suffix} files: name the output "
            f"{output.with_suffix(codec.containers[0]).name}, or choose another --codec"
        )
    if not master_path.is_file():
        raise PlanError(f"no such master file: {master_path}")
    if not output.parent.is_dir():
        why = "is not a folder" if output.parent.exists() else "does not exist"
        raise PlanError(f"cannot write {output.name}: the folder {output.parent} {why}")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise PlanError(f"cannot write {output.name}: the folder {output.parent} is not writable")
    return master_path, output


def _open_master(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        raise RenderError(f"{path}: cannot open: {unreadable_reason(path, exc)}") from exc


def _inspect(container: av.container.InputContainer, path: Path, request: RenderRequest, suffix: str) -> _Inspected:
    """The master's facts, the output's geometry and encoder, and the pipeline's settings."""
    stream, first = opened_video(container, path)
    if stream.time_base is None:
        raise RenderError(f"{path}: the video stream has no time base, so its timestamps cannot be kept")
    facts = video_facts(stream, first)
    bit_depth = facts.bit_depth or 8
    encoder = choose_encoder(request.codec, bit_depth)
    chunks, threads = _encode_chunks(request, encoder)
    spec = PipelineSpec(
        plan=_labelled(plan(facts.picture, request.target, force=request.force), request.label),
        encoder=encoder,
        tags=source_tags(stream.codec_context, first),
        rgb_fmt=rgb_format(bit_depth),
        interlaced=facts.interlaced,
        streams=plan_streams(container, suffix),
        frames_total=stream.frames or None,
        time_base=stream.time_base,
        rate=facts.frame_rate,
        colour_on_device=request.colour_on_device and first.format.name in planes.FORMATS,
        encode_chunks=chunks,
        encode_threads=threads,
        chunk_frames=max(1, round(request.chunk_seconds * float(facts.frame_rate or 25))),
    )
    duration_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    if duration_s is None and container.duration:
        duration_s = container.duration / av.time_base
    return _Inspected(facts, spec, stream.codec_context.name, stream.codec_context.pix_fmt, duration_s)


def _encode_chunks(request: RenderRequest, encoder: EncoderChoice) -> tuple[int, int]:
    """(chunk encoders at once, threads each): as asked, else one per THREADS_PER_CHUNK cores
    when that makes two or more; one encoder with its own threading otherwise."""
    if not encoder.chunkable:
        return 1, 0
    cores = os.cpu_count() or 1
    chunks = request.encode_chunks if request.encode_chunks is not None else cores // THREADS_PER_CHUNK
    if chunks < 2:
        return 1, 0
    return chunks, max(1, cores // chunks)


def _encoding(spec: PipelineSpec) -> dict[str, int] | str:
    """How the video was encoded, as the provenance says it."""
    if spec.encode_chunks < 2:
        return "one encoder"
    return {
        "chunks_at_once": spec.encode_chunks,
        "threads_each": spec.encode_threads,
        "chunk_frames": spec.chunk_frames,
    }


def _labelled(planned: Plan, label: str | None) -> Plan:
    return dataclasses.replace(planned, label=label) if label else planned


def _provenance(
    master: _Inspected, path: Path, master_hash: str, identity: ModelIdentity, device: torch.device, suffix: str
) -> dict[str, Any]:
    """What the rendition will say about itself (timings and precision are added at the end)."""
    picture, spec = master.facts.picture, master.spec
    return {
        "notice": NOTICE,
        "created_at": now(),
        "master": {
            "path": str(path),
            "content_hash": master_hash,
            "width": picture.width,
            "height": picture.height,
            "sample_aspect_ratio": str(picture.sample_aspect_ratio),
            "codec": master.codec_name,
            "pix_fmt": master.pix_fmt,
            "interlaced": spec.interlaced,
            "rotation": picture.rotation,
        },
        "model": {
            "name": identity.name,
            "sha256": identity.sha256,
            "architecture": identity.architecture,
            "scale": identity.scale,
            "parameters": identity.parameters,
        },
        "output": {
            "label": spec.plan.label,
            "width": spec.plan.width,
            "height": spec.plan.height,
            "codec": spec.encoder.codec.name,
            "encoder": spec.encoder.encoder,
            "pix_fmt": spec.encoder.pix_fmt,
            "encoder_options": spec.encoder.options,
            "container": suffix.lstrip("."),
            "colour": {
                "primaries": spec.tags.primaries,
                "transfer": spec.tags.transfer,
                "matrix": spec.tags.matrix,
                "range": spec.tags.range,
            },
        },
        "processing": {
            "device": str(device),
            "deinterlaced": "bwdif (send_frame)" if spec.interlaced else None,
            "resize": "bicubic, antialiased, on the device",
        },
        "streams": {
            "copied": list(spec.streams.copied),
            "transcoded": dict(zip(spec.streams.transcoded, spec.streams.transcoded_as, strict=True)),
            # Keyed by the text codec they became (mov_text in QuickTime and MP4, ass in Matroska).
            f"subtitles_to_{spec.streams.subtitle_codec}": list(spec.streams.subtitles),
            "dropped": list(spec.streams.dropped),
        },
        "software": software(device),
    }


def _verify(tmp: Path, master: _Inspected, frames: int) -> float:
    """Verify the written file against the master; returns its duration (seconds)."""
    rate = master.spec.rate
    # Without a stated rate, the mean frame duration is the tolerance unit.
    frame_s = 1 / float(rate) if rate else (master.duration_s or 0.0) / max(1, frames)
    return verify_output(tmp, frames, master.duration_s, frame_s, master.spec.streams.audio)
