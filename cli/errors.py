"""The single place where footage errors become one line and an exit code."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from catalog import FootageError
from cli.output import stderr

DEBUG_ENV = "FOOTAGE_DEBUG"


def _plain_flags(command: Any, ctx: Any) -> None:
    """A flag takes no value: its help shows none (Typer's would say ``<bool>``)."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False):
            param.metavar = ""


class FootageGroup(TyperGroup):
    """A Typer group that prints ``Error: ...`` for footage errors instead of a traceback.

    Set ``FOOTAGE_DEBUG=1`` to see the traceback as well.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _plain_flags(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FootageError as exc:
            if os.environ.get(DEBUG_ENV):
                stderr().print_exception()
            stderr().print(f"Error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
