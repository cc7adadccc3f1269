"""Alembic environment.

footage runs migrations itself (``footage db upgrade``, or automatically on the
embedded server) and hands over its open connection. For developers running
the ``alembic`` command directly, ``-x url=postgresql+psycopg://...`` names the
database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from catalog.schema import include_name
from catalog.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with: alembic -x url=postgresql+psycopg://... <command>")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
