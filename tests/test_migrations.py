"""Migrations: round trip, and the models match what the migrations build."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from catalog import Base, schema

FOOTAGE_TABLES = {
    "roots",
    "assets",
    "segments",
    "renditions",
    "asset_words",
    "notes",
    "tags",
    "selections",
    "selection_items",
}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & FOOTAGE_TABLES


def test_upgrade_downgrade_round_trip(make_database: Callable[[], str]) -> None:
    engine = sa.create_engine(make_database())
    try:
        assert schema.current_revision(engine) is None
        schema.upgrade(engine)
        assert schema.current_revision(engine) == schema.head_revision()
        assert _tables(engine) == FOOTAGE_TABLES
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one()

        assert "procrastinate_jobs" in sa.inspect(engine).get_table_names()

        schema.downgrade(engine, "base")
        assert schema.current_revision(engine) is None
        assert _tables(engine) == set()
        with engine.connect() as conn:
            leftovers = (
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%' "
                        "UNION ALL SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%' "
                        "UNION ALL SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%'"
                    )
                )
                .scalars()
                .all()
            )
        assert leftovers == [0, 0, 0]

        schema.upgrade(engine)
        assert _tables(engine) == FOOTAGE_TABLES
        schema.upgrade(engine)  # already at head: a no-op, not an error
        assert schema.current_revision(engine) == schema.head_revision()
    finally:
        engine.dispose()


def test_models_match_migrated_schema(catalog_engine: sa.Engine) -> None:
    with catalog_engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "compare_server_default": True, "include_name": schema.include_name},
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_hnsw_cosine_index_exists(catalog_engine: sa.Engine) -> None:
    with catalog_engine.connect() as conn:
        definition = conn.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_segments_embedding_hnsw_512'")
        ).scalar_one()
    assert "USING hnsw" in definition
    assert "halfvec(512)) halfvec_cosine_ops" in definition  # half the size of vector_cosine_ops
