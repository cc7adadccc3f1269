"""Settings of the catalog, filled in by the CLI (the only place that reads the environment)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CatalogSettings:
    """Where the catalog lives.

    ``database_url`` names an existing PostgreSQL server with pgvector
    (``postgresql+psycopg://...``); ``None`` means footage runs its own embedded
    server in ``home / "pgdata"`` and migrates it on first use.
    """

    home: Path
    database_url: str | None = None
    # This host's name: its own storage is ``host-<name>`` (FOOTAGE_HOST, else the machine's name).
    host: str = field(default_factory=socket.gethostname)
    # Storage folders for this process only, by FOOTAGE_STORAGE_<NAME> (catalog.storages.env_key).
    storage_overrides: Mapping[str, Path] = field(default_factory=dict)
    # Where the renditions storage is made when a first rendition is asked for and none exists.
    renditions_dir: Path | None = None

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"
