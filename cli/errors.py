"""The single place where footage errors become one line and an exit code."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from catalog import FootageError
from cli.output import stderr

DEBUG_ENV = "FOOTAGE_DEBUG"


class FootageGroup(TyperGroup):
    """A Typer group that prints ``Error: ...`` for footage errors instead of a traceback.

    Set ``FOOTAGE_DEBUG=1`` to see the traceback as well.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FootageError as exc:
            if os.environ.get(DEBUG_ENV):
                stderr().print_exception()
            stderr().print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
