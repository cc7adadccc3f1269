"""The catalog: roots, assets, segments (pgvector, HNSW cosine), renditions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "roots",
        _id(),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("polling", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("last_scan_at", TZ, nullable=True),
        sa.CheckConstraint("path LIKE '/%'", name=op.f("ck_roots_path_absolute")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roots")),
        sa.UniqueConstraint("path", name=op.f("uq_roots_path")),
    )

    op.create_table(
        "assets",
        _id(),
        sa.Column("kind", sa.Text(), server_default="master", nullable=False),
        sa.Column("root_id", sa.BigInteger(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mtime", TZ, nullable=True),
        sa.Column("container", sa.Text(), nullable=True),
        sa.Column("video_codec", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("sar_num", sa.Integer(), nullable=True),
        sa.Column("sar_den", sa.Integer(), nullable=True),
        sa.Column("dar_num", sa.Integer(), nullable=True),
        sa.Column("dar_den", sa.Integer(), nullable=True),
        sa.Column("frame_rate_num", sa.Integer(), nullable=True),
        sa.Column("frame_rate_den", sa.Integer(), nullable=True),
        sa.Column("variable_frame_rate", sa.Boolean(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("start_time_s", sa.Double(), nullable=True),
        sa.Column("pixel_format", sa.Text(), nullable=True),
        sa.Column("bit_depth", sa.SmallInteger(), nullable=True),
        sa.Column("color_primaries", sa.Text(), nullable=True),
        sa.Column("color_transfer", sa.Text(), nullable=True),
        sa.Column("color_matrix", sa.Text(), nullable=True),
        sa.Column("color_range", sa.Text(), nullable=True),
        sa.Column("field_order", sa.Text(), nullable=True),
        sa.Column("rotation", sa.SmallInteger(), nullable=True),
        sa.Column("timecode", sa.Text(), nullable=True),
        sa.Column("audio_streams", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("indexed_at", TZ, nullable=True),
        sa.CheckConstraint("kind IN ('master', 'rendition')", name=op.f("ck_assets_kind_known")),
        sa.CheckConstraint("status IN ('pending', 'indexed', 'missing', 'error')", name=op.f("ck_assets_status_known")),
        sa.CheckConstraint("status <> 'error' OR error IS NOT NULL", name=op.f("ck_assets_error_has_message")),
        sa.CheckConstraint("path LIKE '/%'", name=op.f("ck_assets_path_absolute")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_assets_size_not_negative")),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_assets_dimensions_positive")),
        sa.CheckConstraint("sar_num > 0 AND sar_den > 0", name=op.f("ck_assets_sar_positive")),
        sa.CheckConstraint("dar_num > 0 AND dar_den > 0", name=op.f("ck_assets_dar_positive")),
        sa.CheckConstraint("frame_rate_num > 0 AND frame_rate_den > 0", name=op.f("ck_assets_frame_rate_positive")),
        sa.CheckConstraint("duration_s >= 0", name=op.f("ck_assets_duration_not_negative")),
        sa.CheckConstraint("bit_depth BETWEEN 1 AND 16", name=op.f("ck_assets_bit_depth_range")),
        sa.CheckConstraint("rotation IN (0, 90, 180, 270)", name=op.f("ck_assets_rotation_quarter_turns")),
        sa.ForeignKeyConstraint(["root_id"], ["roots.id"], name=op.f("fk_assets_root_id_roots"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("id", "kind", name=op.f("uq_assets_id_kind")),
        sa.UniqueConstraint("path", name=op.f("uq_assets_path")),
    )
    op.create_index("ix_assets_fingerprint", "assets", ["fingerprint"])
    op.create_index("ix_assets_content_hash", "assets", ["content_hash"])
    op.create_index("ix_assets_status", "assets", ["status"])
    op.create_index("ix_assets_root_id", "assets", ["root_id"])

    op.create_table(
        "segments",
        _id(),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("frame_s", sa.Double(), nullable=False),
        sa.Column("view", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("embedding_dim", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("frame_s >= start_s AND frame_s <= end_s", name=op.f("ck_segments_frame_in_span")),
        sa.CheckConstraint("view >= 0", name=op.f("ck_segments_view_not_negative")),
        sa.CheckConstraint("vector_dims(embedding) = embedding_dim", name=op.f("ck_segments_embedding_dim_matches")),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_segments_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint(
            "asset_id",
            "embedding_model",
            "frame_s",
            "view",
            name=op.f("uq_segments_asset_id_embedding_model_frame_s_view"),
        ),
    )
    op.create_index("ix_segments_asset_id", "segments", ["asset_id"])
    op.create_index("ix_segments_embedding_model", "segments", ["embedding_model"])
    # Cosine HNSW over 512-d vectors (ViT-B-32, the default model). The column
    # is dimensionless so other models' vectors fit; they get their own index.
    op.execute(
        "CREATE INDEX ix_segments_embedding_hnsw_512 ON segments "
        "USING hnsw ((embedding::vector(512)) vector_cosine_ops) WHERE embedding_dim = 512"
    )

    op.create_table(
        "renditions",
        _id(),
        sa.Column("master_id", sa.BigInteger(), nullable=False),
        sa.Column("master_kind", sa.Text(), server_default="master", nullable=False),
        sa.Column("rendition_asset_id", sa.BigInteger(), nullable=True),
        sa.Column("rendition_kind", sa.Text(), server_default="rendition", nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("target_width", sa.Integer(), nullable=False),
        sa.Column("target_height", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("model_sha256", sa.Text(), nullable=False),
        sa.Column("parameters", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("progress", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("frames_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("frames_total", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("requested_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("timings", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("provenance", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint("master_kind = 'master'", name=op.f("ck_renditions_master_kind_master")),
        sa.CheckConstraint("rendition_kind = 'rendition'", name=op.f("ck_renditions_rendition_kind_rendition")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_renditions_status_known"),
        ),
        sa.CheckConstraint("target_width > 0 AND target_height > 0", name=op.f("ck_renditions_target_positive")),
        sa.CheckConstraint("model_sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_renditions_model_sha256_hex")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_renditions_progress_fraction")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_renditions_attempts_not_negative")),
        sa.CheckConstraint(
            "frames_done >= 0 AND (frames_total IS NULL OR frames_done <= frames_total)",
            name=op.f("ck_renditions_frames_done_range"),
        ),
        sa.CheckConstraint(
            "status <> 'done' OR (rendition_asset_id IS NOT NULL AND progress = 1)",
            name=op.f("ck_renditions_done_has_file"),
        ),
        sa.CheckConstraint("status <> 'failed' OR error IS NOT NULL", name=op.f("ck_renditions_failed_has_error")),
        sa.ForeignKeyConstraint(
            ["master_id", "master_kind"],
            ["assets.id", "assets.kind"],
            name=op.f("fk_renditions_master_is_master"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rendition_asset_id", "rendition_kind"],
            ["assets.id", "assets.kind"],
            name=op.f("fk_renditions_file_is_rendition"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renditions")),
        sa.UniqueConstraint("rendition_asset_id", name=op.f("uq_renditions_rendition_asset_id")),
    )
    op.create_index("ix_renditions_master_id", "renditions", ["master_id"])
    op.create_index("ix_renditions_status", "renditions", ["status"])


def downgrade() -> None:
    op.drop_table("renditions")
    op.drop_table("segments")
    op.drop_table("assets")
    op.drop_table("roots")
    # The extension stays: other databases objects may use it, and dropping it
    # needs more privilege than creating the tables did.
