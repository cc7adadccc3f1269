"""Renditions on demand: planned output path, live fps, and renditions of unknown models.

A rendition linked by hand (made by another tool) has no model hash to record,
so ``model_sha256`` becomes optional; the hex check still applies when set.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("renditions", sa.Column("output_path", sa.Text(), nullable=True))
    op.add_column("renditions", sa.Column("fps", sa.Double(), nullable=True))
    op.alter_column("renditions", "model_sha256", existing_type=sa.Text(), nullable=True)
    op.create_check_constraint(op.f("ck_renditions_output_path_absolute"), "renditions", "output_path LIKE '/%'")
    op.create_index("ix_renditions_job_id", "renditions", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_renditions_job_id", table_name="renditions")
    op.drop_constraint(op.f("ck_renditions_output_path_absolute"), "renditions", type_="check")
    op.execute("DELETE FROM renditions WHERE model_sha256 IS NULL")
    op.alter_column("renditions", "model_sha256", existing_type=sa.Text(), nullable=False)
    op.drop_column("renditions", "fps")
    op.drop_column("renditions", "output_path")
