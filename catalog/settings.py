"""Settings of the catalog, filled in by the CLI (the only place that reads the environment)."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"
