"""Typed errors shared by every footage package.

Each error carries a message a user can act on and the process exit code the
CLI should use for it; the CLI turns them into one ``Error: ...`` line.
"""

from __future__ import annotations


class FootageError(Exception):
    """Base of every error a user can cause or fix; never shown with a traceback."""

    exit_code: int = 1


class ConfigurationError(FootageError):
    """A setting (environment variable, option) has a value footage cannot use."""

    exit_code = 2


class DatabaseUnavailableError(FootageError):
    """The catalog database cannot be reached or started."""

    exit_code = 3


class SchemaOutOfDateError(FootageError):
    """The catalog database is not migrated to the schema this version needs."""

    exit_code = 4


class NotFoundError(FootageError):
    """An asset, rendition, root or job the user named does not exist."""

    exit_code = 5


class UnsafePathError(FootageError):
    """A rendition path that would leave the renditions folder or touch a master."""

    exit_code = 2
