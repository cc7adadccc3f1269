"""Super-resolution models: loading through spandrel, the registry, verified weights."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import write_tiny_compact, write_tiny_rrdb

from catalog.media import file_sha256
from upscaler.errors import ChecksumError, DownloadError, UnknownModelError, UnsupportedModelError
from upscaler.loader import load_model
from upscaler.registry import KNOWN_MODELS, PRESETS, KnownModel, ModelChoice, known_model, resolve_model
from upscaler.tiling import upscale_tiled
from upscaler.weights import fetch

CPU = torch.device("cpu")


@pytest.mark.parametrize("writer", [write_tiny_compact, write_tiny_rrdb])
def test_pth_models_load_with_their_identity(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    path = writer(tmp_path / "model.pth")
    descriptor, identity = load_model(ModelChoice(str(path)), tmp_path, CPU)
    assert identity.scale == descriptor.scale == 4
    assert identity.sha256 == file_sha256(path)
    out = descriptor(torch.rand(1, 3, 12, 16))
    assert out.shape == (1, 3, 48, 64)


def test_safetensors_model(tmp_path: Path) -> None:
    pth = write_tiny_compact(tmp_path / "m.pth", scale=2)
    state = torch.load(pth, weights_only=True)["params"]
    path = tmp_path / "m.safetensors"
    save_file(state, str(path))
    descriptor, identity = load_model(ModelChoice(str(path)), tmp_path, CPU)
    assert (identity.scale, identity.architecture) == (2, "RealESRGAN Compact")


def test_unsupported_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    torch.save({"layer.weight": torch.zeros(3, 3)}, junk)
    with pytest.raises(UnsupportedModelError, match="junk.pth: not a model architecture footage can load"):
        load_model(ModelChoice(str(junk)), tmp_path, CPU)
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(UnsupportedModelError, match="notes.pth: cannot load as a model"):
        load_model(ModelChoice(str(text)), tmp_path, CPU)
    restorer = write_tiny_compact(tmp_path / "restore.pth", scale=1)
    with pytest.raises(UnsupportedModelError, match="Restoration model, not a super-resolution one"):
        load_model(ModelChoice(str(restorer)), tmp_path, CPU)


def test_wrong_sha256_of_a_local_file(tmp_path: Path) -> None:
    path = write_tiny_compact(tmp_path / "m.pth")
    with pytest.raises(ChecksumError, match="does not have the sha256"):
        load_model(ModelChoice(str(path), sha256="0" * 64), tmp_path, CPU)


def test_registry_and_presets() -> None:
    assert set(PRESETS.values()) <= set(KNOWN_MODELS)
    assert known_model("live-action-quality").name == "RealESRGAN_x4plus"
    for model in KNOWN_MODELS.values():
        assert model.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert len(model.sha256) == 64
    with pytest.raises(UnknownModelError, match="unknown model 'esrgan9000'; choose one of live-action-fast"):
        known_model("esrgan9000")


def test_one_resolver_decides_file_or_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tiny_compact(tmp_path / "mine.pth")
    monkeypatch.chdir(tmp_path)
    local = resolve_model(ModelChoice("mine.pth"))
    assert (local.name, local.file, local.known, local.sha256) == ("mine", path.resolve(), None, None)
    assert local.weights_sha256() == file_sha256(path)
    pinned = resolve_model(ModelChoice(str(path), sha256="AB" * 32))
    assert pinned.weights_sha256() == "ab" * 32  # the pin, lower-cased; the file is checked when loaded

    preset = resolve_model(ModelChoice("live-action-quality"))
    assert (preset.name, preset.file) == ("RealESRGAN_x4plus", None)
    assert preset.weights_sha256() == KNOWN_MODELS["RealESRGAN_x4plus"].sha256

    # A model file's name never falls through to the registry, and vice versa.
    with pytest.raises(UnsupportedModelError, match=r"^model file not found: /nonexistent\.pth$"):
        resolve_model(ModelChoice("/nonexistent.pth"))
    (tmp_path / "RealESRGAN_x2plus").mkdir()  # a folder is not a model file
    with pytest.raises(UnsupportedModelError, match="model file not found"):
        resolve_model(ModelChoice("RealESRGAN_x2plus"))
    with pytest.raises(UnknownModelError, match="unknown model 'esrgan9000'"):
        resolve_model(ModelChoice("esrgan9000"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder, standing in for the release host."""
    root = tmp_path / "served"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


