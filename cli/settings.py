"""The one place that reads footage's environment variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import platformdirs

from catalog import CatalogSettings
from catalog.devices import check_device_name
from catalog.storages import ENV_PREFIX as ENV_STORAGE_PREFIX
from indexer.settings import EmbeddingSettings
from upscaler.identity import SigningSettings

ENV_DATABASE_URL = "FOOTAGE_DATABASE_URL"
ENV_HOME = "FOOTAGE_HOME"


def footage_home() -> Path:
    """The data directory: ``FOOTAGE_HOME``, else the platform's user data directory."""
    raw = os.environ.get(ENV_HOME)
    home = Path(raw).expanduser() if raw else Path(platformdirs.user_data_dir("footage"))
    return home.absolute()


def catalog_settings() -> CatalogSettings:
    """``FOOTAGE_DATABASE_URL``, ``FOOTAGE_HOME``, ``FOOTAGE_HOST`` (this host's name, else the
    machine's) and every ``FOOTAGE_STORAGE_<NAME>=PATH`` (where this process has a storage)."""
    url = os.environ.get(ENV_DATABASE_URL) or None
    overrides = {
        key: Path(value).expanduser().absolute()
        for key, value in os.environ.items()
        if key.startswith(ENV_STORAGE_PREFIX) and value
    }
    return CatalogSettings(
        home=footage_home(),
        database_url=url,
        host=os.environ.get("FOOTAGE_HOST") or socket.gethostname(),
        storage_overrides=overrides,
        renditions_dir=renditions_dir(),
    )


def embedding_settings() -> EmbeddingSettings:
    """``FOOTAGE_CLIP_MODEL``, ``FOOTAGE_CLIP_PRETRAINED`` and ``FOOTAGE_DEVICE``."""
    defaults = EmbeddingSettings()
    return EmbeddingSettings(
        model=os.environ.get("FOOTAGE_CLIP_MODEL") or defaults.model,
        pretrained=os.environ.get("FOOTAGE_CLIP_PRETRAINED") or defaults.pretrained,
        device=device(),
    )


def renditions_dir() -> Path:
    """Where the ``renditions`` storage is made when none exists yet (one machine, no set-up):
    ``FOOTAGE_RENDITIONS_DIR``, else ``FOOTAGE_HOME/renditions``."""
    raw = os.environ.get("FOOTAGE_RENDITIONS_DIR")
    return (Path(raw).expanduser() if raw else footage_home() / "renditions").absolute()


def proxy_mode() -> str:
    """``FOOTAGE_PROXIES``: which versions get a proxy without being asked: ``auto`` (renditions
    and masters the browsers cannot play; the default), ``all`` or ``none``."""
    from catalog.proxies import DEFAULT_MODE, check_mode

    return check_mode(os.environ.get("FOOTAGE_PROXIES") or DEFAULT_MODE)


def models_dir() -> Path:
    """Where super-resolution weights are cached: ``FOOTAGE_MODELS_DIR``, else ``FOOTAGE_HOME/models``."""
    raw = os.environ.get("FOOTAGE_MODELS_DIR")
    return (Path(raw).expanduser() if raw else footage_home() / "models").absolute()


def device() -> str | None:
    """``FOOTAGE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``); unset picks CUDA when present."""
    return check_device_name(os.environ.get("FOOTAGE_DEVICE") or None)


def signing_settings() -> SigningSettings:
    """Who signs renditions' Content Credentials: ``FOOTAGE_SIGNING_CERT`` (PEM chain, signing
    certificate first) with ``FOOTAGE_SIGNING_KEY`` (PEM key) or ``FOOTAGE_SIGNING_COMMAND``
    (signs stdin to stdout); unset, a local identity made on first use in
    ``FOOTAGE_HOME/credentials``. ``FOOTAGE_TRUST_ANCHORS``: the PEM roots ``verify`` trusts."""

    def path(name: str) -> Path | None:
        raw = os.environ.get(name)
        return Path(raw).expanduser().absolute() if raw else None

    return SigningSettings(
        home=footage_home() / "credentials",
        cert_chain=path("FOOTAGE_SIGNING_CERT"),
        key=path("FOOTAGE_SIGNING_KEY"),
        command=os.environ.get("FOOTAGE_SIGNING_COMMAND") or None,
        trust_anchors=path("FOOTAGE_TRUST_ANCHORS"),
    )


def author() -> str:
    """Who a note, tag or selection entry is recorded as: FOOTAGE_USER, else the OS user."""
    import getpass

    named = os.environ.get("FOOTAGE_USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid {os.getuid()}"
