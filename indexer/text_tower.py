"""A CLIP text tower that loads in a fraction of the full model's time, for one-off searches.

Importing open_clip pulls in torchvision (about 1.5 s on 2 cores) and building the
model initialises every weight before loading the real ones. A text query needs
neither: after the first full load, the text tower is exported with TorchScript
(``torch.jit.trace``) and cached, keyed by the model's identity, its weights file
and the torch and open_clip versions. Later searches load that file with
``torch.jit.load`` and tokenize with open_clip's own tokenizer module, loaded by
itself (it has no imports from the rest of open_clip).

An export is only kept when it agrees with the full model: the same tokens and
the same embeddings (within float rounding) for a set of probe queries.
Models whose tokenizer is not open_clip's ``SimpleTokenizer`` are not exported;
they load in full each time, as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.settings import EmbeddingSettings

if TYPE_CHECKING:
    from indexer.embed import ClipEmbedder

logger = logging.getLogger(__name__)

_PROBES = ("a red circle", "aerial shot of a harbour at dusk", "Ünïcödé & punctuation!? 123", "")
# Embeddings of the traced and the full tower agree to float32 rounding; more is a bad export.
_TOLERANCE = 1e-4


def _tokenizer_module() -> Any:
    """open_clip's ``tokenizer.py``, loaded without the package (whose import pulls in torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("footage_open_clip_tokenizer", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"torch": version("torch"), "open_clip": version("open-clip-torch")}


def _weights_fingerprint(settings: EmbeddingSettings) -> list[Any]:
    """What changes when the weights behind the same identity change: local files' size and time."""
    files: list[Path] = []
    if settings.model.startswith("local-dir:"):
        files = sorted(Path(settings.model.removeprefix("local-dir:")).glob("*"))
    elif settings.pretrained and Path(settings.pretrained).expanduser().exists():
        files = [Path(settings.pretrained).expanduser()]
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]


def _key(settings: EmbeddingSettings) -> str:
    ident = {"identity": settings.identity, "weights": _weights_fingerprint(settings), **_versions()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class TextTower:
    """A text-only encoder with ``ClipEmbedder``'s text interface (``embed_text``, ``identity``)."""

    settings: EmbeddingSettings
    module: Any  # torch.jit.ScriptModule
    tokenizer: Any  # open_clip SimpleTokenizer

    @property
    def identity(self) -> str:
        return self.settings.identity

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features = self.module(self.tokenizer(list(texts)))
            return torch.nn.functional.normalize(features.float(), dim=-1).numpy()


def load(settings: EmbeddingSettings, cache_dir: Path) -> TextTower | None:
    """The cached text tower for ``settings``, or None when none was exported (or it is unreadable)."""
    if settings.device not in (None, "cpu"):
        return None  # exported on the CPU; a GPU search loads the full model
    key = _key(settings)
    module_file, meta_file = cache_dir / f"{key}.pt", cache_dir / f"{key}.json"
    if not module_file.is_file() or not meta_file.is_file():
        return None
    try:
        import torch

        meta = json.loads(meta_file.read_text())
        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, not gone
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(module_file), map_location="cpu")
        tokenizer = _tokenizer_module().SimpleTokenizer(context_length=int(meta["context_length"]))
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        logger.debug("the cached text tower %s is unusable (%s); loading the full model", module_file, exc)
        return None
    return TextTower(settings, module, tokenizer)


def export(embedder: ClipEmbedder, cache_dir: Path) -> Path | None:
    """Trace ``embedder``'s text tower into ``cache_dir`` when it can stand in for the full model;
    returns the file, or None when this model cannot be exported."""
    import torch

    if embedder.device.type != "cpu" or type(embedder.tokenizer).__name__ != "SimpleTokenizer":
        return None
    tokenizer = _tokenizer_module().SimpleTokenizer(context_length=embedder.tokenizer.context_length)
    tokens = embedder.tokenizer(list(_PROBES))
    if not torch.equal(tokenizer(list(_PROBES)), tokens):
        return None  # a tokenizer set up differently (cleaning, special tokens): not ours to rebuild

    model = embedder.model

    class _Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(text)

    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python values it freezes (shapes of the 77-token input):
        # the export is checked against the model below instead.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Text().eval(), tokens, check_trace=False)
    key = _key(embedder.settings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    module_file = cache_dir / f"{key}.pt"
    partial = module_file.with_suffix(".pt.partial")
    traced.save(str(partial))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        candidate = TextTower(embedder.settings, torch.jit.load(str(partial)), tokenizer)
    if not np.allclose(candidate.embed_text(_PROBES), embedder.embed_text(_PROBES), atol=_TOLERANCE):
        partial.unlink()
        logger.debug("the traced text tower of %s disagrees with the model; not cached", embedder.identity)
        return None
    meta = {"identity": embedder.identity, "context_length": tokenizer.context_length, **_versions()}
    (cache_dir / f"{key}.json").write_text(json.dumps(meta, indent=2))
    partial.replace(module_file)  # last: a module file is only there with its description
    return module_file
