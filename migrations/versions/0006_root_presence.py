"""Watched folders that go away: a root on a mount remembers it was one, and when it is
offline (unmounted, unreachable) since when, so its files are not taken for deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("roots", sa.Column("mounted", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("roots", sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("roots", "offline_since")
    op.drop_column("roots", "mounted")