def _known(url: str, sha: str) -> KnownModel:
    return KnownModel("tiny", url, sha, 4, "SRVGGNetCompact", "MIT", "tests", 0.1)


def test_download_is_verified_before_use(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    weights = write_tiny_compact(root / "tiny.pth")
    good = hashlib.sha256(weights.read_bytes()).hexdigest()
    cache = tmp_path / "cache"

    with pytest.raises(ChecksumError, match="expected " + "1" * 64 + "; not used"):
        fetch(_known(base + "tiny.pth", "1" * 64), cache)
    assert not any(cache.iterdir())  # nothing half-trusted is left behind

    seen: list[int] = []
    path = fetch(_known(base + "tiny.pth", good), cache, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == weights.read_bytes() and seen[-1] == weights.stat().st_size
    weights.rename(root / "gone.pth")
    assert fetch(_known(base + "tiny.pth", good), cache) == path  # cached: no second download

    path.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="delete it to download again"):
        fetch(_known(base + "tiny.pth", good), cache)

    # Offline: the failure says what to do instead, in one line.
    with pytest.raises(DownloadError) as offline:
        fetch(_known(base + "missing.pth", good), tmp_path / "empty-cache")
    said = str(offline.value)
    assert "\n" not in said and f"copy missing.pth (sha256 {good}) into {tmp_path / 'empty-cache'}" in said
    assert "-m PATH" in said


@pytest.mark.parametrize("writer", [write_tiny_compact, write_tiny_rrdb])
def test_tiled_equals_untiled(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    descriptor, _ = load_model(ModelChoice(str(writer(tmp_path / "m.pth"))), tmp_path, CPU)
    image = torch.rand(1, 3, 70, 100, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = descriptor(image)
        tiled = upscale_tiled(descriptor, image, scale=4, tile=24, overlap=16)  # 15 tiles
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("writer", [write_tiny_compact, write_tiny_rrdb])
def test_convolutional_models_run_channels_last_with_the_same_result(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    from upscaler.inference import FrameUpscaler

    descriptor, _ = load_model(ModelChoice(str(writer(tmp_path / "model.pth"))), tmp_path, CPU)
    image = torch.rand(2, 3, 24, 40)
    with torch.inference_mode():
        expected = descriptor(image)  # NCHW, as loaded
        upscaler = FrameUpscaler(descriptor, CPU, 160, 96)
        out = upscaler.model_only(image)
    assert upscaler.memory_format == torch.channels_last
    assert next(descriptor.model.parameters()).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_models_without_convolutions_keep_the_frames_layout(tmp_path: Path) -> None:
    from spandrel import ImageModelDescriptor

    from upscaler.inference import FrameUpscaler

    class Nearest(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    descriptor, _ = load_model(ModelChoice(str(write_tiny_compact(tmp_path / "m.pth", scale=2))), tmp_path, CPU)
    free = ImageModelDescriptor(Nearest(), {}, descriptor.architecture, "SR", [], True, True, 2, 3, 3)
    upscaler = FrameUpscaler(free, CPU, 32, 24)
    assert upscaler.memory_format == torch.preserve_format
    with torch.inference_mode():  # frames keep the layout they come in: no copy for nothing
        assert upscaler.model_only(torch.rand(1, 3, 12, 16)).is_contiguous()
        packed = torch.rand(1, 12, 16, 3).permute(0, 3, 1, 2)  # RGB pixels as decoded, viewed as NCHW
        assert upscaler.model_only(packed).is_contiguous(memory_format=torch.channels_last)
