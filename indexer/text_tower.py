"""A CLIP text tower that loads without torch, for one-off searches.

A text query needs neither torchvision (open_clip's import pulls it in: about
1.5 s on 2 cores), nor torch itself (1.0 s), nor a model built with random
weights before the real ones are loaded. After the first full load, the text
tower is exported to ONNX and its tokenizer to a Hugging Face ``tokenizers``
file, cached together, keyed by the model's identity, its weights file and the
torch and open_clip versions. Later searches run them with ONNX Runtime, which
maps the weights from disk instead of copying them.

An export is only kept when it agrees with the full model: the same tokens for
a set of probe texts (unicode, punctuation, contractions, special tokens, text
past the context length) and the same embeddings within float rounding. Models
whose tokenizer is not open_clip's ``SimpleTokenizer`` with its default
cleaning are not exported; they load in full each time, as before.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import shutil
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

_PROBES = (
    "a red circle",
    "aerial shot of a harbour at dusk",
    "Ünïcödé & punctuation!? 123",
    "",
    "don't they're I'll we've it's",
    "&amp;quot;HTML&quot; escapes &lt;b&gt;",
    "tab\tnew\nline   spaces ",
    "日本語のテキスト 東京 Привет мир العربية",
    "emoji 🎬🎥 café naïve Ærø ß İstanbul",
    "CAPS Mixed 3.14159 $100,000 a—b–c…d",
    "<start_of_text> tokens written out <end_of_text>",
    " ".join(["a long query past the context length"] * 20),
)
# Embeddings of the exported and the full tower agree to float32 rounding; more is a bad export.
_TOLERANCE = 1e-4
# open_clip's word pattern (SimpleTokenizer.pat, less its special tokens, which the
# tokenizer matches first as added tokens).
_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def _clean(text: str) -> str:
    """open_clip's default ("lower") cleaning, which happens before its tokenizer splits words."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


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
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer, padded and truncated to the context length

    @property
    def identity(self) -> str:
        return self.settings.identity

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch([_clean(text) for text in texts])
        return np.array([e.ids for e in encoded], dtype=np.int64).reshape(len(texts), -1)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        (features,) = self.session.run(None, {"text": self.tokens(texts)})
        features = features.astype(np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


def _open(settings: EmbeddingSettings, folder: Path) -> TextTower:
    import onnxruntime
    from tokenizers import Tokenizer

    session = onnxruntime.InferenceSession(str(folder / "text.onnx"), providers=["CPUExecutionProvider"])
    return TextTower(settings, session, Tokenizer.from_file(str(folder / "tokenizer.json")))


def load(settings: EmbeddingSettings, cache_dir: Path) -> TextTower | None:
    """The cached text tower for ``settings``, or None when none was exported (or it is unreadable)."""
    if settings.device not in (None, "cpu"):
        return None  # exported on the CPU; a GPU search loads the full model
    folder = cache_dir / _key(settings)
    if not (folder / "meta.json").is_file():
        return None
    return _opened(settings, folder)


def _opened(settings: EmbeddingSettings, folder: Path) -> TextTower | None:
    """The tower exported into ``folder``, or None when ONNX Runtime or tokenizers cannot load it."""
    try:
        return _open(settings, folder)
    except Exception as exc:  # onnxruntime's and tokenizers' errors derive from Exception alone
        logger.debug("the text tower in %s is unusable (%s); the full model answers", folder, exc)
        return None


def _tokenizer(simple: Any) -> Any:
    """open_clip's ``SimpleTokenizer`` as a ``tokenizers`` pipeline: its byte-level BPE vocabulary
    and merges, its word pattern, start and end tokens, truncation and zero padding."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]
    tokenizer = Tokenizer(models.BPE(vocab=simple.encoder, merges=merges, end_of_word_suffix="</w>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORDS), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    special = [simple.decoder[i] for i in simple.all_special_ids]
    tokenizer.add_special_tokens(special)
    start, end = special[0], special[1]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{start} $A {end}", special_tokens=[(start, simple.sot_token_id), (end, simple.eot_token_id)]
    )
    tokenizer.enable_truncation(max_length=simple.context_length)
    tokenizer.enable_padding(length=simple.context_length, pad_id=0)
    return tokenizer


def _exportable(embedder: ClipEmbedder) -> bool:
    simple = embedder.tokenizer
    return (
        embedder.device.type == "cpu"
        and type(simple).__name__ == "SimpleTokenizer"
        and getattr(simple.clean_fn, "__name__", "") == "_clean_lower"
        and simple.reduction_fn is None
    )


def export(embedder: ClipEmbedder, cache_dir: Path) -> Path | None:
    """Export ``embedder``'s text tower into ``cache_dir`` when it can stand in for the full model;
    returns its folder, or None when this model cannot be exported."""
    import torch

    if not _exportable(embedder):
        return None
    model = embedder.model

    class _Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(text)

    folder = cache_dir / _key(embedder.settings)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _tokenizer(embedder.tokenizer).save(str(partial / "tokenizer.json"))
    tokens = embedder.tokenizer(list(_PROBES[:2]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on deprecated operators it rewrites
        torch.onnx.export(
            _Text().eval(),
            (tokens,),
            str(partial / "text.onnx"),
            input_names=["text"],
            output_names=["features"],
            dynamic_shapes={"text": {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=True,  # weights beside the graph, mapped from disk when loaded
            verbose=False,
        )
    candidate = _opened(embedder.settings, partial)
    if (
        candidate is None
        or not np.array_equal(candidate.tokens(_PROBES), embedder.tokenizer(list(_PROBES)).numpy())
        or not np.allclose(candidate.embed_text(_PROBES), embedder.embed_text(_PROBES), atol=_TOLERANCE)
    ):
        shutil.rmtree(partial)
        logger.debug("the exported text tower of %s is unusable or disagrees with the model", embedder.identity)
        return None
    meta = {"identity": embedder.identity, "context_length": embedder.tokenizer.context_length, **_versions()}
    (partial / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    for torchscript in (folder.with_suffix(".pt"), folder.with_suffix(".json")):
        torchscript.unlink(missing_ok=True)  # the export of earlier releases, 250 MB for ViT-B-32
    partial.replace(folder)  # last: a folder is only there whole, with its description
    return folder
