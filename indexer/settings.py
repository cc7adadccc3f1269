"""Which CLIP model to embed with, filled in by the CLI (the only place that reads the environment).

A module of its own, without numpy or torch: the CLI builds these for every
search, and a search that a running ``footage serve`` answers must start light.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"


@dataclass(frozen=True)
class EmbeddingSettings:
    """Which CLIP to load, passed to open_clip untouched.

    ``model`` is an open_clip name, ``hf-hub:org/repo`` or ``local-dir:/path``;
    ``pretrained`` is a tag or a checkpoint path and only applies to plain names.
    ``device`` ``None`` picks CUDA when present, else CPU.
    """

    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    device: str | None = None
    batch_size: int = 32

    @property
    def has_schema(self) -> bool:
        return self.model.startswith(("hf-hub:", "local-dir:"))

    @property
    def identity(self) -> str:
        """The name stored with every vector: two identities never share a search."""
        if self.has_schema or not self.pretrained:
            return self.model
        return f"{self.model}/{self.pretrained}"
