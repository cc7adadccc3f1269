"""Moment vectors stored as halfvec (pgvector 0.7+), the HNSW index rebuilt on it.

Half the table and index size of float32 ``vector``; a server whose pgvector
predates halfvec keeps ``vector`` (``footage db status`` says so, and ``footage
db upgrade`` converts once the extension is updated).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from catalog.vector_index import INDEX_NAME, create_index, use_halfvec, vector_support

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    use_halfvec(op.get_bind())


def downgrade() -> None:
    conn = op.get_bind()
    if vector_support(conn).storage != "halfvec":
        return
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))
    conn.execute(sa.text("ALTER TABLE segments ALTER COLUMN embedding TYPE vector USING embedding::vector"))
    create_index(conn, "vector")
