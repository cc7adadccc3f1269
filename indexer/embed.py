"""CLIP embeddings with open_clip: whole-picture views of a frame, and text queries."""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from catalog.devices import torch_device
from indexer.errors import EmbeddingModelError
from indexer.settings import EmbeddingSettings

# torch and open_clip are imported when a model is loaded, not when this module
# is: CLI commands that never embed (db, jobs, --help) start in a fraction of
# the time.

# Rounding when pixels are made square (a square frame becomes 448x447) and
# codecs' padded sizes (1920x1088) put a picture a hair over a whole number of
# squares. Up to this much over, it gets that whole number of views rather than
# a whole extra embedding, leaving out at most this fraction of the short side
# between two views.
_ASPECT_TOLERANCE = 0.05


def square_views(image: np.ndarray) -> list[np.ndarray]:
    """Overlapping square crops that together cover the whole picture.

    CLIP sees a centre square; a 16:9 frame would lose its sides. A picture
    with aspect ``a`` (long/short side) gets ``ceil(a)`` squares spread evenly
    from edge to edge, so 16:9 costs two views, 2.39:1 three, square one.
    """
    height, width = image.shape[:2]
    short, long = min(width, height), max(width, height)
    count = max(1, math.ceil(long / short - _ASPECT_TOLERANCE))
    if count == 1:
        offset = (long - short) // 2
        starts = [offset]
    else:
        starts = [round(i * (long - short) / (count - 1)) for i in range(count)]
    if width >= height:
        return [image[:, s : s + short] for s in starts]
    return [image[s : s + short, :] for s in starts]


# Seconds to wait for the model hub before saying it cannot be reached: the
# hub client itself retries for most of a minute per file.
_HUB_TIMEOUT_S = 3.0


def _weights_within_reach(settings: EmbeddingSettings) -> None:
    """Fail in seconds, with what to do, when the weights must be downloaded and the hub is out of reach."""
    import huggingface_hub
    import open_clip

    if settings.model.startswith("local-dir:"):
        return
    if settings.model.startswith("hf-hub:"):
        repo = settings.model.removeprefix("hf-hub:")
    else:
        if not settings.pretrained or Path(settings.pretrained).expanduser().exists():
            return  # no weights, or a local checkpoint
        repo = open_clip.get_pretrained_cfg(settings.model, settings.pretrained).get("hf_hub", "").strip("/")
        if not repo:
            return  # weights from a plain URL: open_clip's own cache decides
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "open_clip_config.json")
    if any(isinstance(huggingface_hub.try_to_load_from_cache(repo, name), str) for name in names):
        return
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=_HUB_TIMEOUT_S).close()
    except OSError as exc:
        raise EmbeddingModelError(
            f"cannot download CLIP model {settings.identity!r}: {host} is out of reach ({exc.strerror or exc}); "
            "connect this machine, or use weights you have: FOOTAGE_CLIP_MODEL=local-dir:/path/to/open_clip_folder, "
            "or FOOTAGE_CLIP_PRETRAINED=/path/to/weights.bin"
        ) from exc


class ClipEmbedder:
    """A loaded open_clip model: image and text towers on one device, in inference mode."""

    _load_lock = threading.Lock()

    def __init__(self, settings: EmbeddingSettings, *, text_only: bool = False) -> None:
        """Load the model once; ``text_only`` drops the image tower after loading
        (a text search needs only the text tower: about 350 MB less for ViT-B-32)."""
        import open_clip
        import torch

        self.settings = settings
        _weights_within_reach(settings)
        self.device = torch_device(settings.device)
        precision = "fp16" if self.device.type == "cuda" else "fp32"
        pretrained = None if settings.has_schema else settings.pretrained
        try:
            with self._load_lock:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    settings.model, pretrained=pretrained, precision=precision, device=self.device
                )
                self.tokenizer = open_clip.get_tokenizer(settings.model)
        except (RuntimeError, FileNotFoundError, ValueError, OSError) as exc:
            raise EmbeddingModelError(
                f"cannot load CLIP model {settings.identity!r}: {str(exc).splitlines()[0]}"
            ) from exc
        model.eval()
        if text_only:
            model.visual = None
        self.model: Any = model
        self.preprocess = preprocess
        # open_clip's own rule for the pictures' type at this precision: a model loaded in fp16
        # keeps some parameters (the class and position embeddings) in fp32, so the type of
        # any one parameter is not the type the first convolution takes.
        self._input_dtype = open_clip.get_input_dtype(precision) or torch.float32
        self.dim = int(self.embed_text(["dimension probe"]).shape[1])

    @property
    def identity(self) -> str:
        return self.settings.identity

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings (N, dim) float32 of RGB uint8 (H, W, 3) square pictures."""
        import torch

        if self.model.visual is None:
            raise EmbeddingModelError("this CLIP model was loaded for text queries only")

        out: list[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, len(images), self.settings.batch_size):
                chunk = images[i : i + self.settings.batch_size]
                batch = torch.stack([self.preprocess(Image.fromarray(im)) for im in chunk])
                features = self.model.encode_image(batch.to(self.device, self._input_dtype))
                out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings (N, dim) float32 of text queries."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            features = self.model.encode_text(tokens)
            return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
