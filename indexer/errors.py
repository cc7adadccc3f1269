"""Errors of the indexer, each with a reason a person can act on."""

from __future__ import annotations

from catalog import FootageError

# How a file footage could not open reads in its error, so a scan tries it again.
UNREADABLE = ": cannot read: "


class MediaError(FootageError):
    """A file is not usable footage (empty, truncated, encrypted, no video, unreadable)."""


class UnreadableFileError(FootageError):
    """An index job's file cannot be read on this host (not there, no permission, a vanished
    mount): the job fails, to be retried, and never reads as done."""


class EmbeddingModelError(FootageError):
    """The configured CLIP model cannot be loaded."""

    exit_code = 2


class QueryError(FootageError):
    """A search that cannot be run as asked (empty text, unreadable picture, bad moment)."""

    exit_code = 2
