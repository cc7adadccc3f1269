"""Known super-resolution models and the presets that pick one by content.

The sha256 values come from a public model database and have NOT been checked
against a download by us; a user who finds a mismatch can pass the hash they
verified (``--sha256``) or a local file. A mismatch is always an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.media import file_sha256
from upscaler.errors import UnknownModelError, UnsupportedModelError

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download/"


@dataclass(frozen=True)
class KnownModel:
    name: str
    url: str
    sha256: str
    scale: int
    architecture: str
    licence: str
    good_for: str
    size_mb: float

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            "RealESRGAN_x4plus",
            _RELEASES + "v0.1.0/RealESRGAN_x4plus.pth",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            4,
            "ESRGAN (RRDBNet)",
            "BSD-3-Clause",
            "live action, best detail; slowest",
            63.9,
        ),
        KnownModel(
            "RealESRGAN_x2plus",
            _RELEASES + "v0.2.1/RealESRGAN_x2plus.pth",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            2,
            "ESRGAN (RRDBNet)",
            "BSD-3-Clause",
            "live action at 2x (HD to UHD)",
            64.0,
        ),
        KnownModel(
            "RealESRGAN_x4plus_anime_6B",
            _RELEASES + "v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            4,
            "ESRGAN (RRDBNet, 6 blocks)",
            "BSD-3-Clause",
            "animation and illustration, stills quality",
            17.0,
        ),
        KnownModel(
            "realesr-general-x4v3",
            _RELEASES + "v0.2.5.0/realesr-general-x4v3.pth",
            "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            4,
            "SRVGGNetCompact",
            "BSD-3-Clause",
            "live action, fast; strong denoise (see --denoise)",
            4.7,
        ),
        KnownModel(
            "realesr-general-wdn-x4v3",
            _RELEASES + "v0.2.5.0/realesr-general-wdn-x4v3.pth",
            "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",
            4,
            "SRVGGNetCompact",
            "BSD-3-Clause",
            "weak-denoise twin of general-x4v3, for --denoise",
            4.7,
        ),
        KnownModel(
            "realesr-animevideov3",
            _RELEASES + "v0.2.5.0/realesr-animevideov3.pth",
            "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
            4,
            "SRVGGNetCompact",
            "BSD-3-Clause",
            "animation video, fast and temporally calm",
            2.4,
        ),
    )
}

# Pick by content, then compare candidates on samples with `footage preview`.
PRESETS: dict[str, str] = {
    "live-action-fast": "realesr-general-x4v3",
    "live-action-quality": "RealESRGAN_x4plus",
    "animation": "realesr-animevideov3",
    "2x": "RealESRGAN_x2plus",
}
DEFAULT_MODEL = "live-action-fast"


@dataclass(frozen=True)
class ModelChoice:
    """What the user asked for: a preset, registry name or model file, and options."""

    name: str = DEFAULT_MODEL
    sha256: str | None = None  # overrides the registry's hash (or pins a local file)
    denoise: float | None = None  # 0 keeps noise, 1 removes it (general-x4v3 only)


# general-x4v3's --denoise blends its weights with this twin (Real-ESRGAN's DNI).
DENOISE_PAIRS: dict[str, str] = {"realesr-general-x4v3": "realesr-general-wdn-x4v3"}


def known_model(name: str) -> KnownModel:
    """A registry model by name or preset name; ``UnknownModelError`` lists the choices."""
    resolved = PRESETS.get(name, name)
    try:
        return KNOWN_MODELS[resolved]
    except KeyError:
        choices = ", ".join([*PRESETS, *KNOWN_MODELS])
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of {choices}, or a .pth/.safetensors/.pt file"
        ) from None


# A name with one of these suffixes is a model file, never a registry name.
MODEL_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a choice's weights come from, decided without loading or downloading them.

    ``file`` is an absolute local model file, or ``None`` for a registry model
    (then ``known`` says which). ``sha256`` is the hash the weights must have:
    the user's pin, else the registry's; ``None`` for an unpinned local file.
    """

    name: str
    file: Path | None
    known: KnownModel | None
    sha256: str | None

    def weights_sha256(self) -> str:
        """The hash that identifies these weights: the expected one, else the local file's own."""
        if self.sha256 is not None:
            return self.sha256
        assert self.file is not None  # a registry model always has an expected hash
        return file_sha256(self.file)


def resolve_model(choice: ModelChoice) -> ResolvedModel:
    """Decide once whether ``choice`` names a model file or a registry model.

    A name with a model suffix, or one that exists on disk, is a file: it must
    be a readable file (``UnsupportedModelError``: "model file not found").
    Anything else is a preset or registry name (``UnknownModelError`` lists them).
    """
    pinned = choice.sha256.lower() if choice.sha256 else None
    path = Path(choice.name).expanduser()
    if path.suffix.lower() in MODEL_SUFFIXES or path.exists():
        if not path.is_file():
            raise UnsupportedModelError(f"model file not found: {path}")
        return ResolvedModel(path.stem, path.resolve(), None, pinned)
    known = known_model(choice.name)
    return ResolvedModel(known.name, None, known, pinned or known.sha256)
