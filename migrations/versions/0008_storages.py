"""Storages: files kept as (storage, path inside it), so every host opens them at its own
mount of the same share.

An existing catalog upgrades in place: its absolute paths were the migrating host's,
so they become paths on that host's own storage (``host-<name>``, rooted at ``/``).
Queued jobs follow: index jobs name the file by storage, and every job goes to the
queue of the storage its files are on (``index@host-<name>``, ``render@...``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import socket
import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

TZ = sa.DateTime(timezone=True)


def _host() -> tuple[str, str]:
    """The migrating host and its storage's name."""
    from catalog.storages import host_storage_name  # the one naming rule, as every host applies it

    config = op.get_context().config
    host = str((config.attributes.get("footage_host") if config is not None else None) or socket.gethostname())
    return host, host_storage_name(host)


def _to_storage(table: str, path: str, storage: str, rel: str, unique: bool, storage_id: int) -> None:
    op.add_column(table, sa.Column(storage, sa.BigInteger(), nullable=True))
    op.add_column(table, sa.Column(rel, sa.Text(), nullable=True))
    op.execute(
        sa.text(f"UPDATE {table} SET {storage} = :id, {rel} = substr({path}, 2) WHERE {path} IS NOT NULL").bindparams(
            id=storage_id
        )
    )
    op.create_foreign_key(
        op.f(f"fk_{table}_{storage}_storages"), table, "storages", [storage], ["id"], ondelete="RESTRICT"
    )
    op.drop_column(table, path)  # its unique index and CHECK go with it
    if unique:
        op.alter_column(table, storage, nullable=False)
        op.alter_column(table, rel, nullable=False)
        op.create_unique_constraint(op.f(f"uq_{table}_{storage}_{rel}"), table, [storage, rel])


def upgrade() -> None:
    op.create_table(
        "storages",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("marker", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'", name=op.f("ck_storages_name_plain")),
        sa.CheckConstraint("(host IS NOT NULL) = (name LIKE 'host-%')", name=op.f("ck_storages_host_named")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storages")),
        sa.UniqueConstraint("name", name=op.f("uq_storages_name")),
    )
    op.create_table(
        "worker_queues",
        sa.Column("worker_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("queues", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("started_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_queues")),
    )
    host, name = _host()
    storage_id = (
        op.get_bind()
        .execute(
            sa.text("INSERT INTO storages (name, marker, host) VALUES (:name, :marker, :host) RETURNING id"),
            {"name": name, "marker": uuid.uuid4().hex, "host": host},
        )
        .scalar_one()
    )
    _to_storage("roots", "path", "storage_id", "rel_path", True, storage_id)
    op.create_check_constraint(op.f("ck_roots_rel_path_relative"), "roots", "rel_path NOT LIKE '/%'")
    _to_storage("assets", "path", "storage_id", "rel_path", True, storage_id)
    op.create_check_constraint(
        op.f("ck_assets_rel_path_relative"), "assets", "rel_path NOT LIKE '/%' AND rel_path <> ''"
    )
    _to_storage("renditions", "output_path", "output_storage_id", "output_rel_path", False, storage_id)
    op.create_check_constraint(
        op.f("ck_renditions_output_rel_path_relative"), "renditions", "output_rel_path NOT LIKE '/%'"
    )
    op.create_check_constraint(
        op.f("ck_renditions_output_whole"), "renditions", "(output_storage_id IS NULL) = (output_rel_path IS NULL)"
    )
    from catalog.words import refresh_all_words  # the one tokenizer, for what is there already (see 0007)

    refresh_all_words(op.get_bind())
    # Waiting jobs: by storage, on their storage's queue. Finished ones keep their history as it was.
    op.execute(
        sa.text(
            "UPDATE procrastinate_jobs SET queue_name = queue_name || '@' || :name,"
            " args = (args - 'path') || jsonb_build_object('storage_id', :id, 'rel_path', substr(args->>'path', 2)),"
            " lock = 'index:' || :id || ':' || substr(args->>'path', 2),"
            " queueing_lock = 'index:' || :id || ':' || substr(args->>'path', 2)"
            " WHERE status = 'todo' AND task_name = 'footage.index_file' AND args ? 'path'"
        ).bindparams(name=name, id=storage_id)
    )
    op.execute(
        sa.text(
            "UPDATE procrastinate_jobs SET queue_name = queue_name || '@' || :name"
            " WHERE status = 'todo' AND task_name = 'footage.render' AND queue_name NOT LIKE '%@%'"
        ).bindparams(name=name)
    )


def _to_path(table: str, path: str, storage: str, rel: str, unique: bool) -> None:
    op.add_column(table, sa.Column(path, sa.Text(), nullable=True))
    op.execute(
        f"UPDATE {table} t SET {path} = '/' || t.{rel} FROM storages s WHERE s.id = t.{storage} AND s.host IS NOT NULL"
    )
    op.drop_column(table, rel)
    op.drop_column(table, storage)
    if unique:
        op.alter_column(table, path, nullable=False)
        op.create_unique_constraint(op.f(f"uq_{table}_{path}"), table, [path])
    op.create_check_constraint(op.f(f"ck_{table}_{path}_absolute"), table, f"{path} LIKE '/%'")


def downgrade() -> None:
    named = op.get_bind().execute(
        sa.text(
            "SELECT (SELECT count(*) FROM assets a JOIN storages s ON s.id = a.storage_id WHERE s.host IS NULL)"
            " + (SELECT count(*) FROM renditions r JOIN storages s ON s.id = r.output_storage_id WHERE s.host IS NULL)"
        )
    )
    if named.scalar_one():
        raise RuntimeError("files on named storages have no single absolute path: remove them before downgrading")
    _to_path("roots", "path", "storage_id", "rel_path", True)
    _to_path("assets", "path", "storage_id", "rel_path", True)
    _to_path("renditions", "output_path", "output_storage_id", "output_rel_path", False)
    op.execute(
        "UPDATE procrastinate_jobs SET queue_name = split_part(queue_name, '@', 1),"
        " args = (args - 'storage_id' - 'rel_path') || jsonb_build_object('path', '/' || (args->>'rel_path')),"
        " lock = 'index:/' || (args->>'rel_path'), queueing_lock = 'index:/' || (args->>'rel_path')"
        " WHERE status = 'todo' AND task_name = 'footage.index_file' AND args ? 'rel_path'"
    )
    op.execute(
        "UPDATE procrastinate_jobs SET queue_name = split_part(queue_name, '@', 1)"
        " WHERE status = 'todo' AND task_name = 'footage.render'"
    )
    op.drop_table("worker_queues")
    op.drop_table("storages")
