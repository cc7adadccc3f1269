"""What ``footage db status`` reports about the catalog database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from catalog import schema
from catalog.database import Catalog
from catalog.embedded import OldData, old_data
from catalog.storages import Mounts
from catalog.tables import TABLES, Root
from catalog.vector_index import vector_support


@dataclass(frozen=True)
class DatabaseStatus:
    """Server, schema and size of the catalog. Counts are ``None`` before migration."""

    url: str
    embedded: bool
    embedded_pid: int | None
    embedded_started: bool | None
    server_version: str
    pgvector_version: str | None
    revision: str | None
    head_revision: str
    row_counts: dict[str, int | None] = field(default_factory=dict)
    vector_storage: str | None = None  # halfvec (canonical) or vector
    lacks: list[str] = field(default_factory=list)  # of the canonical vector layout, with what to do
    # Watched folders: path, online, offline_since and last_scan_at (ISO 8601).
    roots: list[dict[str, object]] = field(default_factory=list)
    # The embedded catalog's data directory from before an upgrade, while it is kept.
    old_data: OldData | None = None

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head_revision


def database_status(catalog: Catalog) -> DatabaseStatus:
    """Ask the server about itself and the catalog's tables."""
    revision = schema.current_revision(catalog.engine)
    with catalog.engine.connect() as conn:
        server_version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        pgvector_version = conn.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one_or_none()
        support = vector_support(conn) if pgvector_version else None
        counts: dict[str, int | None] = {}
        for model in TABLES:
            table = model.__table__
            assert isinstance(table, sa.Table)
            present = conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": table.name}).scalar_one()
            counts[table.name] = (
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() if present else None
            )
        roots = (
            _roots(conn, catalog.mounts)
            if counts.get("roots") is not None and revision == schema.head_revision()
            else []
        )
    embedded = catalog.embedded
    return DatabaseStatus(
        url=catalog.engine.url.render_as_string(hide_password=True),
        embedded=embedded is not None,
        embedded_pid=embedded.pid if embedded else None,
        embedded_started=embedded.started if embedded else None,
        server_version=server_version,
        pgvector_version=pgvector_version,
        revision=revision,
        head_revision=schema.head_revision(),
        row_counts=counts,
        vector_storage=support.storage if support else None,
        lacks=support.lacks() if support else [],
        roots=roots,
        old_data=old_data(embedded.pgdata) if embedded else None,
    )


def _roots(conn: sa.Connection, mounts: Mounts) -> list[dict[str, object]]:
    rows = conn.execute(
        sa.select(Root.storage_id, Root.rel_path, Root.offline_since, Root.last_scan_at).order_by(
            Root.storage_id, Root.rel_path
        )
    )
    return [
        {
            "path": mounts.shown(row.storage_id, row.rel_path),
            "online": row.offline_since is None,
            "offline_since": _iso(row.offline_since),
            "last_scan_at": _iso(row.last_scan_at),
        }
        for row in rows
    ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
