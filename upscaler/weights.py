"""Model weights: downloaded once into a cache, verified by sha256 before any use."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from catalog.media import file_sha256
from upscaler.errors import ChecksumError, DownloadError
from upscaler.registry import KnownModel

_CHUNK = 1 << 20


def cached_path(model: KnownModel, cache_dir: Path) -> Path:
    return cache_dir / model.filename


def cache_state(model: KnownModel, cache_dir: Path) -> str:
    """``yes`` (cached and verified), ``no``, ``other`` (a file under the model's name whose
    sha256 is not the registry's but which loads as a super-resolution model of the same
    scale: converted or fine-tuned, used by naming it) or ``damaged`` (neither: a cut or
    corrupt download). ``fetch`` uses only ``yes``."""
    target = cached_path(model, cache_dir)
    if not target.exists():
        return "no"
    if file_sha256(target) == model.sha256.lower():
        return "yes"
    return "other" if _loads_as_model(target, model.scale) else "damaged"


def _loads_as_model(path: Path, scale: int) -> bool:
    from spandrel import ImageModelDescriptor, ModelLoader

    try:
        descriptor = ModelLoader(device="cpu").load_from_file(path)
    except Exception:  # spandrel raises whatever the unpickler or the architecture raised
        return False
    return isinstance(descriptor, ImageModelDescriptor) and descriptor.purpose == "SR" and descriptor.scale == scale


def fetch(
    model: KnownModel,
    cache_dir: Path,
    *,
    expected_sha256: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """The verified local file of ``model``, downloading it on first use.

    The download goes to a temporary file that is renamed into the cache only
    once its hash matches, so a cut connection never leaves a usable bad file.
    A cached file is re-verified on every call: weights are small next to video.
    """
    expected = (expected_sha256 or model.sha256).lower()
    target = cached_path(model, cache_dir)
    if target.exists():
        actual = file_sha256(target)
        if actual != expected:
            raise ChecksumError(
                f"cached {target} has sha256 {actual}, expected {expected}: a converted or fine-tuned copy "
                f"is used by naming it (-m {target}); a damaged download, delete it to download again"
            )
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(model.url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(f"{model.url} downloaded with sha256 {actual}, expected {expected}; not used")
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(
            f"cannot download {model.name} from {model.url} ({exc}); on a host without internet, copy "
            f"{model.filename} (sha256 {expected}) into {cache_dir}, or name a model file with -m PATH"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
