"""Errors of the upscaler, each saying what the user can do about it."""

from __future__ import annotations

from catalog import FootageError


class UnknownModelError(FootageError):
    """A model name that is neither in the registry nor a model file."""

    exit_code = 2


class UnsupportedModelError(FootageError):
    """A model file spandrel cannot load, or one that is not a super-resolution model."""

    exit_code = 2


class ChecksumError(FootageError):
    """Downloaded or cached weights whose sha256 is not the expected one: never used."""


class DownloadError(FootageError):
    """Weights could not be downloaded."""


class PlanError(FootageError):
    """An output geometry footage will not render (smaller than the master, unknown target)."""

    exit_code = 2


class RenderError(FootageError):
    """Rendering failed; no file was left under the final name."""


class StorageFullError(FootageError):
    """The renditions folder's volume filled up mid-render: the partial file is gone, and
    trying again at once would fill it again, so the render fails until space is freed."""
