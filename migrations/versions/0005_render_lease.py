"""A render's lease on its rendition: one owner at a time, fenced by an epoch.

``lease_epoch`` counts the renders that took the rendition; only the holder of
the current epoch may record progress, finish or fail it. ``lease_expires_at``
is the database's time after which another worker may take it over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("renditions", sa.Column("lease_epoch", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column("renditions", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("renditions", "lease_expires_at")
    op.drop_column("renditions", "lease_epoch")
