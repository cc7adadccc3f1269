"""Loading super-resolution models with spandrel and running them on frames.

Only spandrel's core architectures (permissive licences) are registered;
``spandrel_extra_arches`` is never installed or imported.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from spandrel import ImageModelDescriptor, ModelLoader
from spandrel import UnsupportedModelError as SpandrelUnsupported

from catalog.media import file_sha256
from upscaler.errors import ChecksumError, UnsupportedModelError
from upscaler.registry import DENOISE_PAIRS, KNOWN_MODELS, KnownModel, ModelChoice, resolve_model
from upscaler.weights import fetch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights made a rendition, for the catalog and provenance."""

    name: str
    sha256: str
    architecture: str
    scale: int
    parameters: dict[str, Any]


def _state_dict_sha(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _weights_file(choice: ModelChoice, cache_dir: Path) -> tuple[Path, KnownModel | None]:
    """The verified local file of ``choice``'s weights, downloaded first for a registry model."""
    resolved = resolve_model(choice)
    if resolved.file is None:
        assert resolved.known is not None
        return fetch(resolved.known, cache_dir, expected_sha256=resolved.sha256), resolved.known
    if resolved.sha256 and file_sha256(resolved.file) != resolved.sha256:
        raise ChecksumError(f"{resolved.file} does not have the sha256 {choice.sha256} you asked for")
    return resolved.file, None


def load_model(
    choice: ModelChoice, cache_dir: Path, device: torch.device
) -> tuple[ImageModelDescriptor[Any], ModelIdentity]:
    """Load the chosen model onto ``device`` through spandrel, verified and described."""
    path, known = _weights_file(choice, cache_dir)
    loader = ModelLoader(device="cpu")
    try:
        state = loader.load_state_dict_from_file(path)
        parameters: dict[str, Any] = {}
        if choice.denoise is not None:
            state, parameters = _blend_for_denoise(loader, known, state, choice.denoise, cache_dir)
        descriptor = loader.load_from_state_dict(state)
    except SpandrelUnsupported as exc:
        raise UnsupportedModelError(f"{path.name}: not a model architecture footage can load ({exc})") from exc
    except (ValueError, RuntimeError, KeyError, OSError, pickle.UnpicklingError, EOFError) as exc:
        raise UnsupportedModelError(f"{path.name}: cannot load as a model: {str(exc).splitlines()[0]}") from exc
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR" or descriptor.scale < 2:
        raise UnsupportedModelError(
            f"{path.name} is a {descriptor.architecture.name} {descriptor.purpose} model, not a super-resolution one"
        )
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise UnsupportedModelError(f"{path.name} works on {descriptor.input_channels}-channel images, not RGB")
    descriptor.model.eval()
    descriptor.to(device)
    sha = file_sha256(path) if not parameters else _state_dict_sha(descriptor.model.state_dict())
    identity = ModelIdentity(
        name=known.name if known else path.stem,
        sha256=sha,
        architecture=descriptor.architecture.name,
        scale=descriptor.scale,
        parameters=parameters,
    )
    return descriptor, identity


def _blend_for_denoise(
    loader: ModelLoader, known: KnownModel | None, state: dict[str, Any], strength: float, cache_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Real-ESRGAN's deep network interpolation: ``strength * x4v3 + (1 - strength) * wdn``."""
    if known is None or known.name not in DENOISE_PAIRS:
        raise UnsupportedModelError(f"--denoise works with {', '.join(DENOISE_PAIRS)} only")
    if not 0.0 <= strength <= 1.0:
        raise UnsupportedModelError("--denoise takes a strength from 0 (keep noise) to 1 (remove it)")
    twin = KNOWN_MODELS[DENOISE_PAIRS[known.name]]
    weak = loader.load_state_dict_from_file(fetch(twin, cache_dir))
    blended = {k: strength * v + (1 - strength) * weak[k] if v.is_floating_point() else v for k, v in state.items()}
    return blended, {"denoise": strength, "blended_with": twin.name, "blended_with_sha256": twin.sha256}
