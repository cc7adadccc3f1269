"""Words that are searched beside the picture: each asset's name parts, metadata, notes
and tags in one full-text document; notes and tags on assets and moments, with who and
when; selections, named and ordered, shared by the team.

Existing assets get their name words with 0008 (their path is all it takes); metadata
words come with their next index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)


def _asset_id(table: str) -> list[Any]:
    return [
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f(f"fk_{table}_asset_id_assets"), ondelete="CASCADE"
        ),
    ]


def _who_and_when() -> list[sa.Column]:
    return [
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
    ]


def _annotation(table: str, what: sa.Column, check: sa.CheckConstraint) -> None:
    """notes and tags: on an asset (``at_s`` NULL) or on the moment at ``at_s``."""
    op.create_table(
        table,
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        *_asset_id(table),
        sa.Column("at_s", sa.Double(), nullable=True),
        what,
        *_who_and_when(),
        sa.CheckConstraint("at_s >= 0", name=op.f(f"ck_{table}_at_not_negative")),
        check,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.create_index(op.f(f"ix_{table}_asset_id"), table, ["asset_id"])


def upgrade() -> None:
    op.create_table(
        "asset_words",
        *_asset_id("asset_words"),
        sa.Column("name_words", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("folder_words", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("meta_words", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), server_default=sa.text("''::tsvector"), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_asset_words")),
    )
    # fastupdate off: a search never scans a pending list of fresh entries (at 10^5 assets
    # just written, 7 ms for a query that matched nothing); a file's words are written once
    # per index, where the slower insert is lost in the indexing.
    for column in ("document", "name_words"):
        op.create_index(
            op.f(f"ix_asset_words_{column}"),
            "asset_words",
            [column],
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        )
    _annotation(
        "notes",
        sa.Column("text", sa.Text(), nullable=False),
        sa.CheckConstraint("length(btrim(text)) > 0", name=op.f("ck_notes_text_not_blank")),
    )
    _annotation(
        "tags",
        sa.Column("word", sa.Text(), nullable=False),
        sa.CheckConstraint("word ~ '^[^[:space:]]+$'", name=op.f("ck_tags_one_word")),
    )
    # A tag word once per asset or moment; NULLS NOT DISTINCT makes asset-wide tags
    # (at_s NULL) unique too.
    op.create_index(
        op.f("uq_tags_asset_id_at_s_word"),
        "tags",
        ["asset_id", "at_s", "word"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "selections",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        *_who_and_when(),
        sa.Column("updated_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("length(btrim(name)) > 0", name=op.f("ck_selections_name_not_blank")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_selections")),
        sa.UniqueConstraint("name", name=op.f("uq_selections_name")),
    )
    op.create_table(
        "selection_items",
        sa.Column("selection_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        *_asset_id("selection_items"),
        sa.Column("at_s", sa.Double(), nullable=True),
        *_who_and_when(),
        sa.ForeignKeyConstraint(
            ["selection_id"],
            ["selections.id"],
            name=op.f("fk_selection_items_selection_id_selections"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("position >= 0", name=op.f("ck_selection_items_position_not_negative")),
        sa.CheckConstraint("at_s >= 0", name=op.f("ck_selection_items_at_not_negative")),
        sa.PrimaryKeyConstraint("selection_id", "position", name=op.f("pk_selection_items")),
    )
    op.create_index(op.f("ix_selection_items_asset_id"), "selection_items", ["asset_id"])
    # What is there already gets its words in 0008: the one tokenizer (catalog.words) reads
    # the paths as 0008 keeps them.


def downgrade() -> None:
    op.drop_table("selection_items")
    op.drop_table("selections")
    op.drop_table("tags")
    op.drop_table("notes")
    op.drop_table("asset_words")
