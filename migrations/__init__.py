"""Alembic environment and versions of the footage catalog schema."""
