"""The footage catalog: models, sessions, the embedded server and migrations.

Imports nothing else of footage's; every other package builds on it. Names are
loaded on first use (PEP 562), so ``from catalog import FootageError`` does not
pull in SQLAlchemy and psycopg: a CLI command answered by ``footage serve``
starts without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "catalog.database": ("Catalog", "normalise_url", "open_catalog"),
    "catalog.embedded": ("EmbeddedServer", "start_embedded", "stop_embedded"),
    "catalog.errors": (
        "ConfigurationError",
        "DatabaseUnavailableError",
        "FootageError",
        "NotFoundError",
        "SchemaOutOfDateError",
        "UnsafePathError",
    ),
    "catalog.settings": ("CatalogSettings",),
    "catalog.status": ("DatabaseStatus", "database_status"),
    "catalog.tables": ("Asset", "Base", "MomentView", "Rendition", "Root"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

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
    "MomentView",
    "NotFoundError",
    "Rendition",
    "Root",
    "SchemaOutOfDateError",
    "UnsafePathError",
    "database_status",
    "normalise_url",
    "open_catalog",
    "start_embedded",
    "stop_embedded",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
