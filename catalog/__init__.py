"""The footage catalog: models, sessions, the embedded server and migrations.

Imports nothing else of footage's; every other package builds on it.
"""

from catalog.database import Catalog, normalise_url, open_catalog
from catalog.embedded import EmbeddedServer, start_embedded, stop_embedded
from catalog.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FootageError,
    NotFoundError,
    SchemaOutOfDateError,
    UnsafePathError,
)
from catalog.settings import CatalogSettings
from catalog.status import DatabaseStatus, database_status
from catalog.tables import Asset, Base, MomentView, Rendition, Root

__all__ = [
    "Asset",
    "Base",
    "Catalog",
    "CatalogSettings",
    "ConfigurationError",
    "DatabaseStatus",
    "DatabaseUnavailableError",
    "EmbeddedServer",
    "FootageError",
    "NotFoundError",
    "Rendition",
    "Root",
    "SchemaOutOfDateError",
    "MomentView",
    "UnsafePathError",
    "database_status",
    "normalise_url",
    "open_catalog",
    "start_embedded",
    "stop_embedded",
]
