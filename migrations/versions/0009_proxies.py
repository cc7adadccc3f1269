"""Proxies: a small H.264 file per version (master or rendition) that every browser and
editor plays, listed with the version it stands in for.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "proxies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("progress", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("storage_id", sa.BigInteger(), nullable=True),
        sa.Column("rel_path", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("video_codec", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column(
            "provenance", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_proxies_status_known")),
        sa.CheckConstraint("status <> 'failed' OR error IS NOT NULL", name=op.f("ck_proxies_failed_has_error")),
        sa.CheckConstraint("status <> 'done' OR storage_id IS NOT NULL", name=op.f("ck_proxies_done_has_file")),
        sa.CheckConstraint("(storage_id IS NULL) = (rel_path IS NULL)", name=op.f("ck_proxies_file_whole")),
        sa.CheckConstraint("rel_path NOT LIKE '/%' AND rel_path <> ''", name=op.f("ck_proxies_rel_path_relative")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_proxies_attempts_not_negative")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_proxies_progress_fraction")),
        sa.ForeignKeyConstraint(
            ["source_id"], ["assets.id"], name=op.f("fk_proxies_source_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["storage_id"], ["storages.id"], name=op.f("fk_proxies_storage_id_storages"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxies")),
        sa.UniqueConstraint("source_id", name=op.f("uq_proxies_source_id")),
        sa.UniqueConstraint("storage_id", "rel_path", name=op.f("uq_proxies_storage_id_rel_path")),
    )


def downgrade() -> None:
    op.drop_table("proxies")
