"""The one place that reads footage's environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from catalog import CatalogSettings
from catalog.devices import check_device_name
from indexer.settings import EmbeddingSettings

ENV_DATABASE_URL = "FOOTAGE_DATABASE_URL"
ENV_HOME = "FOOTAGE_HOME"


def footage_home() -> Path:
    """The data directory: ``FOOTAGE_HOME``, else the platform's user data directory."""
    raw = os.environ.get(ENV_HOME)
    home = Path(raw).expanduser() if raw else Path(platformdirs.user_data_dir("footage"))
    return home.absolute()


def catalog_settings() -> CatalogSettings:
    url = os.environ.get(ENV_DATABASE_URL) or None
    return CatalogSettings(home=footage_home(), database_url=url)


def embedding_settings() -> EmbeddingSettings:
    """``FOOTAGE_CLIP_MODEL``, ``FOOTAGE_CLIP_PRETRAINED`` and ``FOOTAGE_DEVICE``."""
    defaults = EmbeddingSettings()
    return EmbeddingSettings(
        model=os.environ.get("FOOTAGE_CLIP_MODEL") or defaults.model,
        pretrained=os.environ.get("FOOTAGE_CLIP_PRETRAINED") or defaults.pretrained,
        device=device(),
    )


def renditions_dir() -> Path:
    """Where footage writes renditions: ``FOOTAGE_RENDITIONS_DIR``, else ``FOOTAGE_HOME/renditions``."""
    raw = os.environ.get("FOOTAGE_RENDITIONS_DIR")
    return (Path(raw).expanduser() if raw else footage_home() / "renditions").absolute()


def models_dir() -> Path:
    """Where super-resolution weights are cached: ``FOOTAGE_MODELS_DIR``, else ``FOOTAGE_HOME/models``."""
    raw = os.environ.get("FOOTAGE_MODELS_DIR")
    return (Path(raw).expanduser() if raw else footage_home() / "models").absolute()


def device() -> str | None:
    """``FOOTAGE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``); unset picks CUDA when present."""
    return check_device_name(os.environ.get("FOOTAGE_DEVICE") or None)
